"""The simulated scheduler of profiles/cluster-sim on its own: submit, status and cancel of a rendered repo.

No Snakemake: small job scripts go through the profile's executables as the workflow user; every wait has a deadline.
"""

import contextlib
import json
import os
import re
import runpy
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import hand_over, isolated_env, node_tmp, run_command, workflow_user

pytestmark = pytest.mark.timeout(300)
DEADLINE = 60  # seconds; generous for a slow CI machine, a passing test never waits this long


def poll(predicate, what, timeout=DEADLINE):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)
    return value


def running(pid):
    """Whether pid runs: a zombie (exited, but never reaped by this container's init) does not."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Cluster:
    """The rendered repo's cluster-sim commands, run as the workflow user in the repo, as Snakemake runs them."""

    def __init__(self, repo, tmp_path):
        self.repo, self.commands = repo, repo / "profiles/cluster-sim"
        self.env = {k: v for k, v in isolated_env(tmp_path).items() if not k.startswith("SIM_")}
        self.env["SIM_NODE_SCRATCH_ROOT"] = str(node_tmp(tmp_path))
        self.state = repo / ".cluster-sim"
        # the profile's own record reader; run_path writes no __pycache__ into the user's repo
        self.load_records = runpy.run_path(str(repo / "workflow/vendor/scheduler.py"))["load_records"]

    def script(self, body, name="job.sh", run="run-1", properties=None):
        """A job script in `run`, the per-run dir Snakemake writes a run's job scripts to."""
        path = self.repo / run / name
        path.parent.mkdir(exist_ok=True)
        props = f"# properties = {json.dumps(properties)}\n" if properties else ""
        path.write_text(f"#!/bin/sh\n{props}{body}\n")
        path.chmod(0o755)
        hand_over(path.parent, workflow_user())
        return path

    def run(self, command, *args, **env):
        cmd = [str(self.commands / command), *map(str, args)]
        return run_command(cmd, cwd=self.repo, env={**self.env, **env}, timeout=DEADLINE, user=workflow_user())

    def submit(self, script, **env):
        proc = self.run("submit", script, **env)
        assert proc.returncode == 0, repr(proc)
        assert re.fullmatch(r"[0-9]+\n", proc.stdout), f"submit printed {proc.stdout!r}"
        return proc.stdout.strip()

    def status(self, jobid, **env):
        proc = self.run("status", jobid, **env)
        assert proc.returncode == 0, repr(proc)
        return proc.stdout

    def final_status(self, jobid, **env):
        """Poll status as Snakemake does until it no longer answers running."""
        return poll(lambda: (word := self.status(jobid, **env).strip()) != "running" and word, f"job {jobid} to end")

    def records(self, state=None):
        return {rec["id"]: rec for rec in self.load_records(str(state or self.state))}

    def record_when(self, jobid, predicate, what):
        return poll(lambda: (rec := self.records().get(jobid)) and predicate(rec) and rec, what)


@pytest.fixture
def cluster(render, tmp_path):
    sim = Cluster(render(), tmp_path)
    yield sim
    for rec in [*sim.records().values(), *sim.records(tmp_path / "elsewhere").values()]:  # leave no process behind
        for kill, pid in ((os.killpg, rec.get("pgid")), (os.kill, rec.get("supervisor_pid"))):
            with contextlib.suppress(ProcessLookupError, TypeError):
                kill(pid, signal.SIGKILL)


def test_a_job_runs_detached_on_a_fake_node_whose_scratch_is_removed_unless_the_job_left_files(cluster):
    script = cluster.script(f"""
echo "$SIM_JOB_ID $SIM_HOSTNAME $SIM_NODE_TMPDIR" > env.txt
test -d "$SIM_NODE_TMPDIR" && pwd >> env.txt && mkdir -p "$SIM_NODE_TMPDIR/a/b"
"{sys.executable}" -c 'import os; print(os.getpgrp() == os.getsid(0) == os.getppid())' >> env.txt
echo to-stdout; echo to-stderr >&2""")
    jobid = cluster.submit(script)
    kept = cluster.submit(cluster.script('mkdir "$SIM_NODE_TMPDIR/a"; echo x > "$SIM_NODE_TMPDIR/a/f"', "kept.sh"))
    assert cluster.final_status(jobid) == cluster.final_status(kept) == "success"
    rec = cluster.records()[jobid]
    lines = (cluster.repo / "env.txt").read_text().splitlines()
    assert lines == [f"{jobid} simnode-01 {rec['node_tmpdir']}", str(cluster.repo), "True"], "own session and group"
    assert rec["node_tmpdir"].startswith(cluster.env["SIM_NODE_SCRATCH_ROOT"]), "node-local, not the shared workdir"
    assert rec["state"] == "success" and rec["exit_code"] == 0 and rec["signal"] is None
    assert rec["submit_time"] <= rec["start_time"] <= rec["end_time"]
    assert rec["host"] == "simnode-01" and rec["jobscript"] == str(script)
    log = Path(rec["log"]).read_text()
    assert "to-stdout" in log and "to-stderr" in log
    assert not Path(rec["node_tmpdir"]).exists(), "only empty folders left: cleaned before status reports the end"
    assert (Path(cluster.records()[kept]["node_tmpdir"]) / "a/f").read_text() == "x\n", "like a failed job's scratch"


