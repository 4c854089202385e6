"""Every common kind of Snakemake rule brings its declared final outputs into results/ whole or not at all,
as the generated repository's docs/rule-kinds.md shows: each example is taken from that page and run as the
workflow user, and a failing one leaves nothing under results/ and says why.

Every kind works in node-local scratch: shell and Python script rules stage themselves (scratch.py); R
scripts, notebooks, wrappers and container rules take `shadow: "minimal"`, whose jobs the profile's
`shadow_route: 'scratch'` hands to scratch.py too (shadow_route.py). Each job proves where it worked: its
`[scratch]` record, and what the job itself saw (working directory, where its input resolves, $TMPDIR;
for the container, the image's --pwd and --bind). Real tools run: Rscript (Debian), jupyter-nbconvert + ipykernel (requirements.txt), a local
wrapper directory through --wrapper-prefix. The container is a stand-in `apptainer` on PATH, driven by
Snakemake's own apptainer code path, that runs the command under `env -i` with PATH=/usr/bin:/bin: without
the venv and without the host interpreter's path, as inside an image."""

import collections
import csv
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import (
    BIN,
    TEMPLATE,
    hand_over,
    isolated_env,
    missing_in_ci_fails,
    node_tmp,
    scratch_records,
    workflow_user,
)

EXAMPLE = re.compile(r"<!-- example: (?P<kind>[\w-]+) (?:rule|file (?P<path>\S+)) -->\n```\w*\n(?P<body>.*?)```", re.S)
FAILURE = "deliberate failure after writing the output"
FAIL_COMMAND = f"; echo {FAILURE} >&2; exit 3"  # appended to a shell command

# Stand-in for apptainer: answers the version check and `pull` as Snakemake calls them
# (snakemake/deployment/singularity.py), and runs `exec ... IMAGE SHELL -c CMD` with a bare environment
# (PATH of the image, TMPDIR passed on as apptainer does), in its --pwd, which must be a bound path.
FAKE_APPTAINER = r"""#!/bin/sh
echo "$*" >> "$(dirname "$0")/calls.log"
case "$1" in
  --version) echo "apptainer version 1.3.6"; exit 0 ;;
  pull) [ "$2" = --name ] && : > "$3"; exit 0 ;;
esac
home=/nonexistent workdir=. bound=
while [ $# -gt 0 ]; do
  case "$1" in
    exec|--quiet|--silent) shift ;;
    --home) home=$2; bound="$bound $2"; shift 2 ;;
    --pwd) workdir=$2; shift 2 ;;
    --bind|-B) bound="$bound ${2%%:*}"; shift 2 ;;
    -*) echo "fake apptainer: unknown option $1" >&2; exit 255 ;;
    *) break ;;
  esac
done
[ -f "$1" ] || { echo "fake apptainer: no image $1" >&2; exit 255; }
shift
# the image sees only the host paths it is given (--home, --bind), not the host's other directories
seen=no
for path in $bound; do case "$workdir/" in "$path"/*) seen=yes ;; esac; done
[ "$workdir" = . ] || [ $seen = yes ] || { echo "fake apptainer: --pwd $workdir is not bound" >&2; exit 255; }
cd "$workdir" || exit 255
env -i PATH=/usr/bin:/bin HOME="$home" ${TMPDIR:+TMPDIR="$TMPDIR"} "$@" || exit $?
# tests/test_shadow_route.py: the command is done, its outputs still in the job's scratch; wait to be killed
if [ -n "$CONTAINER_TEST_HOLD" ]; then
  echo "{\"pid\": $$, \"workdir\": \"$(pwd -P)\"}" > "$CONTAINER_TEST_HOLD/$$.json.part"
  mv "$CONTAINER_TEST_HOLD/$$.json.part" "$CONTAINER_TEST_HOLD/$$.json"
  exec cat "$CONTAINER_TEST_HOLD/fifo" > /dev/null  # this pid, killed by the test
fi
"""
# What the command inside the container sees (prepended to the example's command by the test only).
PROBE = "echo container-env PATH=$PATH python3=$(command -v python3 || echo none) >&2; "
SEEN = re.compile(r"seen cwd=(\S+) input=(\S+) tmpdir=(\S+) end")
RECORD = re.compile(r"^\[scratch\] (\{.*\})$", re.M)


