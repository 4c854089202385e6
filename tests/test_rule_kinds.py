"""Every kind of rule docs/rule-kinds.md shows (its `<!-- example: -->` blocks, run as the workflow user) works in
node-local scratch and brings its final outputs into results/ whole or not at all, in each context, when it fails and
when it is killed. Shell rules and Python scripts stage themselves (scratch.py); the `shadow: "minimal"` kinds go
through the profile's `shadow_route: 'scratch'` (shadow_route.py). Each job says itself where it worked. Real tools
run; the container is a stand-in `apptainer` driven by Snakemake's own apptainer code."""

import collections
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from conftest import (
    BIN,
    TEMPLATE,
    grant_traverse,
    hand_over,
    isolated_env,
    missing_in_ci_fails,
    node_tmp,
    other_filesystem_than,
    scratch_records,
    start_snakemake,
    workflow_user,
)

pytestmark = pytest.mark.timeout(900)
EXAMPLE = re.compile(r"<!-- example: (?P<kind>[\w-]+) (?:rule|file (?P<path>\S+)) -->\n```\w*\n(?P<body>.*?)```", re.S)
SMK, R_SCRIPT = "workflow/rules/kinds.smk", "workflow/scripts/word_lengths.R"
WRAPPER_PY = "workflow/wrappers/text/count_chars/wrapper.py"
WRAPPERS, APPTAINER = "file://{repo}/workflow/wrappers/", "--software-deployment-method=apptainer"
FAILURE = "deliberate failure after writing the output"
FAIL_COMMAND = f"; echo {FAILURE} >&2; exit 3"  # appended to a shell command
RAISE = f'raise RuntimeError("{FAILURE}")\n'

# Stand-in for apptainer: answers `--version` and `pull` as Snakemake calls them (snakemake/deployment/singularity.py),
# runs `exec ... IMAGE SHELL -c CMD` under `env -i` (the image's PATH; TMPDIR passed on) in its --pwd, a bound path.
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
exec env -i PATH=/usr/bin:/bin HOME="$home" ${TMPDIR:+TMPDIR="$TMPDIR"} "$@"
"""
# What the command inside the container sees (prepended to the example's command by the test only).
PROBE = "echo container-env PATH=$PATH python3=$(command -v python3 || echo none) >&2; "
SEEN = re.compile(r"seen cwd=(\S+) input=(\S+) tmpdir=(\S+) end")
RECORD = re.compile(r"^\[scratch\] (\{.*\})$", re.M)

# Appended to the example rules for the SIGKILL test: every job process (they all parse the workflow) holds a
# copy to a path containing SHADOW_ROUTE_TEST_HOLD_AT half-written, says where, and waits to be killed.
HOLD_COPY = r"""

