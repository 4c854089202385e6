"""PROTOTYPE of route (b) of issue 21 (workflow/scripts/shadow_route.py, switched on by
WORKFLOW_SHADOW_ROUTE=scratch): the rules that use `shadow: "minimal"` (R scripts, notebooks, wrappers) work
in scratch.py's node-local scratch, resolved inside the job, and their outputs come back through scratch.py's
atomic copy-back, under the local executor and the cluster-generic one (profiles/cluster-sim).

The "node-local" disk is /dev/shm (tmpfs), a filesystem other than the one of the repository, so the
copy-back is the cross-filesystem one (hidden partial copy, fsync, size check, rename). The examples are those
of docs/rule-kinds.md (tests/test_rule_kinds.py), run with the real snakemake CLI as the workflow user.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import (
    BIN,
    grant_traverse,
    hand_over,
    isolated_env,
    scratch_records,
    start_snakemake,
    workflow_user,
)
from test_rule_kinds import (
    FAILURE,
    KINDS,
    add_examples,
    fail_r,
    fail_wrapper,
    files_under,
    require_tools,
    sample_texts,
    shadow_leftovers,
    targets,
)

pytestmark = pytest.mark.timeout(900)
SHM = Path("/dev/shm")
PROFILES = ["local", "cluster-sim"]
ROUTE_KINDS = {"r-script": fail_r, "wrapper": fail_wrapper}
SCRIPTS = "workflow/scripts"

# Test-only: appended to the example rules, so every job process (they all parse the workflow) holds the
# copy-back of an output in the middle of its hidden partial copy: half the bytes are written, the process
# says where it is, then waits on a FIFO nobody writes to, until the test SIGKILLs it.
HOLD_COPY_BACK = r"""

import durable as _durable_under_test

_copy_data_under_test = _durable_under_test._copy_data


