"""Unit tests of the simulated batch scheduler in profiles/cluster-sim.

No Snakemake here: small shell job scripts go through the real ``submit``,
``status`` and ``cancel`` executables, and the JSON records are checked with
``scheduler.load_records``. Every wait polls with a deadline.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

SIM_DIR = Path(__file__).resolve().parents[1] / "profiles" / "cluster-sim"
TIMEOUT = 60  # generous: CI machines can be slow; a passing run never waits this long


def _load_scheduler():
    spec = importlib.util.spec_from_file_location("cluster_sim_scheduler", SIM_DIR / "scheduler.py")
    module = importlib.util.module_from_spec(spec)
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # keep the profile dir clean
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = saved
    return module


scheduler = _load_scheduler()


def wait_until(predicate, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class Cluster:
    def __init__(self, tmp_path: Path):
        self.work = tmp_path / "work"
        self.work.mkdir()
        self.state = tmp_path / "state"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SIM_")}
        self.env.update(SIM_CLUSTER_DIR=str(self.state), SIM_NODE_SCRATCH_ROOT=str(tmp_path / "nodes"))

    def script(self, body: str, name: str = "job.sh", subdir: str = "jobscripts") -> Path:
        path = self.work / subdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n" + body + "\n")
        path.chmod(0o755)
        return path

    def run(self, command: str, *args, **env) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(SIM_DIR / command), *map(str, args)],
            cwd=self.work,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )

    def submit(self, script: Path, **env) -> str:
        proc = self.run("submit", script, **env)
        assert proc.returncode == 0, proc.stderr
        assert re.fullmatch(r"[0-9]+\n", proc.stdout), f"submit printed {proc.stdout!r}"
        return proc.stdout.strip()

    def status(self, jobid: str, **env) -> str:
        proc = self.run("status", jobid, **env)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def wait_final(self, jobid: str, **env) -> str:
        """Poll status like Snakemake does until it is no longer running."""

        def finished():
            word = self.status(jobid, **env).strip()
            return None if word == "running" else word

        return wait_until(finished, f"job {jobid} to finish")

    def record(self, jobid: str) -> dict:
        return scheduler.load_record(str(self.state), jobid)

    def wait_record(self, jobid: str, predicate, what: str) -> dict:
        def matching():
            rec = self.record(jobid)
            return rec if rec and predicate(rec) else None

        return wait_until(matching, what)

    def wait_file(self, name: str) -> Path:
        path = self.work / name
        wait_until(lambda: path.exists() and path.stat().st_size > 0, f"{name} to be written")
        return path


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    for rec in scheduler.load_records(str(c.state)):  # never leave jobs behind
        if scheduler.group_alive(rec.get("pgid")):
            os.killpg(rec["pgid"], signal.SIGKILL)
        if scheduler.pid_alive(rec.get("supervisor_pid")):
            os.kill(rec["supervisor_pid"], signal.SIGKILL)


# --------------------------------------------------------------------------
def test_executables_are_thin_python_wrappers():
    for name in ("submit", "status", "cancel"):
        path = SIM_DIR / name
        text = path.read_text()
        assert text.startswith("#!/usr/bin/env python3\n")
        assert f"scheduler.{name}_main()" in text
        assert os.access(path, os.X_OK), f"{name} is not executable"


def test_no_template_syntax_in_rendered_files():
    forbidden = ["{" + "{", "{" + "%", "{" + "#"]
    for path in [*(SIM_DIR / n for n in ("scheduler.py", "submit", "status", "cancel")), Path(__file__)]:
        text = path.read_text()
        assert not [s for s in forbidden if s in text], f"{path} would be mangled by cookiecutter"


def test_submit_runs_job_detached_with_its_own_environment(cluster):
    py = sys.executable
    script = cluster.script(f"""