def _held_copy_data(fin, fout, size, _copy=__import__("durable")._copy_data):
    import json, os

    hold, target = os.environ.get("SHADOW_ROUTE_TEST_HOLD"), os.readlink(f"/proc/self/fd/{fout}")
    if not hold or os.environ["SHADOW_ROUTE_TEST_HOLD_AT"] not in target:
        return _copy(fin, fout, size)
    os.write(fout, os.read(fin, size // 2))
    os.fsync(fout)
    note = os.path.join(hold, f"{os.getpid()}.json")
    with open(note + ".part", "w") as fh:
        json.dump({"pid": os.getpid(), "partial": target, "size": size}, fh)
    os.rename(note + ".part", note)
    open(os.path.join(hold, "fifo")).read()  # blocks: the test kills this process here
    raise RuntimeError("the copy hold was released; the test should have killed this job")


__import__("durable")._copy_data = _held_copy_data
"""
# A shadow rule with an input outside the working directory (Snakemake's own shadow refuses it), a directory() output.
OUTSIDE_RULE = """

rule outside_input_to_directory:
    input: ref="../shared-ref/ref.txt"
    output: folder=directory("results/folder")
    log: "logs/outside_input_to_directory/run.log"
    shadow: "minimal"
    shell: "mkdir -p {output.folder}/sub && cp {input.ref:q} {output.folder:q}/sub/ref.txt && pwd -P > {output.folder:q}/cwd.txt 2> {log:q}"
"""
FOLDER = ["results/folder/.snakemake_timestamp", "results/folder/cwd.txt", "results/folder/sub/ref.txt"]


def count(of):  # an output holding one number: of(its sample's text)
    return lambda path, sample, texts: int(path.read_text()) == of(texts[sample])


def line_table(path, _, texts):
    return path.read_text() == "".join(f"{sample}\t{text.count(chr(10))}\n" for sample, text in texts.items())


def word_lengths(path, sample, texts):
    rows = csv.DictReader(path.open(encoding="utf-8"), delimiter="\t")
    return {int(r["length"]): int(r["words"]) for r in rows} == collections.Counter(map(len, texts[sample].split()))


def longest_words(path, sample, texts):
    return json.loads(path.read_text()) == sorted(set(texts[sample].split()), key=lambda w: (-len(w), w))[:5]


@dataclass
class Kind:
    rule: str  # the example rule's name
    output: str  # its output ({sample}: one per sample)
    check: object  # check(path, sample, texts): whether the output is complete and right
    shadow: bool = True  # shadow: "minimal", staged by the profile's shadow_route (else: by itself)
    needs: list = field(default_factory=list)  # kinds whose outputs it reads
    args: list = field(default_factory=list)  # extra snakemake arguments ({repo}: the repository)


KINDS = {
    "shell": Kind("count_lines", "results/lines/{sample}.txt", count(lambda text: text.count("\n")), shadow=False),
    "python-script": Kind("line_table", "results/line_table.tsv", line_table, shadow=False, needs=["shell"]),
    "r-script": Kind("word_lengths", "results/word_lengths/{sample}.tsv", word_lengths),
    "notebook": Kind("longest_words", "results/longest_words/{sample}.json", longest_words),
    "wrapper": Kind("count_chars", "results/chars/{sample}.txt", count(len), args=["--wrapper-prefix", WRAPPERS]),
    "container": Kind(
        "count_words_in_container", "results/words/{sample}.txt", count(lambda t: len(t.split())), args=[APPTAINER]
    ),
}
# Edits of the examples: (file, old, new), old "" appends; the notebook gets cells ((id, source), ...).
# FAILS: each fails after writing its output (the notebook: a failing cell, then one that must not run).
FAILS = {
    "shell": (SMK, '{output.lines:q}")', "{output.lines:q}" + FAIL_COMMAND + '")'),
    "python-script": ("workflow/scripts/line_table.py", "\n\n\nif", f"\n        {RAISE}\n\nif"),  # in its with-block
    "r-script": (R_SCRIPT, "", f'stop("{FAILURE}")\n'),
    "notebook": (("fail", RAISE), ("after-the-failure", 'print("not run")\n')),
    "wrapper": (WRAPPER_PY, "", RAISE),
    "container": (SMK, '2> {log:q}"', "2> {log:q}" + FAIL_COMMAND + '"'),
}
# REVEAL: each shadow kind also says where it worked (directory, where its input resolves to, $TMPDIR): the R
# script and the wrapper in their log, the notebook in a cell's output, the container on its standard error.
R_SEEN = 'message(sprintf("seen cwd=%s input=%s tmpdir=%s end", getwd(), normalizePath(snakemake@input[["text"]]), Sys.getenv("TMPDIR")))\n'
NOTEBOOK_SEEN = "import os\nprint(f\"seen cwd={os.getcwd()} input={os.path.realpath(snakemake.input.text)} tmpdir={os.environ.get('TMPDIR')} end\")\n"
SH_SEEN = "echo seen cwd=$(pwd -P) input=$(realpath {}) tmpdir=$TMPDIR end"
REVEAL = {
    "r-script": (R_SCRIPT, "", R_SEEN),
    "notebook": [("seen", NOTEBOOK_SEEN)],
    "wrapper": (WRAPPER_PY, "", f'shell("{SH_SEEN.format("{snakemake.input.text:q}")} >> {{snakemake.log:q}}")\n'),
    "container": (
        SMK,
        'shell:\n        "wc -w',
        f'shell:\n        "{PROBE}{SH_SEEN.format("{input.text:q}")} >&2; wc -w',
    ),
}
SHADOW_KINDS = [kind for kind, spec in KINDS.items() if spec.shadow]
TOOLS = {"r-script": ("Rscript", "Debian's r-base-core"), "notebook": ("jupyter-nbconvert", "requirements.txt")}


def edit(path, old, new):
    """Replace `old` (found once) by `new` in a file; with old "", append `new`."""
    text = path.read_text()
    assert not old or text.count(old) == 1, f"{path.name}: expected {old!r} once"
    path.write_text(text.replace(old, new) if old else text + new)


def change(repo, kind, edits):
    """Apply an edit of FAILS or REVEAL to the example of `kind`."""
    if kind != "notebook":
        path, old, new = edits[kind]
        return edit(repo / path, old, new)
    path = repo / "workflow/notebooks/longest_words.py.ipynb"
    notebook = json.loads(path.read_text())
    notebook["cells"] += [{**notebook["cells"][0], "id": id_, "source": [source]} for id_, source in edits[kind]]
    path.write_text(json.dumps(notebook))


def fail_r(repo):
    change(repo, "r-script", FAILS)


def reveal_paths(repo, kinds):
    for kind in set(kinds) & set(REVEAL):
        change(repo, kind, REVEAL)


def require_tools(*kinds):
    """Skip without a kind's tool locally; CI (REQUIRE_SLURM=1, which installs it in .ci/run) fails instead."""
    for name, what in (TOOLS[kind] for kind in kinds if kind in TOOLS):
        if not (shutil.which(name) or (BIN / name).exists()):
            missing_in_ci_fails(f"{name} is not installed ({what}); .ci/run installs it")


def sample_texts(repo):
    rows = csv.DictReader((repo / "config/samples.tsv").read_text(encoding="utf-8").splitlines(), delimiter="\t")
    return {row["sample"]: (repo / "data/inputs" / row["path"]).read_text(encoding="utf-8") for row in rows}


def add_examples(repo):
    """Every example of docs/rule-kinds.md in the repository: rules in workflow/rules/kinds.smk (included
    from the Snakefile), files at the paths the page names, outputs in FINAL_OUTPUTS. Returns {kind: rule text}."""
    found = list(EXAMPLE.finditer((repo / "docs/rule-kinds.md").read_text(encoding="utf-8")))
    rules = {m["kind"]: m["body"] for m in found if not m["path"]}
    assert sorted(rules) == sorted(KINDS), "docs/rule-kinds.md has one example rule per kind"
    for m in found:
        if m["path"]:
            (repo / m["path"]).parent.mkdir(parents=True, exist_ok=True)
            (repo / m["path"]).write_text(m["body"], encoding="utf-8")
    (repo / SMK).write_text("\n\n".join(rules[kind] for kind in KINDS), encoding="utf-8")
    snakefile, include = repo / "workflow/Snakefile", 'include: "rules/contract.smk"\n'
    edit(snakefile, include, include + 'include: "rules/kinds.smk"\n')
    final = "".join(f"    **dict.fromkeys(expand({k.output!r}, sample=SAMPLE_IDS)),\n" for k in KINDS.values())
    edit(snakefile, "FINAL_OUTPUTS = {\n", "FINAL_OUTPUTS = {\n" + final)  # final, not published
    return rules


def add_outside_rule(repo):
    shared = repo.parent / "shared-ref"
    shared.mkdir()
    (shared / "ref.txt").write_text("reference\n")
    hand_over(shared, workflow_user())
    edit(repo / SMK, "", OUTSIDE_RULE)
    edit(repo / "workflow/Snakefile", "FINAL_OUTPUTS = {\n", "FINAL_OUTPUTS = {\n    'results/folder': None,\n")


def targets(kind, samples):
    return list(dict.fromkeys(KINDS[kind].output.format(sample=s) for s in samples))


def with_fake_apptainer(env, tmp_path):
    """env with the stand-in apptainer first on PATH (its calls: calls.log beside it)."""
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    (fake / "apptainer").write_text(FAKE_APPTAINER)
    (fake / "apptainer").chmod(0o755)
    hand_over(fake, workflow_user())
    return {**env, "PATH": f"{fake}{os.pathsep}{env['PATH']}"}


@pytest.fixture
def kinds_repo(render, tmp_path):
    """(repo, env): every example added; node-local TMPDIR on the repository's filesystem, the stand-in apptainer."""
    repo = render()
    add_examples(repo)
    hand_over(repo, workflow_user())
    return repo, with_fake_apptainer(isolated_env(tmp_path, TMPDIR=str(node_tmp(tmp_path))), tmp_path)


@pytest.fixture
def node_disk(kinds_repo):
    """(dir, env): a "node-local" disk on another filesystem than the repository's (a world-writable sticky dir on
    /dev/shm), and kinds_repo's env with scratch there: TMPDIR (profiles/local), the scheduler's node dirs."""
    node = Path(tempfile.mkdtemp(dir=other_filesystem_than(kinds_repo[0]), prefix="rule-kinds-node-"))
    os.chmod(node, 0o1777)
    yield node, {**kinds_repo[1], "TMPDIR": str(node), "SIM_NODE_SCRATCH_ROOT": str(node)}
    shutil.rmtree(node, ignore_errors=True)


def run_args(repo, profile, kinds, samples):
    args = ["--profile", f"profiles/{profile}"]
    args += list(dict.fromkeys(a.format(repo=repo) for kind in kinds for a in KINDS[kind].args))
    return args + [t for kind in kinds for t in targets(kind, samples)]


def files_under(path):
    return sorted(str(p.relative_to(path.parent)) for p in path.rglob("*") if not p.is_dir()) if path.exists() else []


def shadow_leftovers(repo):
    shadow = repo / ".snakemake/shadow"
    return sorted(p.name for p in shadow.iterdir()) if shadow.exists() else []


def job_records(repo, printed=""):
    """Each job's `[scratch]` record, once: from logs/ and what the jobs printed (a notebook's log stays a notebook)."""
    found = [*scratch_records(repo), *(json.loads(line) for line in RECORD.findall(printed))]
    return list({json.dumps(r, sort_keys=True): r for r in found}.values())


def scratch_root(repo, node):
    """The profiles' tmpdir: <node temp dir>/<slug>-scratch-<uid>."""
    return f"{node}/{repo.name}-scratch-{repo.stat().st_uid}"


def use_snakemakes_shadow(repo):
    """The fallback a profile can choose: shadow jobs in Snakemake's own shadow directory."""
    edit(repo / "profiles/local/config.yaml", "shadow_route: \"'scratch'\"", "shadow_route: \"'snakemake'\"")


def seen_paths(repo, kind, sample, printed):
    """What the job of `kind` for `sample` said about where it worked (REVEAL)."""
    text = printed  # the container's: on standard error, one line per job (told apart by the input)
    if kind != "container":
        text = (repo / "logs" / KINDS[kind].rule / f"{sample}.{'ipynb' if kind == 'notebook' else 'log'}").read_text()
    if kind == "notebook":  # what the cell printed, not its source
        (cell,) = [c for c in json.loads(text)["cells"] if c.get("id") == "seen"]
        text = "".join("".join(o.get("text", "")) for o in cell["outputs"])
    (seen,) = [s for s in SEEN.findall(text) if s[1].endswith(f"/{sample}.txt")]
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


def assert_ran_in_the_image_environment(env, printed, records):
    """Through Snakemake's apptainer code (pull, exec of the pulled image) each command ran in its scratch dir
    (--pwd), the scratch root bound (--bind), and saw only the image's PATH: not the venv, not the host's python."""
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


@pytest.mark.parametrize("context", ["local", "cluster-sim"])
def test_every_rule_kind_from_the_docs_works_in_node_local_scratch_and_puts_its_complete_outputs_under_results(
    kinds_repo, snakemake, request, context
):
    """Also a shadow rule with a ../ input and a directory() output. local: every kind, scratch on the
    repository's filesystem, inputs linked. cluster-sim: the shadow rules as one group job, its node dir on
    another filesystem (inputs copied, outputs copied back across)."""
    repo, env = kinds_repo
    kinds = list(KINDS) if context == "local" else SHADOW_KINDS
    require_tools(*kinds)
    texts = sample_texts(repo)
    reveal_paths(repo, kinds)
    add_outside_rule(repo)
    args = [*run_args(repo, context, kinds, texts), "results/folder"]
    if context == "cluster-sim":
        node, env = request.getfixturevalue("node_disk")
        rules = [KINDS[kind].rule for kind in kinds] + ["outside_input_to_directory"]
        args += ["--groups", *(f"{rule}=kinds" for rule in rules), "--group-components", "kinds=100"]
    run = snakemake(repo, *args, env=env)

    wanted = [t for kind in kinds for t in targets(kind, texts)]
    assert files_under(repo / "results") == sorted(wanted + FOLDER), "exactly the declared outputs, no partial file"
    for kind in kinds:
        for sample in texts:
            output = repo / KINDS[kind].output.format(sample=sample)
            assert KINDS[kind].check(output, sample, texts), output
    jobs = sorted((repo / ".cluster-sim/jobs").glob("*.out"))
    printed = run.output if context == "local" else "".join(p.read_text() for p in jobs)
    records = job_records(repo, printed)
    expected = [(KINDS[kind].rule, t) for kind in kinds for t in targets(kind, texts)]
    assert sorted((r["rule"], o) for r in records for o in r["outputs"]) == sorted(
        [*expected, ("outside_input_to_directory", "results/folder")]
    ), "one [scratch] record per job"
    staging = "link" if context == "local" else "copy"
    assert all(r["status"] == "ok" and r["removed"] and r["staging"] == staging for r in records), records
    (root,) = {r["root"] for r in records}
    if context == "local":
        assert root == scratch_root(repo, env["TMPDIR"]), "the profile's root in node-local TMPDIR"
        info = Path(root).stat()
        assert (info.st_mode & 0o777, info.st_uid) == (0o700, repo.stat().st_uid), "a private root of the user"
    else:
        assert len(jobs) == 1, "one scheduler job: the group"
        root_name = f"{repo.name}-scratch-{repo.stat().st_uid}"  # the profile's tmpdir, resolved in the group job
        assert re.fullmatch(rf"{node}/simnode-\d+/job-\d+\.[^/]+/{root_name}", root), root
    assert not Path(root).exists() or not any(Path(root).iterdir()), "no scratch dir left after success"
    assert shadow_leftovers(repo) == [], "nothing in .snakemake/shadow/"
    assert_each_job_worked_in_its_scratch(repo, SHADOW_KINDS, records, printed, staging)
    assert_ran_in_the_image_environment(env, printed, [r for r in records if r["rule"] == KINDS["container"].rule])
    (outside,) = [r for r in records if r["rule"] == "outside_input_to_directory"]
    assert (repo / "results/folder/sub/ref.txt").read_text() == "reference\n"
    assert (repo / "results/folder/cwd.txt").read_text().strip() == f"{outside['dir']}/_wd", "one level per ../"


@pytest.mark.parametrize(
    ("kind", "keep_incomplete"),
    [*((kind, True) for kind in KINDS), ("r-script", False)],
    ids=lambda v: {True: "keep-incomplete", False: "scratch-kept-by-the-profile-alone"}.get(v, v),
)
def test_a_rule_of_each_kind_that_fails_after_writing_its_output_leaves_results_without_it_and_says_why(
    kinds_repo, snakemake, kind, keep_incomplete
):
    """Even with --keep-incomplete (Snakemake then keeps what a failed job wrote; without a route: in results/),
    the output stays in the job's scratch dir, which the profile's scratch_on_failure: keep keeps, with or
    without that flag; the log names it and its host; the next run plans the job again."""
    require_tools(kind)
    repo, env = kinds_repo
    spec = KINDS[kind]
    change(repo, kind, FAILS)
    flags = ["--keep-incomplete"] if keep_incomplete else []
    run = snakemake(repo, *run_args(repo, "local", [kind], ["alpha"]), *flags, env=env, check=False)

    assert run.returncode != 0 and FAILURE in run.output, f"the error is shown:\n{run.output[-3000:]}"
    needed = sorted(t for k in spec.needs for t in targets(k, sample_texts(repo)))
    assert files_under(repo / "results") == needed, "nothing of the failed job reaches results/"
    (output,) = targets(kind, ["alpha"])
    (record,) = [r for r in job_records(repo, run.output) if r["status"] == "failed"]
    assert record["removed"] is False and record["root"] == scratch_root(repo, env["TMPDIR"]), "kept, as profiled"
    assert (Path(record["dir"]) / output).is_file(), f"{output}, written before the failure, kept in scratch"
    assert shadow_leftovers(repo) == []
    if spec.shadow and kind != "notebook":  # a notebook's log is the notebook; the line is on its stderr
        log = (repo / "logs" / spec.rule / "alpha.log").read_text()
        assert f"KEPT for debugging: {record['dir']} (on host {record['host']})" in log, log
        assert kind != "r-script" or FAILURE in log, "R's error is in the rule's log"
    if kind == "notebook":
        assert_the_log_notebook_holds_the_cells_run_up_to_the_error(repo / f"logs/{spec.rule}/alpha.ipynb")
    plan = snakemake(repo, *run_args(repo, "local", [kind], ["alpha"]), "-n", env=env)
    assert f"Missing output files: {output}" in plan.output, plan.output


def assert_the_log_notebook_holds_the_cells_run_up_to_the_error(path):
    """`log: notebook=` of a failed job (docs/rule-kinds.md): the notebook as executed, with Snakemake's
    preamble and the cell that wrote the output run, the failing cell with its error, the next cell not run."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]  # not empty: a notebook
    by_id = {cell.get("id"): cell for cell in cells}
    assert [c["execution_count"] for c in cells] == [1, 2, 3, None], "run up to the failing cell, not after it"
    errors = [(o["ename"], o["evalue"]) for o in by_id["fail"]["outputs"] if o["output_type"] == "error"]
    assert errors == [("RuntimeError", FAILURE)], by_id["fail"]["outputs"]
    assert by_id["longest-words"]["outputs"] == [] and by_id["after-the-failure"]["outputs"] == []


KILLS = [
    ("local", "r-script", "copy-back"),
    ("cluster-sim", "wrapper", "copy-back"),
    ("cluster-sim", "notebook", "stage-in"),
]


@pytest.mark.parametrize(("profile", "kind", "phase"), KILLS)
def test_a_sigkill_during_the_staging_or_the_copy_back_leaves_no_partial_file_at_the_final_path_and_a_rerun_completes(
    kinds_repo, snakemake, tmp_path, node_disk, profile, kind, phase
):
    """SIGKILL of the job's own Snakemake in the middle of a copy. Scratch is on another filesystem than results/:
    the copy-back is the cross-filesystem one (hidden partial copy, fsync, size check, rename)."""
    require_tools(kind)
    repo, (node, env) = kinds_repo[0], node_disk
    edit(repo / SMK, "", HOLD_COPY)
    (hold := tmp_path / "hold").mkdir()
    os.mkfifo(hold / "fifo")
    os.chmod(hold, 0o777)
    os.chmod(hold / "fifo", 0o666)
    grant_traverse(hold)
    (final,) = targets(kind, ["alpha"])
    at = ".scratch-partial-" if phase == "copy-back" else f"{repo.name}-scratch-"  # the final dir, or scratch
    log, args = tmp_path / "run.log", run_args(repo, profile, [kind], ["alpha"])
    holding = {**env, "SHADOW_ROUTE_TEST_HOLD": str(hold), "SHADOW_ROUTE_TEST_HOLD_AT": at}
    proc = start_snakemake(repo, holding, *args, log=log)
    try:
        end = time.monotonic() + 300
        while not (notes := list(hold.glob("*.json"))) and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.05)
        assert notes, f"no job was held (the run ended, or 300 s passed):\n{log.read_text()[-3000:]}"
        where = json.loads(notes[0].read_text())
        partial = Path(where["partial"])
        assert 0 < partial.stat().st_size < where["size"], "killed in the middle of the copy"
        if phase == "copy-back":
            assert partial.parent == (repo / final).parent and partial.name.startswith(f".{Path(final).name}.scratch-")
        else:
            assert partial.is_relative_to(node) and partial.name == "alpha.txt", "the input's copy in scratch"
        assert not (repo / final).exists(), "the final path has nothing yet"
        os.kill(where["pid"], signal.SIGKILL)
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert code != 0, log.read_text()[-3000:]
    assert not (repo / final).exists(), "no file, and so no partial file, at the final path"
    left = [p.name for p in (repo / final).parent.iterdir()] if (repo / final).parent.exists() else []
    assert left == ([partial.name] if phase == "copy-back" else []), "at most the hidden partial copy"

    snakemake(repo, *args, env=env)
    assert files_under(repo / "results") == [final], "the rerun removed the partial copy"
    assert KINDS[kind].check(repo / final, "alpha", sample_texts(repo))


def pin_check(vendor, code):
    script = f"import sys; sys.path.insert(0, {str(vendor)!r}); import shadow_route\n{code}"
    return subprocess.run([str(BIN / "python"), "-c", script], capture_output=True, text=True, timeout=120)


def test_a_snakemake_function_the_route_relies_on_whose_source_changed_is_named_and_only_it(mechanism, tmp_path):
    """Here DAG.unshadow_output is replaced in the process by one with another body, as a release would. (That the
    pin matches the Snakemake the template ships, every run through the route shows.)"""
    (tmp_path / "newer_dag.py").write_text(
        "import shutil\n\n\ndef unshadow_output(self, job, only_log=False, keep_shadow_dir=False):\n"
        "    shutil.copytree(job.shadow_dir, '.')  # what a newer Snakemake might do instead\n"
    )
    changed = pin_check(
        mechanism,
        f"sys.path.insert(0, {str(tmp_path)!r}); import snakemake.api, snakemake.dag, newer_dag\n"
        "snakemake.dag.DAG.unshadow_output = newer_dag.unshadow_output\nshadow_route.check_pin()",
    )
    assert changed.returncode != 0 and f"pinned to Snakemake {version('snakemake')}" in changed.stderr
    assert "snakemake.dag:DAG.unshadow_output: source changed" in changed.stderr, changed.stderr
    assert "Job.prepare" not in changed.stderr, "only the changed function is named"


def test_a_snakemake_that_differs_from_the_pin_stops_the_run_before_any_job_and_the_profile_can_fall_back(
    kinds_repo, snakemake, node_disk
):
    """The fallback, shadow_route: 'snakemake', runs shadow jobs in Snakemake's own shadow directory (no
    [scratch] record), which must be on the filesystem of results/, where its move is a rename."""
    repo, env = kinds_repo
    module = repo / "workflow/vendor/shadow_route.py"
    edit(module, re.search(r'"snakemake.jobs:Job.prepare": "([0-9a-f]{64})"', module.read_text())[1], "0" * 64)
    wrapper = run_args(repo, "local", ["wrapper"], ["alpha"])
    pin = snakemake(repo, *wrapper, env=env, check=False)
    assert pin.returncode != 0 and "snakemake.jobs:Job.prepare: source changed" in pin.output, pin.output[-3000:]
    assert "make setup" in pin.output and "shadow_route: \"'snakemake'\"" in pin.output, "what to do"
    use_snakemakes_shadow(repo)
    other = snakemake(repo, *wrapper, "--shadow-prefix", str(node_disk[0]), env=env, check=False)
    assert other.returncode != 0 and "is not on the filesystem of results/" in other.output, other.output[-3000:]
    assert "--shadow-prefix" in other.output, "what to do"
    assert not (repo / "logs/count_chars").exists() and files_under(repo / "results") == [], "no job ran"
    same = snakemake(repo, *wrapper, "--shadow-prefix", str(repo / ".shadow"), env=env)
    assert files_under(repo / "results") == targets("wrapper", ["alpha"]), "Snakemake's shadow, another Snakemake"
    assert job_records(repo, same.output) == [], "Snakemake's own shadow: no scratch record"


def test_every_conda_env_pins_exactly_with_the_answered_python_and_the_docs_ask_for_the_jupyter_the_tests_run(render):
    repo = render(python_version="3.12")
    envs = sorted((repo / "workflow/envs").glob("*.yaml"))
    assert envs
    for path in envs:
        deps = yaml.safe_load(path.read_text())["dependencies"]
        pins = dict(d.split("=", 1) for d in deps if isinstance(d, str) and re.fullmatch(r"[\w.-]+=[\w.]+", d))
        assert len(pins) == len(deps), f"{path.name}: not every dependency is pinned exactly: {deps}"
        assert pins.get("python") == "3.12", f"{path.name}: python {pins.get('python')}, answered 3.12"
    asked = re.findall(r"`((?:nbconvert|ipykernel)==[\d.]+)`", (repo / "docs/rule-kinds.md").read_text())
    template_pins = (TEMPLATE / "requirements.txt").read_text()
    assert len(asked) == 2 and all(re.search(rf"^{re.escape(pin)}$", template_pins, re.M) for pin in asked), asked