def test_submit_returns_at_once_and_cancel_ends_process_groups_in_2_s_even_deaf_to_sigterm_naming_unknown_ids(cluster):
    start = time.monotonic()
    jobid = cluster.submit(cluster.script("sleep 300 & echo $! > child.pid; wait"))
    assert time.monotonic() - start < 10, "the job itself takes 300 s"
    deaf = cluster.script("trap '' TERM; touch ready.$SIM_JOB_ID; while :; do sleep 0.1; done", "deaf.sh")
    ids = [cluster.submit(deaf) for _ in range(2)]
    child = int(poll(lambda: (cluster.repo / "child.pid").exists() and (cluster.repo / "child.pid").read_text(), "pid"))
    assert cluster.status(jobid) == "running\n" and running(child)
    poll(lambda: len(list(cluster.repo.glob("ready.*"))) == 2, "the traps to be set")
    start = time.monotonic()
    proc = cluster.run("cancel", jobid, *ids, "12345")
    assert time.monotonic() - start < 2.0, "cluster-generic kills the cancel command after 2 s"
    assert proc.returncode == 1 and "SIGKILL" in proc.stderr and "unknown job id '12345'" in proc.stderr
    poll(lambda: not running(child), "the job's background child to die")
    for job, sig in ((jobid, signal.SIGTERM), (ids[0], signal.SIGKILL), (ids[1], signal.SIGKILL)):
        rec = cluster.record_when(job, lambda r: r["state"] not in ("pending", "running"), "the end to be recorded")
        assert rec["state"] == "cancelled" and rec["signal"] == sig
    assert cluster.status(jobid) == "failed\n"


@pytest.mark.parametrize("args", [["999"], ["../../etc/passwd"], [], ["1", "2"]])
def test_status_answers_failed_and_exits_zero_for_an_unknown_or_malformed_job_id(cluster, args):
    proc = cluster.run("status", *args)
    assert (proc.returncode, proc.stdout) == (0, "failed\n")
    assert "cluster-sim: status" in proc.stderr


def test_a_failing_job_reports_its_exit_code_after_k_lost_status_answers_and_cancel_leaves_it_alone(cluster):
    jobid = cluster.submit(cluster.script("echo about to fail; exit 3"))
    rec = cluster.record_when(jobid, lambda r: r["state"] not in ("pending", "running"), "the job to end")
    for query in (1, 2):  # the lost-status fault answers running k times, then the truth
        proc = cluster.run("status", jobid, SIM_LOST_STATUS="2")
        assert (proc.returncode, proc.stdout) == (0, "running\n") and f"query {query}/2" in proc.stderr
    assert cluster.status(jobid, SIM_LOST_STATUS="2") == cluster.status(jobid) == "failed\n"
    assert rec["state"] == "failed" and rec["exit_code"] == 3 and rec["reason"] == "exit code 3"
    assert cluster.run("cancel", jobid).returncode == 0 and cluster.records()[jobid] == rec, "left as it is"