def sample_texts(repo):
    with open(repo / "config/samples.tsv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return {row["sample"]: (repo / "data/inputs" / row["path"]).read_text(encoding="utf-8") for row in rows}


def check_lines(path, sample, texts):
    assert int(path.read_text()) == texts[sample].count("\n")


def check_line_table(path, sample, texts):
    assert path.read_text() == "".join(f"{s}\t{t.count(chr(10))}\n" for s, t in texts.items())


def check_word_lengths(path, sample, texts):
    rows = list(csv.DictReader(path.open(encoding="utf-8"), delimiter="\t"))
    assert {int(r["length"]): int(r["words"]) for r in rows} == collections.Counter(map(len, texts[sample].split()))


def check_longest_words(path, sample, texts):
    words = set(texts[sample].split())
    assert json.loads(path.read_text()) == sorted(words, key=lambda w: (-len(w), w))[:5]


def check_chars(path, sample, texts):
    assert int(path.read_text()) == len(texts[sample])


def check_words(path, sample, texts):
    assert int(path.read_text()) == len(texts[sample].split())


@dataclass
class Kind:
    rule: str  # the example rule's name
    outputs: list  # its outputs ({sample}: one per sample)
    check: object  # check(path, sample, texts): the output is complete and right
    failing: object  # failing(repo): make the example fail after it wrote its output
    shadow: bool = True  # shadow: "minimal", staged by the profile's shadow_route (else: by itself)
    needs: list = field(default_factory=list)  # kinds whose outputs it reads
    args: list = field(default_factory=list)  # extra snakemake arguments ({repo}: the repository)


def fail_shell(repo):
    edit(repo / "workflow/rules/kinds.smk", '{output.lines:q}")', "{output.lines:q}" + FAIL_COMMAND + '")')


def fail_python(repo):
    script = repo / "workflow/scripts/line_table.py"
    edit(script, "\n\n\nif __name__", f'\n        raise RuntimeError("{FAILURE}")\n\n\nif __name__')


def fail_r(repo):
    script = repo / "workflow/scripts/word_lengths.R"
    script.write_text(script.read_text() + f'stop("{FAILURE}")\n')


def fail_notebook(repo):
    """A cell that raises after the one that wrote the output, and one after it that must not run."""
    path = repo / "workflow/notebooks/longest_words.py.ipynb"
    notebook = json.loads(path.read_text())
    cell = notebook["cells"][0]
    notebook["cells"] += [
        {**cell, "id": "fail", "source": [f'raise RuntimeError("{FAILURE}")\n']},
        {**cell, "id": "after-the-failure", "source": ['print("not run")\n']},
    ]
    path.write_text(json.dumps(notebook))


def fail_wrapper(repo):
    wrapper = repo / "workflow/wrappers/text/count_chars/wrapper.py"
    wrapper.write_text(wrapper.read_text() + f'raise RuntimeError("{FAILURE}")\n')


def fail_container(repo):
    edit(repo / "workflow/rules/kinds.smk", '2> {log:q}"', "2> {log:q}" + FAIL_COMMAND + '"')


KINDS = {
    "shell": Kind("count_lines", ["results/lines/{sample}.txt"], check_lines, fail_shell, shadow=False),
    "python-script": Kind(
        "line_table", ["results/line_table.tsv"], check_line_table, fail_python, shadow=False, needs=["shell"]
    ),
    "r-script": Kind("word_lengths", ["results/word_lengths/{sample}.tsv"], check_word_lengths, fail_r),
    "notebook": Kind("longest_words", ["results/longest_words/{sample}.json"], check_longest_words, fail_notebook),
    "wrapper": Kind(
        "count_chars",
        ["results/chars/{sample}.txt"],
        check_chars,
        fail_wrapper,
        args=["--wrapper-prefix", "file://{repo}/workflow/wrappers/"],
    ),
    "container": Kind(
        "count_words_in_container",
        ["results/words/{sample}.txt"],
        check_words,
        fail_container,
        args=["--software-deployment-method=apptainer"],
    ),
}


def edit(path, old, new):
    text = path.read_text()
    assert text.count(old) == 1, f"{path.name}: expected {old!r} once"
    path.write_text(text.replace(old, new))


def need_tool(name, what):
    """Skip without the tool locally; CI (REQUIRE_SLURM=1, which installs it in .ci/run) fails instead."""
    if shutil.which(name) or (BIN / name).exists():
        return
    missing_in_ci_fails(f"{name} is not installed ({what}); .ci/run installs it")


def add_examples(repo):
    """Every example of docs/rule-kinds.md in the repository: rules in workflow/rules/kinds.smk (included
    from the Snakefile), files at the paths the page names, outputs in FINAL_OUTPUTS. Returns {kind: rule text}."""
    found = list(EXAMPLE.finditer((repo / "docs/rule-kinds.md").read_text(encoding="utf-8")))
    rules = {m["kind"]: m["body"] for m in found if not m["path"]}
    assert sorted(rules) == sorted(KINDS), "docs/rule-kinds.md has one example rule per kind"
    for m in found:
        if m["path"]:
            target = repo / m["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(m["body"], encoding="utf-8")
    (repo / "workflow/rules/kinds.smk").write_text("\n\n".join(rules[kind] for kind in KINDS), encoding="utf-8")
    edit(
        repo / "workflow/Snakefile",
        'include: "rules/contract.smk"\n',
        'include: "rules/contract.smk"\ninclude: "rules/kinds.smk"\n',
    )
    final = "".join(
        f"    **dict.fromkeys(expand({out!r}, sample=SAMPLE_IDS)),\n" for k in KINDS.values() for out in k.outputs
    )
    edit(repo / "workflow/Snakefile", "FINAL_OUTPUTS = {\n", "FINAL_OUTPUTS = {\n" + final)  # final, not published
    return rules


def targets(kind, samples):
    return list(dict.fromkeys(out.format(sample=s) for out in KINDS[kind].outputs for s in samples))


@pytest.fixture
def kinds_repo(render, tmp_path):
    """(repo, env): a rendered repository with every example added, and the workflow user's environment
    (node-local TMPDIR; the stand-in apptainer first on PATH)."""
    repo = render()
    add_examples(repo)
    hand_over(repo, workflow_user())
    return repo, with_fake_apptainer(isolated_env(tmp_path, TMPDIR=str(node_tmp(tmp_path))), tmp_path)


def with_fake_apptainer(env, tmp_path):
    """env with the stand-in apptainer first on PATH (its calls: calls.log beside it)."""
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    (fake / "apptainer").write_text(FAKE_APPTAINER)
    (fake / "apptainer").chmod(0o755)
    hand_over(fake, workflow_user())
    return {**env, "PATH": f"{fake}{os.pathsep}{env['PATH']}"}


def run_kind(snakemake, repo, env, kind, *extra, samples=None, check=True, profile="local"):
    samples = samples or list(sample_texts(repo))
    args = [a.format(repo=repo) for a in KINDS[kind].args]
    return snakemake(
        repo, "--profile", f"profiles/{profile}", *args, *extra, *targets(kind, samples), env=env, check=check
    )


def files_under(path):
    return sorted(str(p.relative_to(path.parent)) for p in path.rglob("*") if not p.is_dir()) if path.exists() else []


def shadow_leftovers(repo):
    shadow = repo / ".snakemake/shadow"
    return sorted(p.name for p in shadow.iterdir()) if shadow.exists() else []


def job_records(repo, printed=""):
    """Each job's `[scratch]` record, once: from the logs under logs/, and from what the jobs printed (a
    notebook's record goes to its standard error only: its log stays a notebook)."""
    found = [*scratch_records(repo), *(json.loads(line) for line in RECORD.findall(printed))]
    return list({json.dumps(r, sort_keys=True): r for r in found}.values())


def scratch_root(repo, node):
    """The profiles' tmpdir: <node temp dir>/<slug>-scratch-<uid>."""
    return f"{node}/{repo.name}-scratch-{repo.stat().st_uid}"


def use_snakemakes_shadow(repo, profile="local"):
    """The fallback a profile can choose: shadow jobs in Snakemake's own shadow directory."""
    edit(repo / f"profiles/{profile}/config.yaml", "shadow_route: \"'scratch'\"", "shadow_route: \"'snakemake'\"")


def require_tools(kind):
    if kind == "r-script":
        need_tool("Rscript", "Debian's r-base-core")
    if kind == "notebook":
        need_tool("jupyter-nbconvert", "nbconvert from requirements.txt")


def reveal_paths(repo, kinds):
    """Each example also says where it worked: the directory it ran in, where its input resolves to, and its
    $TMPDIR (the R script and the wrapper: a line in its log; the notebook: a cell, printed into its log
    notebook; the container: a line on its standard error)."""
    if "r-script" in kinds:
        with open(repo / "workflow/scripts/word_lengths.R", "a", encoding="utf-8") as fh:
            fh.write(
                'message(sprintf("seen cwd=%s input=%s tmpdir=%s end", getwd(), '
                'normalizePath(snakemake@input[["text"]]), Sys.getenv("TMPDIR")))\n'
            )
    if "wrapper" in kinds:
        with open(repo / "workflow/wrappers/text/count_chars/wrapper.py", "a", encoding="utf-8") as fh:
            fh.write(
                'shell("echo seen cwd=$(pwd -P) input=$(realpath {snakemake.input.text:q}) tmpdir=$TMPDIR end '
                '>> {snakemake.log:q}")\n'
            )
    if "notebook" in kinds:
        path = repo / "workflow/notebooks/longest_words.py.ipynb"
        notebook = json.loads(path.read_text())
        source = (
            'import os\nprint(f"seen cwd={os.getcwd()} input={os.path.realpath(snakemake.input.text)} '
            "tmpdir={os.environ.get('TMPDIR')} end\")\n"
        )
        notebook["cells"].append({**notebook["cells"][0], "id": "seen", "source": [source]})
        path.write_text(json.dumps(notebook))
    if "container" in kinds:
        probe = f"{PROBE}echo seen cwd=$(pwd -P) input=$(realpath {{input.text:q}}) tmpdir=$TMPDIR end >&2; "
        edit(repo / "workflow/rules/kinds.smk", 'shell:\n        "wc -w', f'shell:\n        "{probe}wc -w')


def seen_paths(repo, kind, sample, printed):
    """What the job of `kind` for `sample` said about where it worked (reveal_paths)."""
    if kind == "container":  # on standard error, one line per job: tell them apart by the input
        found = [dict(zip(("cwd", "input", "tmpdir"), seen, strict=True)) for seen in SEEN.findall(printed)]
        (seen,) = [f for f in found if f["input"].endswith(f"/{sample}.txt")]
        return seen
    log = repo / "logs" / KINDS[kind].rule / (f"{sample}.ipynb" if kind == "notebook" else f"{sample}.log")
    text = log.read_text()
    if kind == "notebook":  # what the cell printed, not its source
        (cell,) = [c for c in json.loads(text)["cells"] if c.get("id") == "seen"]
        text = "".join("".join(o.get("text", "")) for o in cell["outputs"])
    (seen,) = SEEN.findall(text)
    return dict(zip(("cwd", "input", "tmpdir"), seen, strict=True))


def assert_each_job_worked_in_its_scratch(repo, kinds, records, printed, staging, samples=None):
    """Each shadow job ran in its record's directory, read its input there (the linked input resolves to the
    workdir's file; a copy is in the job's directory), and had the record's root as its $TMPDIR."""
    by_output = {o: r for r in records for o in r["outputs"]}
    for kind in kinds:
        for sample in samples or sample_texts(repo):
            (output,) = targets(kind, [sample])
            record, seen = by_output[output], seen_paths(repo, kind, sample, printed)
            assert seen["cwd"] == record["dir"], (kind, seen, record)
            assert seen["tmpdir"] == record["root"], "Snakemake's TMPDIR for the job: the resolved root"
            staged = os.path.realpath(repo / "data/inputs" / f"{sample}.txt")
            expected = staged if staging == "link" else f"{record['dir']}/data/inputs/{sample}.txt"
            assert seen["input"] == expected, f"the input is {'linked' if staging == 'link' else 'a copy'}"


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_rule_kind_from_the_docs_puts_its_complete_outputs_under_results(kinds_repo, snakemake, kind):
    """profiles/local: each kind works in the profile's scratch root (node_tmp here), one [scratch] record
    per job; a shadow kind's job says itself that it ran there."""
    require_tools(kind)
    repo, env = kinds_repo
    texts = sample_texts(repo)
    spec = KINDS[kind]
    if spec.shadow:
        reveal_paths(repo, [kind])
    run = run_kind(snakemake, repo, env, kind)

    expected = sorted(t for k in [*spec.needs, kind] for t in targets(k, texts))
    assert files_under(repo / "results") == expected, "exactly the declared outputs, no partial or hidden file"
    for out in spec.outputs:
        for sample in texts if "{sample}" in out else [None]:
            spec.check(repo / out.format(sample=sample), sample, texts)
    mine = [r for r in job_records(repo, run.output) if set(r["outputs"]) & set(targets(kind, texts))]
    assert len(mine) == len(targets(kind, texts)), "one scratch record per job (each has one output)"
    root = scratch_root(repo, env["TMPDIR"])
    assert all(r["status"] == "ok" and r["removed"] and r["root"] == root for r in mine), "node-local"
    info = Path(root).stat()
    assert (info.st_mode & 0o777, info.st_uid) == (0o700, repo.stat().st_uid), "a private root of the user"
    assert shadow_leftovers(repo) == [], "nothing in .snakemake/shadow/"
    if spec.shadow:
        assert {r["rule"] for r in mine} == {spec.rule} and {r["staging"] for r in mine} == {"link"}
        assert_each_job_worked_in_its_scratch(repo, [kind], mine, run.output, "link")
    if kind == "notebook":  # its record is not in its log: the log stays a notebook
        for sample in texts:
            assert json.loads((repo / f"logs/longest_words/{sample}.ipynb").read_text())["cells"]
    if kind == "container":
        assert_ran_in_the_image_environment(env, run.output, mine)


def assert_ran_in_the_image_environment(env, printed, records):
    """Through Snakemake's apptainer path (pull, then exec of the pulled image), each job's command ran in its
    scratch directory (--pwd), with the scratch root bound into the image (--bind), and saw only the image's
    PATH: neither the venv nor the host interpreter's directory."""
    calls = (Path(env["PATH"].split(os.pathsep)[0]) / "calls.log").read_text()
    assert "pull --name" in calls and "docker://debian:12-slim" in calls, calls
    for record in records:
        image_exec = (
            rf"^exec --home \S+ --bind {re.escape(record['root'])} --pwd {re.escape(record['dir'])} "
            r".*/\.snakemake/singularity/\w+\.simg bash -c "
        )
        assert len(re.findall(image_exec, calls, re.M)) == 1, calls
    seen = re.findall(r"^container-env PATH=(\S*) python3=(\S*)$", printed, re.M)
    assert len(seen) == len(records) and {path for path, _ in seen} == {"/usr/bin:/bin"}, printed[-3000:]
    host = {str(BIN), os.path.dirname(os.path.realpath(sys.executable))}
    assert not {os.path.dirname(python) for _, python in seen} & host, f"the command found the host's python3: {seen}"


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_rule_of_each_kind_that_fails_after_writing_its_output_leaves_results_without_it_and_says_why(
    kinds_repo, snakemake, kind
):
    """Run with --keep-incomplete, Snakemake's mode that keeps what a failed job wrote: without a route,
    the output would stay in results/. The route keeps it in the job's scratch directory, the profile's
    scratch_on_failure: keep keeps that directory, the log names it and its host, and the next run plans the
    job again."""
    require_tools(kind)
    repo, env = kinds_repo
    spec = KINDS[kind]
    spec.failing(repo)
    run = run_kind(snakemake, repo, env, kind, "--keep-incomplete", samples=["alpha"], check=False)

    assert run.returncode != 0, repr(run)
    assert FAILURE in run.output, f"the error is shown:\n{run.output[-3000:]}"
    needed = sorted(t for k in spec.needs for t in targets(k, sample_texts(repo)))
    assert files_under(repo / "results") == needed, "nothing of the failed job reaches results/"
    (output,) = targets(kind, ["alpha"])
    (record,) = [r for r in job_records(repo, run.output) if r["status"] == "failed"]
    assert not record["removed"] and record["root"] == scratch_root(repo, env["TMPDIR"]), "kept, as the profile says"
    kept = Path(record["dir"])
    assert (kept / output).is_file(), f"{output} was written before the failure, and kept out of results/"
    assert shadow_leftovers(repo) == []
    if spec.shadow and kind != "notebook":  # a notebook's log is the notebook; the line is on its stderr
        log = (repo / "logs" / spec.rule / "alpha.log").read_text()
        assert f"KEPT for debugging: {kept} (on host {record['host']})" in log, log
    if kind == "notebook":
        assert_the_log_notebook_holds_the_cells_run_up_to_the_error(repo / f"logs/{spec.rule}/alpha.ipynb")
    plan = run_kind(snakemake, repo, env, kind, "-n", samples=["alpha"])
    assert f"Missing output files: {output}" in plan.output, plan.output


def assert_the_log_notebook_holds_the_cells_run_up_to_the_error(path):
    """`log: notebook=` of a failed job (docs/rule-kinds.md): the notebook as executed, with Snakemake's
    preamble and the cell that wrote the output run, the failing cell with its error, the next cell not run."""
    text = path.read_text(encoding="utf-8")
    assert text, f"{path.name}: the log notebook is empty"
    cells = json.loads(text)["cells"]
    by_id = {cell.get("id"): cell for cell in cells}
    assert [c["execution_count"] for c in cells] == [1, 2, 3, None], "run up to the failing cell, not after it"
    errors = [(o["ename"], o["evalue"]) for o in by_id["fail"]["outputs"] if o["output_type"] == "error"]
    assert errors == [("RuntimeError", FAILURE)], by_id["fail"]["outputs"]
    assert by_id["longest-words"]["outputs"] == [] and by_id["after-the-failure"]["outputs"] == []


def test_a_failed_shadow_job_keeps_its_scratch_by_the_profile_without_keep_incomplete(kinds_repo, snakemake):
    """The profile's scratch_on_failure: keep decides, not the run-wide --keep-incomplete; R's error is in
    the rule's log, with the directory and its host."""
    require_tools("r-script")
    repo, env = kinds_repo
    fail_r(repo)
    run = run_kind(snakemake, repo, env, "r-script", samples=["alpha"], check=False)

    assert run.returncode != 0 and FAILURE in run.output, repr(run)
    assert files_under(repo / "results") == [] and shadow_leftovers(repo) == []
    (record,) = scratch_records(repo)
    assert record["status"] == "failed" and record["removed"] is False, record
    assert (Path(record["dir"]) / "results/word_lengths/alpha.tsv").is_file()
    log = (repo / "logs/word_lengths/alpha.log").read_text()
    assert FAILURE in log, "R's error message is in the rule's log"
    assert f"KEPT for debugging: {record['dir']} (on host {record['host']})" in log, log


def test_with_snakemakes_own_shadow_a_shadow_directory_on_another_filesystem_is_refused_before_any_job(
    kinds_repo, snakemake
):
    """The fallback (shadow_route: 'snakemake'): Snakemake's shadow directory must be on the filesystem of
    results/, where its move is a rename."""
    repo, env = kinds_repo
    use_snakemakes_shadow(repo)
    if not Path("/dev/shm").is_dir() or Path("/dev/shm").stat().st_dev == repo.stat().st_dev:
        pytest.skip("no second filesystem at /dev/shm on this machine")
    other = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="shadow-prefix-test-"))
    hand_over(other, workflow_user())
    try:
        run = run_kind(snakemake, repo, env, "wrapper", "--shadow-prefix", str(other), samples=["alpha"], check=False)
    finally:
        shutil.rmtree(other)
    assert run.returncode != 0
    assert "is not on the filesystem of results/" in run.output and "--shadow-prefix" in run.output, repr(run)
    assert files_under(repo / "results") == [] and not (repo / "logs/count_chars").exists(), "no job ran"
    same = run_kind(snakemake, repo, env, "wrapper", "--shadow-prefix", str(repo / ".shadow"), samples=["alpha"])
    assert files_under(repo / "results") == ["results/chars/alpha.txt"], repr(same)
    assert job_records(repo, same.output) == [], "Snakemake's own shadow: no scratch record"


def test_every_conda_env_pins_every_dependency_exactly_and_its_python_is_the_answer(render):
    repo = render(python_version="3.12")
    envs = sorted((repo / "workflow/envs").glob("*.yaml"))
    assert envs
    for path in envs:
        deps = yaml.safe_load(path.read_text())["dependencies"]
        pins = dict(d.split("=", 1) for d in deps if isinstance(d, str) and re.fullmatch(r"[\w.-]+=[\w.]+", d))
        assert len(pins) == len(deps), f"{path.name}: not every dependency is pinned exactly: {deps}"
        assert pins.get("python") == "3.12", f"{path.name}: python {pins.get('python')}, answered 3.12"


def test_the_jupyter_pins_the_docs_ask_for_are_the_ones_the_notebook_test_runs(render):
    template_pins = (TEMPLATE / "requirements.txt").read_text()
    docs = (render() / "docs/rule-kinds.md").read_text()
    asked = re.findall(r"`((?:nbconvert|ipykernel)==[\d.]+)`", docs)
    assert len(asked) == 2 and all(re.search(rf"^{re.escape(pin)}$", template_pins, re.M) for pin in asked), asked
