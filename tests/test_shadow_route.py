"""Route (b) of issue 21 beyond the per-kind runs of tests/test_rule_kinds.py: the profile's
`shadow_route: 'scratch'` hands the jobs of `shadow: "minimal"` rules (R scripts, notebooks, wrappers,
containers) to scratch.py (workflow/vendor/shadow_route.py). Here: a group job on the cluster-generic
executor (profiles/cluster-sim) that runs every such kind, an input outside the working directory and a
directory() output; a SIGKILL of the job's command after it wrote its output in scratch, while inputs are
staged in and while outputs are copied back; the pin on the
Snakemake internals the route relies on, and the profile's fallback when it does not hold.

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
    KINDS,
    add_examples,
    assert_each_job_worked_in_its_scratch,
    assert_ran_in_the_image_environment,
    files_under,
    job_records,
    require_tools,
    reveal_paths,
    sample_texts,
    shadow_leftovers,
    targets,
    use_snakemakes_shadow,
    with_fake_apptainer,
)

pytestmark = pytest.mark.timeout(900)
SHM = Path("/dev/shm")
SHADOW_KINDS = [kind for kind, spec in KINDS.items() if spec.shadow]
VENDOR = "workflow/vendor"

# Test-only: appended to the example rules, so every job process (they all parse the workflow) holds a copy
# whose target path contains SHADOW_ROUTE_TEST_HOLD_AT in the middle: half the bytes are written, the process
# says where it is, then waits on a FIFO nobody writes to, until the test SIGKILLs it.
HOLD_COPY = r"""

import durable as _durable_under_test

_copy_data_under_test = _durable_under_test._copy_data


