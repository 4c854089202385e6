"""The generated example on a real single-node Slurm, through snakemake-executor-plugin-slurm.

`profiles/slurm` is used as generated, with the site settings a team at this "site" fills in
(configure_site in slurm_cluster.py: account testacct, partition debug, scratch variable TEST_NODE_SCRATCH). Overrides on the command line (OVERRIDES in slurm_cluster.py,
shared with benchmark 6), each because a one-node test cluster differs from a real site:
  --slurm-init-seconds-before-status-checks 2   test jobs take seconds, not the 40 s a real site waits
  --latency-wait 10                             one local disk, no shared-filesystem lag to absorb
  --jobs 2                                      one node with 2 cores
The site's node-local scratch variable, TEST_NODE_SCRATCH in the profile's tmpdir, is
exported by the test; sbatch propagates it into jobs (--export=ALL), as a site prolog would set it.
(Slurm does not pass SLURM_* variables from the submitting environment, so SLURM_TMPDIR can't be used here.)

Locally these tests skip with a reason when no cluster answers; in CI (REQUIRE_SLURM=1, set by
.ci/run after tests/slurm/up.sh) a missing cluster is a failure.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import (
    hand_over,
    isolated_env,
    manifest_files,
    node_tmp,
    require_slurm,
    results_bytes,
    run_command,
    scratch_records,
    start_snakemake,
    tool,
    workflow_user,
)
from slurm_cluster import OVERRIDES, SITE, configure_site, jobs_in
from test_benchmarks_smoke import DOC, run_benchmarks
from test_cluster_sim_e2e import RULE_JOBS
from test_rule_kinds import (
    FAILURE,
    KINDS,
    add_examples,
    assert_each_job_worked_in_its_scratch,
    assert_ran_in_the_image_environment,
    fail_r,
    files_under,
    job_records,
    require_tools,
    reveal_paths,
    scratch_root,
    targets,
    with_fake_apptainer,
)
from test_scratch_and_publish_e2e import add_fault_rules, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm"), pytest.mark.timeout(1200)]


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster():
    require_slurm()


def cancel_all():
    """Cancel every job of the user the tests submit as."""
    user = workflow_user() or os.environ.get("USER", "root")
    subprocess.run(["scancel", "-u", user], capture_output=True, timeout=30)


def slurm_env(tmp_path):
    return isolated_env(tmp_path, TEST_NODE_SCRATCH=str(node_tmp(tmp_path, "node-scratch")))


def render_site(render):
    """A repository rendered with the default answers, its Slurm site settings filled in for the test site."""
    repo = render()
    configure_site(repo, **SITE)
    return repo


def run_slurm(repo, tmp_path, *args, check=True, timeout=300, env=None):
    run = run_command(
        [tool("snakemake"), "--profile", "profiles/slurm", *OVERRIDES, *args],
        cwd=repo,
        env=env or slurm_env(tmp_path),
        timeout=timeout,
        on_timeout=cancel_all,
        user=workflow_user(),
    )
    if check:
        assert run.returncode == 0, repr(run)
    return run


def test_example_and_publish_on_slurm_match_the_local_run_in_fewer_grouped_sbatch_jobs(
    render, tmp_path, local_reference
):
    repo = render_site(render)
    t0 = time.monotonic()
    run = run_slurm(repo, tmp_path)
    slurm_seconds = time.monotonic() - t0
    run_slurm(repo, tmp_path, "publish")
    assert results_bytes(repo) == results_bytes(local_reference), "the same meaning, grouped or not"
    assert manifest_files(repo) == manifest_files(local_reference), "the same publish set, byte for byte"
    # the profile's groups: one sbatch job per group instead of one per rule job, each ending COMPLETED
    jobs = set(re.findall(r"SLURM jobid (\d+)", run.output))
    assert 0 < len(jobs) < RULE_JOBS, f"{len(jobs)} sbatch jobs for {RULE_JOBS} rule jobs"
    slurm_logs = sorted(p.parent.name for p in (repo / "logs/slurm").rglob("*.log"))
    assert slurm_logs == ["group_fan_in_report_summary_table", "group_per_sample_summarize_sample_tokenize"]
    sacct = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(sorted(jobs)), "-o", "JobIDRaw,State"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    states = dict(line.split("|") for line in sacct.stdout.split())
    assert states == {job: "COMPLETED" for job in jobs}, sacct.stdout + sacct.stderr
    records = scratch_records(repo)
    assert len(records) == RULE_JOBS and all(r["status"] == "ok" and r["removed"] for r in records)
    assert {r["root"] for r in records} == {
        str(tmp_path / "node-scratch" / f"{repo.name}-scratch-{repo.stat().st_uid}")
    }
    assert list((tmp_path / "node-scratch" / f"{repo.name}-scratch-{repo.stat().st_uid}").iterdir()) == [], (
        "scratch cleaned"
    )
    manifest = json.loads((repo / "publish/current/MANIFEST.json").read_text())
    assert manifest["provenance"]["context"] == "slurm"
    assert subprocess.run([sys.executable, "workflow/vendor/publish.py", "verify"], cwd=repo).returncode == 0
    print(f"\nslurm example run: {slurm_seconds:.1f} s")


def test_every_shadow_kind_works_in_node_local_scratch_in_one_slurm_group_job(render, tmp_path):
    """R script, notebook, wrapper and container rule (docs/rule-kinds.md, shadow_route: 'scratch') as the
    members of one group job on the real Slurm: each works in the node-local root the job resolved on its
    node, says so itself, and its output comes back whole (a failing one: the test below)."""
    kinds = [kind for kind, spec in KINDS.items() if spec.shadow]
    for kind in kinds:
        require_tools(kind)
    repo = render_site(render)
    add_examples(repo)
    reveal_paths(repo, kinds)
    hand_over(repo, workflow_user())
    env = with_fake_apptainer(slurm_env(tmp_path), tmp_path)
    rules = [KINDS[kind].rule for kind in kinds]
    args = [a.format(repo=repo) for kind in kinds for a in KINDS[kind].args]
    grouping = ["--groups", *(f"{rule}=kinds" for rule in rules), "--group-components", "kinds=10"]
    wanted = [t for kind in kinds for t in targets(kind, ["alpha"])]
    run = run_slurm(repo, tmp_path, *grouping, *args, *wanted, env=env)

    assert files_under(repo / "results") == sorted(wanted), "the declared outputs, no partial or hidden file"
    printed = "".join(p.read_text() for p in (repo / "logs/slurm").rglob("*.log"))  # the jobs' stderr
    assert len(list((repo / "logs/slurm").rglob("*.log"))) == 1, "one Slurm job: the group"
    records = job_records(repo, printed)
    assert sorted(o for r in records for o in r["outputs"]) == sorted(wanted), "one [scratch] record per job"
    root = scratch_root(repo, tmp_path / "node-scratch")
    assert all(r["status"] == "ok" and r["removed"] and r["root"] == root for r in records), records
    assert {r["staging"] for r in records} == {"copy"}
    assert_each_job_worked_in_its_scratch(repo, kinds, records, printed, "copy", samples=["alpha"])
    container = [r for r in records if r["rule"] == KINDS["container"].rule]
    assert_ran_in_the_image_environment(env, printed, container)
    assert "slurm" in run.output.lower()


def test_a_failing_r_script_job_on_slurm_keeps_its_node_local_scratch_and_its_log_names_host_and_directory(
    render, tmp_path
):
    """The failure case of the shadow kinds on the real Slurm (their route is the same for every kind: R here)."""
    require_tools("r-script")
    repo = render_site(render)
    add_examples(repo)
    fail_r(repo)
    hand_over(repo, workflow_user())
    (failing,) = targets("r-script", ["beta"])
    failed = run_slurm(repo, tmp_path, failing, check=False)
    assert failed.returncode != 0 and not (repo / failing).exists(), failed.output[-3000:]
    (record,) = [r for r in job_records(repo) if r["status"] == "failed"]
    assert record["root"] == scratch_root(repo, tmp_path / "node-scratch") and not record["removed"], record
    assert (Path(record["dir"]) / failing).is_file(), "written before the failure, kept on the node"
    log = (repo / "logs/word_lengths/beta.log").read_text()
    assert FAILURE in log and f"KEPT for debugging: {record['dir']} (on host {record['host']})" in log, log
    assert not [p for p in (repo / "results").rglob("*") if p.is_file()], "nothing under results/"


def test_sbatch_options_match_the_profile(render, tmp_path):
    repo = render_site(render)
    # one job per rule (grouping off), so each sbatch call carries that rule's own resources
    run = run_slurm(repo, tmp_path, "--verbose", "results/samples/alpha.summary.json", "--groups", "none=none")
    sbatch = [line for line in run.output.splitlines() if "sbatch" in line and "--job-name" in line]
    assert sbatch, run.output[-3000:]
    call = " ".join(sbatch)
    assert (
        f"-A '{SITE['account']}'" in call or f"--account={SITE['account']}" in call or f"-A {SITE['account']}" in call
    )
    assert (
        f"-p {SITE['partition']}" in call
        or f"--partition={SITE['partition']}" in call
        or f"-p '{SITE['partition']}'" in call
    )
    assert re.search(r"(-t|--time)[ =]'?15'?", call), "runtime of tokenize from workflow/profiles/default"
    assert re.search(r"--mem[ =]'?512'?", call), "mem_mb of tokenize from workflow/profiles/default"
    assert "logs/slurm" in call, "output goes to slurm-logdir"


def test_scancel_of_running_jobs_leaves_no_partial_output_retries_once_and_rerun_incomplete_recovers(render, tmp_path):
    repo = render_site(render)
    add_fault_rules(repo)
    env = slurm_env(tmp_path)
    # squeue status: plugin 2.8.0 does not recognise sacct's "CANCELLED by <uid>" and would wait forever
    squeue = ["--slurm-status-command", "squeue"]
    log = tmp_path / "snakemake-scancel.log"
    proc = start_snakemake(repo, env, "--profile", "profiles/slurm", *OVERRIDES, *squeue, "results/slow/s.bin", log=log)
    cancelled, node = [], tmp_path / "node-scratch"

    def writing_since(moment):
        """s.bin being written in node scratch after `moment` (a retry reuses the job's scratch path: the
        job dir is named by rule, wildcards and outputs, and the leftover of the killed attempt is removed)."""
        return [p for p in node.rglob("s.bin") if p.stat().st_size > 0 and p.stat().st_mtime > moment]

    try:
        # The profile's `retries: 1` resubmits a cancelled job once (preemption); cancel both attempts.
        since = 0.0
        for attempt in (1, 2):
            jobs = wait_for(
                lambda done=tuple(cancelled): [j for j in jobs_in(repo, running_only=True) if j not in done],
                timeout=300,
                what=f"the running job id of attempt {attempt}",
            )
            wait_for(
                lambda t=since: writing_since(t),
                timeout=120,
                what=f"attempt {attempt} of the Slurm job to be writing in node scratch",
            )
            subprocess.run(["scancel", *jobs], check=True, timeout=30)  # like a time limit
            since = time.time() + 1.0  # the cancelled attempt writes nothing after its signal
            cancelled += jobs
            assert not (repo / "results/slow/s.bin").exists(), f"no partial output after scancel {attempt}"
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            queue = subprocess.run(["squeue", "-a", "-t", "all"], capture_output=True, text=True).stdout
            pytest.fail(
                f"snakemake did not end after cancelling {cancelled}; squeue:\n{queue}\n{log.read_text()[-3000:]}"
            )
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            cancel_all()
    output = log.read_text()
    assert proc.returncode != 0, output[-3000:]
    assert len(cancelled) == 2 and "Trying to restart job" in output, "the profile's one retry was used"
    assert not (repo / "results/slow/s.bin").exists(), "no partial output after scancel"
    (repo / "release-s").touch()
    run_slurm(repo, tmp_path, *squeue, "--rerun-incomplete", "results/slow/s.bin")
    assert (repo / "results/slow/s.bin").stat().st_size == 100_000_000


def test_real_time_limit_ends_the_job_as_timeout_via_sacct_keeps_its_half_written_scratch_and_rerun_recovers(
    render, tmp_path
):
    repo = render_site(render)
    add_fault_rules(repo)
    # runtime=1: Slurm's smallest limit (minutes), for a job that would wait forever. --retries 0: one
    # attempt shows the time limit; the profile's retry is pinned by the scancel test above.
    limit = ["--set-resources", "slow_writer:runtime=1", "--retries", "0"]
    run = run_slurm(repo, tmp_path, *limit, "results/slow/t.bin", check=False, timeout=600)
    assert run.returncode != 0, run.output[-3000:]
    assert "SLURM status is: 'TIMEOUT'" in run.output, "the plugin's default sacct status saw the time limit"
    slurm_logs = "".join(p.read_text() for p in (repo / "logs/slurm").rglob("*.log"))
    assert "DUE TO TIME LIMIT" in slurm_logs, slurm_logs[-2000:]
    assert not (repo / "results/slow/t.bin").exists(), "no partial output after the time limit"
    kept = re.search(r"scratch dir KEPT for debugging: (\S+) \(on host", (repo / "logs/slow_writer/t.log").read_text())
    assert kept and Path(kept.group(1), "results/slow/t.bin").stat().st_size == 50_000_000, "half-written, kept"
    (repo / "release-t").touch()
    run_slurm(repo, tmp_path, "--rerun-incomplete", "results/slow/t.bin")
    assert (repo / "results/slow/t.bin").stat().st_size == 100_000_000


def test_slurm_benchmark_smoke_run_reports_the_slurm_to_local_ratio_without_touching_the_doc(tmp_path):
    before = DOC.read_bytes()
    proc = run_benchmarks(tmp_path, "--smoke", "--only", "slurm", "--no-write", timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert re.search(r"^ratio\[slurm\] .+ / local \(wall\) = \d+\.\d+x ", proc.stdout, re.M), proc.stdout[-4000:]
    assert "slurm-wlm" in proc.stdout, "the Slurm version is named in the result"
    assert DOC.read_bytes() == before