echo "id=$SIM_JOB_ID host=$SIM_HOSTNAME tmp=$SIM_NODE_TMPDIR" > env.txt
[ -d "$SIM_NODE_TMPDIR" ] && echo scratch-exists >> env.txt
pwd >> env.txt
"{py}" -c 'import os; print("own-group", os.getpgrp() == os.getppid(), os.getsid(0) == os.getppid())' >> env.txt
echo to-stdout
echo to-stderr >&2
""")
    jobid = cluster.submit(script)
    assert cluster.wait_final(jobid) == "success"
    lines = (cluster.work / "env.txt").read_text().splitlines()
    rec = cluster.record(jobid)
    assert lines[0] == f"id={jobid} host=simnode-01 tmp={rec['node_tmpdir']}"
    assert lines[1:] == ["scratch-exists", str(cluster.work), "own-group True True"]
    assert not rec["node_tmpdir"].startswith(str(cluster.work))  # node-local, not the shared workdir
    assert rec["state"] == "success" and rec["exit_code"] == 0 and rec["signal"] is None
    assert rec["pid"] == rec["pgid"] and rec["pgid"] != os.getpgrp()
    assert rec["submit_time"] <= rec["start_time"] <= rec["end_time"]
    assert rec["cwd"] == str(cluster.work) and rec["host"] == "simnode-01"
    assert rec["jobscript"] == str(script) and Path(rec["script"]).read_text() == script.read_text()
    log = Path(rec["log"]).read_text()
    assert "to-stdout" in log and "to-stderr" in log


@pytest.mark.parametrize("purge", ["", "1"])
def test_node_scratch_is_pruned_at_job_end(cluster, purge):
    empty = cluster.submit(cluster.script('mkdir -p "$SIM_NODE_TMPDIR/a/b"'), SIM_PURGE_SCRATCH=purge)
    kept = cluster.submit(
        cluster.script('mkdir -p "$SIM_NODE_TMPDIR/a"; echo x > "$SIM_NODE_TMPDIR/a/f"'), SIM_PURGE_SCRATCH=purge
    )
    for jobid in (empty, kept):
        assert cluster.wait_final(jobid) == "success"
    # cleaned like an epilog, before status reports the end of the job
    assert not Path(cluster.record(empty)["node_tmpdir"]).exists()
    leftover = Path(cluster.record(kept)["node_tmpdir"]) / "a" / "f"
    if purge:
        assert not leftover.parent.parent.exists()
    else:
        assert leftover.read_text() == "x\n"  # like a kept scratch dir of a failed job


def test_submit_returns_while_the_job_runs(cluster):
    script = cluster.script("sleep 300")
    start = time.monotonic()
    jobid = cluster.submit(script)
    assert time.monotonic() - start < 10  # the job itself would take 300 s
    assert cluster.status(jobid) == "running\n"
    assert cluster.run("cancel", jobid).returncode == 0
    assert cluster.status(jobid) == "failed\n"


def test_failing_job_reports_failed_with_exit_code(cluster):
    jobid = cluster.submit(cluster.script("echo about to fail; exit 3"))
    assert cluster.wait_final(jobid) == "failed"
    rec = cluster.record(jobid)
    assert rec["state"] == "failed" and rec["exit_code"] == 3 and rec["reason"] == "exit code 3"


@pytest.mark.parametrize("args", [["999"], ["../../etc/passwd"], [], ["1", "2"]])
def test_status_of_unknown_job_is_failed_and_exits_zero(cluster, args):
    proc = cluster.run("status", *args)
    assert (proc.returncode, proc.stdout) == (0, "failed\n")
    assert "cluster-sim status" in proc.stderr


def test_cancel_kills_the_whole_process_group(cluster):
    jobid = cluster.submit(cluster.script("sleep 300 & echo $! > child.pid; wait"))
    child = int(cluster.wait_file("child.pid").read_text())
    rec = cluster.wait_record(jobid, lambda r: r["state"] == "running", "job to run")
    assert scheduler.pid_alive(child) and scheduler.group_alive(rec["pgid"])
    proc = cluster.run("cancel", jobid)
    assert proc.returncode == 0, proc.stderr
    wait_until(lambda: not scheduler.pid_alive(child), "background child to die")
    assert not scheduler.group_alive(rec["pgid"])
    rec = cluster.wait_record(jobid, lambda r: r["exit_code"] is not None, "supervisor to record the exit")
    assert rec["state"] == "cancelled" and rec["cancel_requested"] and rec["signal"] == signal.SIGTERM
    assert cluster.status(jobid) == "failed\n"


def test_cancel_escalates_to_sigkill_within_the_plugin_timeout(cluster):
    script = cluster.script("trap '' TERM; echo ready > ready.txt; while :; do sleep 0.1; done")
    ids = [cluster.submit(script) for _ in range(2)]
    cluster.wait_file("ready.txt")
    for jobid in ids:
        cluster.wait_record(jobid, lambda r: r["state"] == "running", "jobs to run")
    start = time.monotonic()
    proc = cluster.run("cancel", *ids, SIM_CANCEL_GRACE="0.3")
    assert time.monotonic() - start < 2.0  # cluster-generic kills the cancel command after 2 s
    assert proc.returncode == 0 and "SIGKILL" in proc.stderr
    for jobid in ids:
        rec = cluster.wait_record(jobid, lambda r: r["exit_code"] is not None, "exit to be recorded")
        assert rec["state"] == "cancelled" and rec["signal"] == signal.SIGKILL
        assert not scheduler.group_alive(rec["pgid"])


def test_cancel_of_unknown_or_finished_jobs(cluster):
    jobid = cluster.submit(cluster.script("true"))
    assert cluster.wait_final(jobid) == "success"
    proc = cluster.run("cancel", jobid)
    assert proc.returncode == 0 and cluster.record(jobid)["state"] == "success"
    proc = cluster.run("cancel", "12345")
    assert proc.returncode == 1 and "unknown job id" in proc.stderr


def test_fault_kill_job_counts_submissions_per_run(cluster):
    env = {"SIM_KILL_JOB": "2", "SIM_KILL_AFTER": "0.3"}
    quick, slow = cluster.script("true", "quick.sh"), cluster.script("sleep 300", "slow.sh")
    first = cluster.submit(quick, **env)
    second = cluster.submit(slow, **env)
    third = cluster.submit(quick, **env)
    other_run = cluster.submit(cluster.script("sleep 300", subdir="other-run"), **env)  # its run_seq is 1
    assert cluster.wait_final(second) == "failed"
    rec = cluster.record(second)
    assert rec["signal"] == signal.SIGKILL and "SIM_KILL_JOB" in rec["reason"]
    assert rec["faults"]["kill_after"] == 0.3
    assert not scheduler.group_alive(rec["pgid"])
    assert cluster.wait_final(first) == "success" and cluster.wait_final(third) == "success"
    assert [cluster.record(j)["run_seq"] for j in (first, second, third, other_run)] == [1, 2, 3, 1]
    assert cluster.status(other_run) == "running\n"
    cluster.run("cancel", other_run)


def test_fault_kill_spares_a_job_that_ends_in_time(cluster):
    jobid = cluster.submit(cluster.script("true"), SIM_KILL_JOB="1", SIM_KILL_AFTER="30")
    assert cluster.wait_final(jobid) == "success"


def test_fault_lost_status_answers_running_then_the_truth(cluster):
    jobid = cluster.submit(cluster.script("true"))
    cluster.wait_record(jobid, lambda r: r["state"] == "success", "job to finish")
    for n in (1, 2):
        proc = cluster.run("status", jobid, SIM_LOST_STATUS="2")
        assert (proc.returncode, proc.stdout) == (0, "running\n")
        assert f"query {n}/2" in proc.stderr
    assert cluster.status(jobid, SIM_LOST_STATUS="2") == "success\n"
    assert cluster.status(jobid) == "success\n"


def _job_with_outputs(cluster, outputs, body):
    props = {"type": "single", "rule": "make", "output": outputs, "wildcards": {"i": "1"}, "jobid": 7}
    return cluster.script("# properties = " + json.dumps(props) + "\n" + body)


def test_fault_visibility_lag_hides_outputs_until_the_lag_is_over(cluster):
    script = _job_with_outputs(
        cluster, ["res/a.txt", "res/d"], "mkdir -p res/d; echo A > res/a.txt; echo B > res/d/b.txt"
    )
    jobid = cluster.submit(script, SIM_VISIBILITY_LAG="1.5")
    assert cluster.wait_final(jobid) == "success"
    # success is only reported after the outputs were hidden: no race here
    assert not (cluster.work / "res/a.txt").exists() and not (cluster.work / "res/d").exists()
    assert len(cluster.record(jobid)["held"]) == 2
    cluster.wait_file("res/a.txt")
    rec = cluster.wait_record(jobid, lambda r: r["visible_time"] is not None, "outputs to be restored")
    assert rec["visible_time"] - rec["end_time"] >= 1.5 and rec["held"] == []
    assert (cluster.work / "res/a.txt").read_text() == "A\n"
    assert (cluster.work / "res/d/b.txt").read_text() == "B\n"
    assert not (cluster.state / "held" / jobid).exists()


def test_without_lag_outputs_are_visible_at_success(cluster):
    jobid = cluster.submit(_job_with_outputs(cluster, ["a.txt"], "echo A > a.txt"))
    assert cluster.wait_final(jobid) == "success"
    assert (cluster.work / "a.txt").read_text() == "A\n"


def test_status_reports_failed_when_the_supervisor_vanished(cluster):
    jobid = cluster.submit(cluster.script("sleep 300"))
    rec = cluster.wait_record(jobid, lambda r: r["state"] == "running", "job to run")
    os.kill(rec["supervisor_pid"], signal.SIGKILL)
    wait_until(lambda: not scheduler.pid_alive(rec["supervisor_pid"]), "supervisor to die")
    proc = cluster.run("status", jobid)
    assert (proc.returncode, proc.stdout) == (0, "failed\n") and "supervisor" in proc.stderr


def test_concurrent_submits_get_unique_ids_and_atomic_records(cluster):
    script = cluster.script("true")
    ids, errors = [], []

    def one():
        try:
            ids.append(cluster.submit(script))
        except BaseException as exc:  # collected, re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not errors
    assert sorted(ids, key=int) == [str(i) for i in range(1, 9)]
    for jobid in ids:
        assert cluster.wait_final(jobid) == "success"
    records = scheduler.load_records(str(cluster.state))
    assert [r["id"] for r in records] == [str(i) for i in range(1, 9)]
    assert all(r["state"] == "success" for r in records)
    leftovers = [p.name for p in (cluster.state / "jobs").iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no half-written temp files


def test_parse_jobscript_rule_and_wildcards():
    props = {"type": "single", "rule": "count", "output": ["results/x.tsv"], "wildcards": {"sample": "x"}, "jobid": 4}
    text = (
        "#!/bin/sh\n# properties = "
        + json.dumps(props)
        + "\ncd /w && python -m snakemake --target-jobs 'count:sample=x'\n"
    )
    info = scheduler.parse_jobscript(text)
    assert info == {"rule": "count", "wildcards": {"sample": "x"}, "outputs": ["results/x.tsv"], "snakemake_jobid": 4}
    fallback = scheduler.parse_jobscript("python -m snakemake --target-jobs 'count:sample=x,n=2' --cores 1")
    assert fallback["rule"] == "count" and fallback["wildcards"] == {"sample": "x", "n": "2"}
    group = {"type": "group", "groupid": "g1", "output": ["a", "b"], "jobid": "uuid"}
    assert scheduler.parse_jobscript("# properties = " + json.dumps(group))["rule"] == "group:g1"
    assert scheduler.parse_jobscript("echo nothing")["rule"] is None