def test_kill_fault_kills_the_nth_job_of_each_run_only_and_spares_one_that_ends_in_time(cluster):
    env = {"SIM_KILL_JOB": "2", "SIM_KILL_AFTER": "0.3"}
    quick, slow = cluster.script("true", "quick.sh"), cluster.script("sleep 300", "slow.sh")
    first, second, third = (cluster.submit(script, **env) for script in (quick, slow, quick))
    other_run = cluster.submit(cluster.script("sleep 300", run="run-2"), **env)  # the first job of its run
    in_time = cluster.submit(cluster.script("true", run="run-3"), SIM_KILL_JOB="1", SIM_KILL_AFTER="30")
    assert cluster.final_status(second) == "failed"
    rec = cluster.records()[second]
    assert rec["signal"] == signal.SIGKILL and "SIM_KILL_JOB" in rec["reason"] and rec["faults"]["kill_after"] == 0.3
    assert cluster.final_status(first) == cluster.final_status(third) == cluster.final_status(in_time) == "success"
    assert [cluster.records()[j]["run_seq"] for j in (first, second, third, other_run)] == [1, 2, 3, 1]
    assert cluster.status(other_run) == "running\n"


def test_outputs_are_visible_at_success_unless_the_lag_fault_hides_them_a_job_or_groups_until_it_is_over(cluster):
    props = {"type": "single", "rule": "make", "output": ["res/a.txt", "res/d"], "wildcards": {"i": "1"}, "jobid": 7}
    script = cluster.script("mkdir -p res/d; echo A > res/a.txt; echo B > res/d/b.txt", properties=props)
    jobid = cluster.submit(script, SIM_VISIBILITY_LAG="1.5")
    assert cluster.final_status(jobid) == "success"
    assert not (cluster.repo / "res/a.txt").exists() and not (cluster.repo / "res/d").exists(), "hidden at success"
    rec = cluster.record_when(jobid, lambda r: r.get("visible_time"), "the outputs to be visible")
    assert rec["visible_time"] - rec["end_time"] >= 1.5 and rec["rule"] == "make"
    assert (cluster.repo / "res/a.txt").read_text() == "A\n" and (cluster.repo / "res/d/b.txt").read_text() == "B\n"
    props = {"type": "group", "groupid": "per_sample", "output": ["x.txt", "y.txt"], "jobid": "a1b2"}
    script = cluster.script("echo x > x.txt; echo y > y.txt", "group.sh", properties=props)
    group = cluster.submit(script, SIM_VISIBILITY_LAG="1")
    assert cluster.final_status(group) == "success"
    rec = cluster.record_when(group, lambda r: r.get("visible_time"), "the group's outputs to be visible")
    assert rec["rule"] == "group:per_sample" and (cluster.repo / "y.txt").read_text() == "y\n"
    props = {"type": "single", "rule": "make", "output": ["a.txt"], "wildcards": {}, "jobid": 1}
    plain = cluster.submit(cluster.script("echo A > a.txt", "plain.sh", properties=props))  # no lag fault
    assert cluster.final_status(plain) == "success" and (cluster.repo / "a.txt").read_text() == "A\n"


def test_status_answers_failed_when_the_supervisor_died_before_the_job_ended(cluster):
    jobid = cluster.submit(cluster.script("sleep 300"))
    rec = cluster.record_when(jobid, lambda r: r["state"] == "running", "the job to start")
    os.kill(rec["supervisor_pid"], signal.SIGKILL)
    poll(lambda: not running(rec["supervisor_pid"]), "the supervisor to die")
    proc = cluster.run("status", jobid)
    assert (proc.returncode, proc.stdout) == (0, "failed\n") and "supervisor is gone" in proc.stderr


def test_concurrent_submits_get_distinct_ids_and_whole_records_in_sim_cluster_dir(cluster, tmp_path):
    state = tmp_path / "elsewhere"
    state.mkdir()
    hand_over(state, workflow_user())
    script = cluster.script("true")
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: cluster.submit(script, SIM_CLUSTER_DIR=state), range(8)))
    assert sorted(ids, key=int) == [str(i) for i in range(1, 9)]
    for jobid in ids:
        assert cluster.final_status(jobid, SIM_CLUSTER_DIR=state) == "success"
    assert list(cluster.records(state)) == [str(i) for i in range(1, 9)] and not cluster.state.exists()


@pytest.mark.parametrize("setting", ["SIM_VISIBILITY_LAG=soon", "SIM_KILL_JOB=-1", "SIM_KILL_AFTER=x"])
def test_a_bad_fault_setting_fails_the_submit_with_one_clear_error(cluster, setting):
    name, value = setting.split("=")
    proc = cluster.run("submit", cluster.script("true"), **{"SIM_KILL_JOB": "1", name: value})
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"{name}={value!r}" in proc.stderr and "unset it" in proc.stderr
    assert cluster.records() == {}, "no job was submitted"