def _held_copy_data(fin, fout, size):
    hold, target = os.environ.get("SHADOW_ROUTE_TEST_HOLD"), os.readlink(f"/proc/self/fd/{fout}")
    if not hold or ".scratch-partial-" not in target:
        return _copy_data_under_test(fin, fout, size)
    os.write(fout, os.read(fin, size // 2))
    os.fsync(fout)
    with open(os.path.join(hold, f"{os.getpid()}.json.part"), "w") as fh:
        json.dump({"pid": os.getpid(), "partial": target, "size": size}, fh)
    os.rename(os.path.join(hold, f"{os.getpid()}.json.part"), os.path.join(hold, f"{os.getpid()}.json"))
    open(os.path.join(hold, "fifo")).read()  # blocks: the test kills this process here
    raise RuntimeError("the copy-back hold was released; the test should have killed this job")


_durable_under_test._copy_data = _held_copy_data
"""


def other_filesystem_or_skip(repo):
    if not SHM.is_dir() or SHM.stat().st_dev == repo.stat().st_dev:
        pytest.skip("needs /dev/shm on a filesystem other than the repository's")


@pytest.fixture
def node_disk():
    """A "node-local" disk on another filesystem: a world-writable sticky dir on /dev/shm, removed after."""
    if not SHM.is_dir():
        pytest.skip("no /dev/shm")
    node = Path(tempfile.mkdtemp(dir=SHM, prefix="shadow-route-node-"))
    os.chmod(node, 0o1777)
    yield node
    shutil.rmtree(node, ignore_errors=True)


@pytest.fixture
def route_repo(render, tmp_path, node_disk):
    """(repo, env, profile args): the examples of docs/rule-kinds.md, the route on, scratch on node_disk."""
    repo = render()
    add_examples(repo)
    other_filesystem_or_skip(repo)
    hand_over(repo, workflow_user())
    env = isolated_env(
        tmp_path,
        WORKFLOW_SHADOW_ROUTE="scratch",
        TMPDIR=str(node_disk),  # profiles/local: system_tmpdir
        SIM_NODE_SCRATCH_ROOT=str(node_disk),  # profiles/cluster-sim: the scheduler's node dirs
    )
    return repo, env


def run_args(repo, profile, kinds, samples):
    args = ["--profile", f"profiles/{profile}"]
    for kind in kinds:
        args += [a.format(repo=repo) for a in KINDS[kind].args]
    return args + [t for kind in kinds for t in targets(kind, samples)]


SEEN = re.compile(r"seen cwd=(\S+) input=(\S+) tmpdir=(\S+) end")


def reveal_paths(repo):
    """Each example also writes into its log the directory it ran in, where its input resolves to, and its
    $TMPDIR (the R script and the wrapper: a line; the notebook: a cell, whose output is in its log notebook)."""
    with open(repo / "workflow/scripts/word_lengths.R", "a", encoding="utf-8") as fh:
        fh.write(
            'message(sprintf("seen cwd=%s input=%s tmpdir=%s end", getwd(), '
            'normalizePath(snakemake@input[["text"]]), Sys.getenv("TMPDIR")))\n'
        )
    with open(repo / "workflow/wrappers/text/count_chars/wrapper.py", "a", encoding="utf-8") as fh:
        fh.write(
            'shell("echo seen cwd=$(pwd -P) input=$(realpath {snakemake.input.text:q}) tmpdir=$TMPDIR end '
            '>> {snakemake.log:q}")\n'
        )
    path = repo / "workflow/notebooks/longest_words.py.ipynb"
    notebook = json.loads(path.read_text())
    source = "import os\nprint(f\"seen cwd={os.getcwd()} input={os.path.realpath(snakemake.input.text)} tmpdir={os.environ.get('TMPDIR')} end\")\n"
    notebook["cells"].append({**notebook["cells"][0], "id": "seen", "source": [source]})
    path.write_text(json.dumps(notebook))


def seen_paths(repo, kind, sample):
    log = repo / "logs" / KINDS[kind].rule / (f"{sample}.ipynb" if kind == "notebook" else f"{sample}.log")
    text = log.read_text()
    if kind == "notebook":  # what the cell printed, not its source
        (cell,) = [c for c in json.loads(text)["cells"] if c.get("id") == "seen"]
        text = "".join("".join(o.get("text", "")) for o in cell["outputs"])
    (seen,) = SEEN.findall(text)
    return dict(zip(("cwd", "input", "tmpdir"), seen, strict=True))


def job_outputs(repo, profile, run):
    """What the job processes printed: the run's output (local), or the scheduler's job files (cluster-sim)."""
    if profile == "local":
        return run.output
    return "".join(p.read_text() for p in sorted((repo / ".cluster-sim/jobs").glob("*.out")))


def uid_of(repo):
    return repo.stat().st_uid


@pytest.mark.parametrize("profile", PROFILES)
def test_r_wrapper_and_notebook_jobs_work_in_node_local_scratch_and_their_outputs_reach_results_whole(
    route_repo, snakemake, node_disk, profile
):
    kinds = ["r-script", "wrapper", "notebook"]
    for kind in kinds:
        require_tools(kind)
    repo, env = route_repo
    texts = sample_texts(repo)
    reveal_paths(repo)
    run = snakemake(repo, *run_args(repo, profile, kinds, texts), env=env)

    wanted = sorted(t for kind in kinds for t in targets(kind, texts))
    assert files_under(repo / "results") == wanted, "exactly the declared outputs, no partial or hidden file"
    for kind in kinds:
        for out in KINDS[kind].outputs:
            for sample in texts:
                KINDS[kind].check(repo / out.format(sample=sample), sample, texts)
    printed = job_outputs(repo, profile, run)
    records = [json.loads(line) for line in re.findall(r"^\[scratch\] (\{.*\})$", printed, re.M)]
    assert sorted(o for r in records for o in r["outputs"]) == wanted, "one [scratch] record per job"
    logged = [o for r in scratch_records(repo) for o in r["outputs"]]
    assert sorted(logged) == sorted(t for kind in ["r-script", "wrapper"] for t in targets(kind, texts))
    for sample in texts:  # a notebook log gets no record line: it stays a notebook
        assert json.loads((repo / f"logs/longest_words/{sample}.ipynb").read_text())["cells"]
    assert {r["status"] for r in records} == {"ok"} and all(r["removed"] for r in records)
    assert {r["rule"] for r in records} == {KINDS[k].rule for k in kinds}
    root_name = f"{repo.name}-scratch-{uid_of(repo)}"  # the profile's tmpdir expression
    if profile == "local":
        assert {r["root"] for r in records} == {str(node_disk / root_name)}, "the local profile's root"
        assert {r["staging"] for r in records} == {"link"}
        info = (node_disk / root_name).stat()
        assert (info.st_mode & 0o777, info.st_uid) == (0o700, uid_of(repo)), "a private root of the user"
    else:  # the root was resolved inside each job, in the node dir the scheduler gave it (SIM_NODE_TMPDIR)
        assert all(re.fullmatch(rf"{node_disk}/simnode-\d+/job-\d+\.[^/]+/{root_name}", r["root"]) for r in records)
        assert len({r["root"] for r in records}) == len(records), "each scheduler job has its own node dir"
        assert {r["staging"] for r in records} == {"copy"}
    # each job ran in its record's directory, read its input there, and had its $TMPDIR in the same root
    by_output = {o: r for r in records for o in r["outputs"]}
    for kind in kinds:
        for sample in texts:
            (output,) = targets(kind, [sample])
            record, seen = by_output[output], seen_paths(repo, kind, sample)
            assert seen["cwd"] == record["dir"], (seen, record)
            assert seen["tmpdir"] == record["root"], "Snakemake's TMPDIR for the job: the resolved root"
            staged = os.path.realpath(repo / "data/inputs" / f"{sample}.txt")
            expected = staged if profile == "local" else f"{record['dir']}/data/inputs/{sample}.txt"
            assert seen["input"] == expected, (
                f"{profile}: the input is {'linked' if profile == 'local' else 'a copy in scratch'}"
            )
    assert shadow_leftovers(repo) == [], "nothing in .snakemake/shadow/"
    assert not any(node_disk.rglob(f"{root_name}/*")), "no scratch dir left after success"


@pytest.mark.parametrize("kind", list(ROUTE_KINDS))
@pytest.mark.parametrize("profile", PROFILES)
def test_a_sigkill_during_the_copy_back_leaves_no_partial_file_at_the_final_path_and_a_rerun_completes(
    route_repo, snakemake, tmp_path, profile, kind
):
    require_tools(kind)
    repo, env = route_repo
    with open(repo / "workflow/rules/kinds.smk", "a", encoding="utf-8") as fh:
        fh.write(HOLD_COPY_BACK)
    hold = tmp_path / "hold"
    hold.mkdir()
    os.mkfifo(hold / "fifo")
    os.chmod(hold, 0o777)
    os.chmod(hold / "fifo", 0o666)
    grant_traverse(hold)
    (final,) = targets(kind, ["alpha"])
    proc = start_snakemake(
        repo,
        {**env, "SHADOW_ROUTE_TEST_HOLD": str(hold)},
        *run_args(repo, profile, [kind], ["alpha"]),
        log=tmp_path / "run.log",
    )
    try:
        held = poll(lambda: next(hold.glob("*.json"), None), deadline=300, proc=proc, log=tmp_path / "run.log")
        where = json.loads(held.read_text())
        partial = Path(where["partial"])
        assert partial.parent == (repo / final).parent and partial.name.startswith(f".{Path(final).name}.scratch-")
        assert 0 < partial.stat().st_size < where["size"], "killed in the middle of the copy"
        assert not (repo / final).exists(), "the final path has nothing while the copy runs"
        os.kill(where["pid"], signal.SIGKILL)  # the job's own snakemake, the one copying back
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = (tmp_path / "run.log").read_text()
    assert code != 0, output[-3000:]
    assert not (repo / final).exists(), "no file, and so no partial file, at the final path"
    assert [p.name for p in (repo / final).parent.iterdir()] == [partial.name], "only the hidden partial copy"

    snakemake(repo, *run_args(repo, profile, [kind], ["alpha"]), env=env)
    assert files_under(repo / "results") == [final], "the rerun removed the partial copy"
    KINDS[kind].check(repo / final, "alpha", sample_texts(repo))


@pytest.mark.parametrize("kind", list(ROUTE_KINDS))
@pytest.mark.parametrize("profile", PROFILES)
def test_a_failed_job_keeps_its_scratch_by_the_profiles_policy_and_its_log_names_host_and_directory(
    route_repo, snakemake, profile, kind
):
    """Without --keep-incomplete: the profile's scratch_on_failure: keep decides, not a run-wide switch."""
    require_tools(kind)
    repo, env = route_repo
    ROUTE_KINDS[kind](repo)
    run = snakemake(repo, *run_args(repo, profile, [kind], ["alpha"]), env=env, check=False)

    assert run.returncode != 0, repr(run)
    (final,) = targets(kind, ["alpha"])
    assert files_under(repo / "results") == [], "nothing of the failed job reaches results/"
    (record,) = scratch_records(repo)
    assert record["status"] == "failed" and record["removed"] is False, record
    kept = Path(record["dir"])
    assert (kept / final).is_file(), "the output written before the failure is kept in scratch, for a look"
    log = (repo / "logs" / KINDS[kind].rule / "alpha.log").read_text()
    # R's error goes to the log (sink); a wrapper's exception is printed by the job's Snakemake
    assert FAILURE in (log if kind == "r-script" else job_outputs(repo, profile, run)), "the error is shown"
    assert f"KEPT for debugging: {kept} (on host {record['host']})" in log, log
    assert shadow_leftovers(repo) == []
    plan = snakemake(repo, *run_args(repo, profile, [kind], ["alpha"]), "-n", env=env)
    assert f"Missing output files: {final}" in plan.output, plan.output


def poll(find, deadline, proc, log):
    """find() until it returns something, the run ends, or `deadline` seconds pass."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = find()
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the copy-back was held:\n{Path(log).read_text()[-3000:]}")
        time.sleep(0.05)
    pytest.fail(f"the copy-back was not held within {deadline} s:\n{Path(log).read_text()[-3000:]}")


def pin_check(scripts, code):
    return subprocess.run(
        [str(BIN / "python"), "-c", f"import sys; sys.path.insert(0, {str(scripts)!r}); import shadow_route\n{code}"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_pin_matches_the_snakemake_the_template_ships_and_a_change_is_named(mechanism, tmp_path):
    """Every Snakemake function the route relies on has the source it was written against; a changed one is
    named (here: DAG.unshadow_output replaced in the process by one with another body, as a release would)."""
    same = pin_check(mechanism, "print(shadow_route.pin_problems())")
    assert same.returncode == 0 and same.stdout.strip() == "[]", same.stdout + same.stderr
    (tmp_path / "newer_dag.py").write_text(
        "import shutil\n\n\ndef unshadow_output(self, job, only_log=False, keep_shadow_dir=False):\n"
        "    shutil.copytree(job.shadow_dir, '.')  # what a newer Snakemake might do instead\n"
    )
    changed = pin_check(
        mechanism,
        f"sys.path.insert(0, {str(tmp_path)!r}); import snakemake.api, snakemake.dag, newer_dag\n"
        "snakemake.dag.DAG.unshadow_output = newer_dag.unshadow_output\n"
        "shadow_route.check_pin()",
    )
    assert changed.returncode != 0
    assert "snakemake.dag:DAG.unshadow_output: source changed" in changed.stderr, changed.stderr
    assert "pinned to Snakemake 9.27.1" in changed.stderr
    assert "Job.prepare" not in changed.stderr, "only the changed function is named"


def test_a_snakemake_that_differs_from_the_pin_stops_the_run_before_any_job(route_repo, snakemake):
    repo, env = route_repo
    module = repo / SCRIPTS / "shadow_route.py"
    text = module.read_text()
    pinned = re.search(r'"snakemake.jobs:Job.prepare": "([0-9a-f]{64})"', text)[1]
    module.write_text(text.replace(pinned, "0" * 64))
    run = snakemake(repo, *run_args(repo, "local", ["wrapper"], ["alpha"]), env=env, check=False)
    assert run.returncode != 0
    assert "snakemake.jobs:Job.prepare: source changed" in run.output, run.output[-3000:]
    assert not (repo / "logs/count_chars").exists() and files_under(repo / "results") == [], "no job ran"
    off = snakemake(repo, *run_args(repo, "local", ["wrapper"], ["alpha"]), env={**env, "WORKFLOW_SHADOW_ROUTE": ""})
    assert files_under(repo / "results") == targets("wrapper", ["alpha"]), "without the route: Snakemake's shadow"
    assert scratch_records(repo) == [], off.output[-2000:]


OUTSIDE_RULE = """

rule outside_input_to_directory:
    input:
        ref="../shared-ref/ref.txt",
    output:
        folder=directory("results/folder"),
    log:
        "logs/outside_input_to_directory/run.log",
    shadow:
        "minimal"
    shell:
        "mkdir -p {output.folder}/sub && cp {input.ref:q} {output.folder:q}/sub/ref.txt && pwd -P > {output.folder:q}/cwd.txt 2> {log:q}"
"""


def test_an_input_outside_the_working_directory_and_a_directory_output(route_repo, snakemake):
    """What Snakemake's own shadow refuses ("../" inputs, jobs.py Job.prepare) works on the route: the input is
    staged at its relative place (the job runs in <dir>/_wd), and the directory output comes back whole."""
    repo, env = route_repo
    shared = repo.parent / "shared-ref"
    shared.mkdir()
    (shared / "ref.txt").write_text("reference\n")
    hand_over(shared, workflow_user())
    with open(repo / "workflow/rules/kinds.smk", "a", encoding="utf-8") as fh:
        fh.write(OUTSIDE_RULE)
    snakefile = repo / "workflow/Snakefile"
    snakefile.write_text(
        snakefile.read_text().replace("FINAL_OUTPUTS = {\n", "FINAL_OUTPUTS = {\n    'results/folder': None,\n", 1)
    )
    snakemake(repo, "--profile", "profiles/cluster-sim", "results/folder", env=env)

    expected = ["results/folder/.snakemake_timestamp", "results/folder/cwd.txt", "results/folder/sub/ref.txt"]
    assert files_under(repo / "results") == expected, "with the marker Snakemake puts in a directory() output"
    assert (repo / "results/folder/sub/ref.txt").read_text() == "reference\n"
    (record,) = scratch_records(repo)
    assert (repo / "results/folder/cwd.txt").read_text().strip() == f"{record['dir']}/_wd"
    assert record["staging"] == "copy" and record["status"] == "ok" and record["out_files"] == 1