def _held_copy_data(fin, fout, size):
    hold, target = os.environ.get("SHADOW_ROUTE_TEST_HOLD"), os.readlink(f"/proc/self/fd/{fout}")
    if not hold or os.environ["SHADOW_ROUTE_TEST_HOLD_AT"] not in target:
        return _copy_data_under_test(fin, fout, size)
    os.write(fout, os.read(fin, size // 2))
    os.fsync(fout)
    with open(os.path.join(hold, f"{os.getpid()}.json.part"), "w") as fh:
        json.dump({"pid": os.getpid(), "partial": target, "size": size}, fh)
    os.rename(os.path.join(hold, f"{os.getpid()}.json.part"), os.path.join(hold, f"{os.getpid()}.json"))
    open(os.path.join(hold, "fifo")).read()  # blocks: the test kills this process here
    raise RuntimeError("the copy hold was released; the test should have killed this job")


_durable_under_test._copy_data = _held_copy_data
"""


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
    """(repo, env): the examples of docs/rule-kinds.md, scratch on node_disk, the stand-in apptainer."""
    repo = render()
    add_examples(repo)
    if SHM.stat().st_dev == repo.stat().st_dev:
        pytest.skip("needs /dev/shm on a filesystem other than the repository's")
    hand_over(repo, workflow_user())
    env = isolated_env(
        tmp_path,
        TMPDIR=str(node_disk),  # profiles/local: system_tmpdir
        SIM_NODE_SCRATCH_ROOT=str(node_disk),  # profiles/cluster-sim: the scheduler's node dirs
    )
    return repo, with_fake_apptainer(env, tmp_path)


def run_args(repo, profile, kinds, samples):
    args = ["--profile", f"profiles/{profile}"]
    for kind in kinds:
        args += [a.format(repo=repo) for a in KINDS[kind].args if a.format(repo=repo) not in args]
    return args + [t for kind in kinds for t in targets(kind, samples)]


def job_outputs(repo, profile, run):
    """What the job processes printed: the run's output (local), or the scheduler's job files (cluster-sim)."""
    if profile == "local":
        return run.output
    return "".join(p.read_text() for p in sorted((repo / ".cluster-sim/jobs").glob("*.out")))


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


def add_outside_rule(repo):
    """A shadow rule with an input outside the working directory (which Snakemake's own shadow refuses,
    jobs.py Job.prepare) and a directory() output."""
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


def test_one_group_job_runs_every_shadow_kind_in_its_node_local_scratch_on_the_cluster_executor(
    route_repo, snakemake, node_disk
):
    """profiles/cluster-sim with every shadow kind's jobs (and a ../ input, a directory() output) in one
    group job (groups, group-components): each member job works in the node dir the scheduler gave the
    group job, on another filesystem, and its outputs come back whole."""
    for kind in SHADOW_KINDS:
        require_tools(kind)
    repo, env = route_repo
    texts = sample_texts(repo)
    reveal_paths(repo, SHADOW_KINDS)
    add_outside_rule(repo)
    rules = [KINDS[kind].rule for kind in SHADOW_KINDS] + ["outside_input_to_directory"]
    grouping = ["--groups", *(f"{rule}=kinds" for rule in rules), "--group-components", "kinds=100"]
    run = snakemake(repo, *grouping, *run_args(repo, "cluster-sim", SHADOW_KINDS, texts), "results/folder", env=env)

    wanted = sorted(t for kind in SHADOW_KINDS for t in targets(kind, texts))
    folder = ["results/folder/.snakemake_timestamp", "results/folder/cwd.txt", "results/folder/sub/ref.txt"]
    assert files_under(repo / "results") == sorted(wanted + folder), "the declared outputs, no partial file"
    for kind in SHADOW_KINDS:
        for sample in texts:
            (output,) = targets(kind, [sample])
            KINDS[kind].check(repo / output, sample, texts)
    printed = job_outputs(repo, "cluster-sim", run)
    assert len(list((repo / ".cluster-sim/jobs").glob("*.out"))) == 1, "one scheduler job: the group"
    records = job_records(repo, printed)
    assert len(records) == len(wanted) + 1, "one [scratch] record per member job"
    assert {r["status"] for r in records} == {"ok"} and all(r["removed"] for r in records)
    assert {r["staging"] for r in records} == {"copy"}
    root_name = f"{repo.name}-scratch-{repo.stat().st_uid}"  # the profile's tmpdir expression
    (root,) = {r["root"] for r in records}  # resolved inside the group job, in its node dir
    assert re.fullmatch(rf"{node_disk}/simnode-\d+/job-\d+\.[^/]+/{root_name}", root), root
    assert_each_job_worked_in_its_scratch(repo, SHADOW_KINDS, records, printed, "copy")
    assert_ran_in_the_image_environment(env, printed, [r for r in records if r["rule"] == KINDS["container"].rule])
    (outside,) = [r for r in records if r["rule"] == "outside_input_to_directory"]
    assert (repo / "results/folder/sub/ref.txt").read_text() == "reference\n"
    assert (repo / "results/folder/cwd.txt").read_text().strip() == f"{outside['dir']}/_wd", "one level per ../"
    assert shadow_leftovers(repo) == [], "nothing in .snakemake/shadow/"
    assert not Path(root).exists() or not any(Path(root).iterdir()), "no scratch dir left after success"


# (profile, kind, where the copy is held): SIGKILL of the job's own Snakemake process in the middle of a copy
KILLS = [
    ("local", "container", "job"),  # the job's command killed after writing its output in scratch
    ("local", "r-script", "copy-back"),
    ("cluster-sim", "wrapper", "copy-back"),
    ("cluster-sim", "notebook", "stage-in"),
]


@pytest.mark.parametrize(("profile", "kind", "phase"), KILLS)
def test_a_sigkill_during_the_job_staging_or_the_copy_back_leaves_no_partial_file_at_the_final_path_and_a_rerun_completes(
    route_repo, snakemake, tmp_path, node_disk, profile, kind, phase
):
    require_tools(kind)
    repo, env = route_repo
    with open(repo / "workflow/rules/kinds.smk", "a", encoding="utf-8") as fh:
        fh.write(HOLD_COPY)
    hold = tmp_path / "hold"
    hold.mkdir()
    os.mkfifo(hold / "fifo")
    os.chmod(hold, 0o777)
    os.chmod(hold / "fifo", 0o666)
    grant_traverse(hold)
    (final,) = targets(kind, ["alpha"])
    at = ".scratch-partial-" if phase == "copy-back" else f"{repo.name}-scratch-"  # the final dir, or scratch
    holding = {"CONTAINER_TEST_HOLD": str(hold)} if phase == "job" else {"SHADOW_ROUTE_TEST_HOLD": str(hold)}
    proc = start_snakemake(
        repo,
        {**env, **holding, "SHADOW_ROUTE_TEST_HOLD_AT": at},
        *run_args(repo, profile, [kind], ["alpha"]),
        log=tmp_path / "run.log",
    )
    try:
        held = poll(lambda: next(hold.glob("*.json"), None), deadline=300, proc=proc, log=tmp_path / "run.log")
        where = json.loads(held.read_text())
        if phase == "job":  # the command wrote its output whole, in the job's node-local scratch only
            partial = Path(where["workdir"], final)
            assert partial.is_relative_to(node_disk) and partial.is_file(), where
        else:  # held in the middle of a copy
            partial = Path(where["partial"])
            assert 0 < partial.stat().st_size < where["size"], "killed in the middle of the copy"
        if phase == "copy-back":
            assert partial.parent == (repo / final).parent and partial.name.startswith(f".{Path(final).name}.scratch-")
        elif phase == "stage-in":
            assert partial.is_relative_to(node_disk) and partial.name == "alpha.txt", "the input's copy in scratch"
        assert not (repo / final).exists(), "the final path has nothing yet"
        os.kill(where["pid"], signal.SIGKILL)  # the job's own snakemake while copying, or the job's command
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = (tmp_path / "run.log").read_text()
    assert code != 0, output[-3000:]
    assert not (repo / final).exists(), "no file, and so no partial file, at the final path"
    left = [p.name for p in (repo / final).parent.iterdir()] if (repo / final).parent.exists() else []
    assert left == ([partial.name] if phase == "copy-back" else []), "at most the hidden partial copy"

    snakemake(repo, *run_args(repo, profile, [kind], ["alpha"]), env=env)
    assert files_under(repo / "results") == [final], "the rerun removed the partial copy"
    KINDS[kind].check(repo / final, "alpha", sample_texts(repo))


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


def test_a_snakemake_that_differs_from_the_pin_stops_the_run_before_any_job_and_the_profile_can_fall_back(
    route_repo, snakemake
):
    repo, env = route_repo
    module = repo / VENDOR / "shadow_route.py"
    text = module.read_text()
    pinned = re.search(r'"snakemake.jobs:Job.prepare": "([0-9a-f]{64})"', text)[1]
    module.write_text(text.replace(pinned, "0" * 64))
    run = snakemake(repo, *run_args(repo, "local", ["wrapper"], ["alpha"]), env=env, check=False)
    assert run.returncode != 0
    assert "snakemake.jobs:Job.prepare: source changed" in run.output, run.output[-3000:]
    assert "make setup" in run.output and "shadow_route: \"'snakemake'\"" in run.output, "what to do"
    assert not (repo / "logs/count_chars").exists() and files_under(repo / "results") == [], "no job ran"
    use_snakemakes_shadow(repo)
    off = snakemake(repo, *run_args(repo, "local", ["wrapper"], ["alpha"]), env=env)
    assert files_under(repo / "results") == targets("wrapper", ["alpha"]), "the fallback: Snakemake's shadow"
    assert scratch_records(repo) == [], off.output[-2000:]
