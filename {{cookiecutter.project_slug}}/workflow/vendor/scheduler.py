"""A simulated batch scheduler for Snakemake's cluster-generic executor (stdlib only).

It runs each job on this machine the way a batch system would: detached from Snakemake, in a process
group of its own, on a fake node with a fresh "node-local" scratch dir, behind an id that Snakemake
has to poll. The executables in profiles/cluster-sim/ are the scheduler's commands:

    submit JOBSCRIPT         print the new job id, and nothing else
    status JOBID             print running, success or failed; always exit 0
    cancel JOBID [JOBID...]  SIGTERM each job's process group; SIGKILL after CANCEL_GRACE seconds

A supervisor process per job (``scheduler.py supervise``) starts the job with SIM_JOB_ID,
SIM_HOSTNAME and SIM_NODE_TMPDIR (under SIM_NODE_SCRATCH_ROOT, default <tmp>/cluster-sim-<uid>/)
added to its environment, waits for it, applies the faults and records the outcome.

State lives in SIM_CLUSTER_DIR (default .cluster-sim/ in Snakemake's working directory): per job a
record jobs/<id>.json, replaced whole on each change, and jobs/<id>.out, the job's output with the
supervisor's notes. ``load_records(state_dir)`` returns the records (dicts), oldest first. Set at
submit: id, run_seq, rule (``group:<groupid>`` for a group job), wildcards, outputs, jobscript, cwd,
host, faults, log, held, state (pending, running, success, failed, cancelled), submit_time; set by the
supervisor: node_tmpdir, supervisor_pid, pgid, start_time, exit_code, signal, reason, end_time,
visible_time (times in epoch seconds).

Faults, off unless set in the environment of the snakemake command:
    SIM_KILL_JOB=N        SIGKILL the process group of the N-th job of each Snakemake run (a run is
                          the dir of its job scripts) SIM_KILL_AFTER s (default 1) after its start
    SIM_VISIBILITY_LAG=S  a successful job's declared outputs reach the workdir S s after its end
                          (kept in held/<id>/ meanwhile), like a shared filesystem's cache
    SIM_LOST_STATUS=K     the first K status queries of each job get no answer: "running"

From the Snakemake repository template, release {{ cookiecutter._template_version }}.
"""

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ACTIVE_STATES = ("pending", "running")
CANCEL_GRACE = 1.0  # seconds; cluster-generic kills the cancel command itself after 2
HOST = "simnode-01"
PROPERTIES = re.compile(r"^#\s*properties\s*=\s*(\{.*\})\s*$", re.M)  # written by Snakemake in every job script


def note(message: str) -> None:
    print(f"cluster-sim: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- state dir and records
def state_dir_from(env) -> str:
    return os.path.abspath(env.get("SIM_CLUSTER_DIR") or ".cluster-sim")


def job_file(state_dir: str, jobid: str, suffix: str) -> str:
    return os.path.join(state_dir, "jobs", f"{jobid}.{suffix}")


def load_record(state_dir: str, jobid: str) -> dict | None:
    if not jobid.isdigit():  # also keeps a hostile "id" from naming a path
        return None
    try:
        with open(job_file(state_dir, jobid, "json"), encoding="utf-8") as record:
            return json.load(record)
    except FileNotFoundError:
        return None


def load_records(state_dir: str) -> list[dict]:
    """Every job record in state_dir, oldest first."""
    ids = [os.path.basename(path)[:-5] for path in glob.glob(job_file(state_dir, "*", "json"))]
    return [load_record(state_dir, jobid) for jobid in sorted(ids, key=int)]


def save_record(state_dir: str, record: dict) -> None:
    """Replace the record whole; its one writer is submit, then the supervisor (cancel leaves a marker)."""
    path = job_file(state_dir, record["id"], "json")
    with open(f"{path}.{os.getpid()}.part", "w", encoding="utf-8") as part:
        json.dump(record, part, indent=1, sort_keys=True)
    os.replace(f"{path}.{os.getpid()}.part", path)


def next_number(counter_path: str) -> int:
    """Add one to the counter file and return the new value; the lock serialises concurrent callers."""
    with open(counter_path, "a+", encoding="ascii") as counter:
        fcntl.flock(counter, fcntl.LOCK_EX)  # released when the file closes
        counter.seek(0)
        number = int(counter.read() or 0) + 1
        counter.truncate(0)
        counter.write(str(number))
    return number


# ---------------------------------------------------------------- settings and job scripts
def number_setting(env, name: str, default: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    with contextlib.suppress(ValueError):
        if (value := float(raw) if raw else default) >= 0:
            return value
    raise ValueError(f"{name}={raw!r} is not a number >= 0; set a number such as 2, or unset it")


def job_properties(script_text: str) -> dict:
    """Rule, wildcards and declared outputs of a job script, from Snakemake's properties line."""
    match = PROPERTIES.search(script_text)
    props = json.loads(match.group(1)) if match else {}
    rule = f"group:{props.get('groupid')}" if props.get("type") == "group" else props.get("rule")
    return {"rule": rule, "wildcards": props.get("wildcards") or {}, "outputs": props.get("output") or []}


# ---------------------------------------------------------------- submit
def submit(jobscript: str, env) -> str:
    """Record the job, start its supervisor detached, return the job id."""
    lag, kill_job = number_setting(env, "SIM_VISIBILITY_LAG"), int(number_setting(env, "SIM_KILL_JOB"))
    kill_after = number_setting(env, "SIM_KILL_AFTER", 1.0)  # every setting checked before anything is done
    with open(jobscript, encoding="utf-8", errors="replace") as script:
        properties = job_properties(script.read())
    state_dir = state_dir_from(env)
    for sub in ("jobs", "runs"):
        os.makedirs(os.path.join(state_dir, sub), exist_ok=True)
    jobid = str(next_number(os.path.join(state_dir, "seq")))
    # one Snakemake run writes all its job scripts into one temp dir of its own
    run_key = hashlib.sha1(os.path.dirname(os.path.realpath(jobscript)).encode()).hexdigest()[:16]
    run_seq = next_number(os.path.join(state_dir, "runs", run_key))
    faults = {"visibility_lag": lag or None, "kill_after": kill_after if run_seq == kill_job else None}
    record = dict(properties, id=jobid, run_seq=run_seq, jobscript=os.path.abspath(jobscript), cwd=os.getcwd())
    record.update(host=HOST, faults=faults, log=job_file(state_dir, jobid, "out"), held=[])
    record.update(state="pending", submit_time=time.time())
    save_record(state_dir, record)
    with open(record["log"], "ab") as log:  # the supervisor's notes go into the job's output, like slurmstepd's
        supervisor = [sys.executable, "-B", "-I", os.path.abspath(__file__), "supervise", state_dir, jobid]
        # a session of its own: a Ctrl-C in Snakemake's terminal does not reach the job
        subprocess.Popen(supervisor, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    return jobid


def submit_main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # never leave a half-submitted job
    if len(sys.argv) < 2:
        note("usage: submit JOBSCRIPT")
        return 2
    try:
        print(submit(sys.argv[-1], os.environ), flush=True)
    except (OSError, ValueError) as error:
        note(f"submit failed: {error}")
        return 1
    return 0


# ---------------------------------------------------------------- supervisor (one per job, detached)
def signal_group(pgid, signum) -> None:
    if pgid and pgid > 1 and pgid != os.getpgrp():  # never this process's own group
        with contextlib.suppress(ProcessLookupError, PermissionError):  # the group ended already
            os.killpg(pgid, signum)


def prune_empty_dirs(top: str) -> None:
    """Remove the empty dirs under top, like a node's epilog; keep what a (failed) job left there."""
    for dirpath, _dirs, _files in os.walk(top, topdown=False):
        with contextlib.suppress(OSError):  # not empty
            os.rmdir(dirpath)


def start_job(state_dir: str, record: dict) -> subprocess.Popen:
    scratch_root = os.environ.get("SIM_NODE_SCRATCH_ROOT") or os.path.join(
        tempfile.gettempdir(), f"cluster-sim-{os.getuid()}"
    )
    node_dir = os.path.join(os.path.abspath(scratch_root), record["host"])
    os.makedirs(node_dir, exist_ok=True)
    record["node_tmpdir"] = tempfile.mkdtemp(prefix=f"job-{record['id']}.", dir=node_dir)
    env = dict(os.environ, SIM_JOB_ID=record["id"], SIM_HOSTNAME=record["host"], SIM_NODE_TMPDIR=record["node_tmpdir"])
    # its own process group, so that cancel and the kill fault reach the job and all its children
    job = subprocess.Popen(
        [record["jobscript"]], cwd=record["cwd"], env=env, stdin=subprocess.DEVNULL, start_new_session=True
    )
    record.update(state="running", supervisor_pid=os.getpid(), pgid=job.pid, start_time=time.time())
    save_record(state_dir, record)
    if os.path.exists(job_file(state_dir, record["id"], "cancel")):  # cancelled before its pgid was recorded
        signal_group(job.pid, signal.SIGTERM)
    return job


def hide_outputs(state_dir: str, record: dict) -> None:
    """Move a successful job's declared outputs into held/<id>/: the visibility-lag fault."""
    held_dir = os.path.join(state_dir, "held", record["id"])
    for index, output in enumerate(record["outputs"]):
        path = os.path.join(record["cwd"], output)
        if os.path.lexists(path):
            os.makedirs(held_dir, exist_ok=True)
            shutil.move(path, os.path.join(held_dir, str(index)))
            record["held"].append([path, os.path.join(held_dir, str(index))])


def reveal_outputs(state_dir: str, record: dict) -> None:
    """After the lag, move the held outputs back; a newer file put there meanwhile (a rerun) wins."""
    time.sleep(max(0.0, record["end_time"] + record["faults"]["visibility_lag"] - time.time()))
    for path, held in record["held"]:
        if not os.path.lexists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            shutil.move(held, path)
    shutil.rmtree(os.path.join(state_dir, "held", record["id"]), ignore_errors=True)
    record["visible_time"] = time.time()
    save_record(state_dir, record)


def outcome(state_dir: str, jobid: str, returncode: int, killed: bool) -> dict:
    """The record's end fields; death by a signal gives exit code 128 + its number, as in a shell."""
    signum = -returncode if returncode < 0 else None
    exit_code = 128 + signum if signum else returncode
    cancelled = os.path.exists(job_file(state_dir, jobid, "cancel"))
    state = "cancelled" if cancelled else "failed" if killed or returncode else "success"
    reason = "killed by SIGKILL (fault SIM_KILL_JOB)" if killed else f"exit code {exit_code}" if returncode else None
    return {"state": state, "reason": reason, "exit_code": exit_code, "signal": signum}


def supervise(state_dir: str, jobid: str) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    record = load_record(state_dir, jobid)
    try:
        job = start_job(state_dir, record)
    except OSError as error:  # recorded, or status would answer "running" for ever
        note(f"job {jobid} could not start: {error}")
        record.update(state="failed", reason=f"could not start: {error}", end_time=time.time())
        save_record(state_dir, record)
        return 1
    kill_after, killed = record["faults"]["kill_after"], False
    try:
        returncode = job.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        note(f"SIGKILL to the job after {kill_after} s (fault SIM_KILL_JOB: a time limit or preemption)")
        signal_group(job.pid, signal.SIGKILL)
        returncode, killed = job.wait(), True
    signal_group(job.pid, signal.SIGKILL)  # like a scheduler, end whatever the job left running
    prune_empty_dirs(record["node_tmpdir"])
    record.update(outcome(state_dir, jobid, returncode, killed))
    if record["state"] == "success" and record["faults"]["visibility_lag"]:
        hide_outputs(state_dir, record)  # before success is recorded, so Snakemake cannot see them early
    record["end_time"] = time.time()
    save_record(state_dir, record)
    if record["held"]:
        reveal_outputs(state_dir, record)
    return 0


# ---------------------------------------------------------------- status and cancel
def process_alive(pid) -> bool:
    """False once pid is gone; None (a supervisor that has not recorded itself yet) counts as alive."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            # a zombie (exited, and an init that never reaps may leave it so) is gone too
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (TypeError, ProcessLookupError):
        return pid is None
    except OSError:
        return True  # no /proc (macOS), or another user's process: kill() found it


def status(jobid: str, env) -> str:
    state_dir = state_dir_from(env)
    record = load_record(state_dir, jobid)
    if record is None:
        note(f"status: unknown job id {jobid!r} in {state_dir}; reporting failed")
        return "failed"
    lost = int(number_setting(env, "SIM_LOST_STATUS"))
    if lost and (query := next_number(job_file(state_dir, jobid, "queries"))) <= lost:
        note(f"status: job {jobid}: no answer (fault SIM_LOST_STATUS, query {query}/{lost}); reporting running")
        return "running"
    if record["state"] in ACTIVE_STATES and not process_alive(record.get("supervisor_pid")):
        record = load_record(state_dir, jobid)  # it may have recorded the end just before it exited
        if record["state"] in ACTIVE_STATES:
            note(f"status: job {jobid}: its supervisor is gone but the job never finished; reporting failed")
            return "failed"
    return {"success": "success", "failed": "failed", "cancelled": "failed"}.get(record["state"], "running")


def status_main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # dying by a signal would crash the executor plugin
    answer = "failed"
    if len(sys.argv) != 2:
        note(f"status: expected one job id, got {sys.argv[1:]!r}; reporting failed")
    else:
        try:
            answer = status(sys.argv[1].strip(), os.environ)
        except Exception as error:  # an empty answer or a non-zero exit would abort the whole run
            note(f"status: {type(error).__name__}: {error}; reporting failed")
    print(answer, flush=True)
    return 0


def cancel(jobids: list[str], env) -> int:
    """SIGTERM each job's process group, SIGKILL those still running after CANCEL_GRACE; return unknown ids."""
    state_dir = state_dir_from(env)
    known = [jobid for jobid in jobids if load_record(state_dir, jobid) is not None]
    for jobid in known:
        open(job_file(state_dir, jobid, "cancel"), "w").close()  # first: a job starting now sees it
        signal_group(load_record(state_dir, jobid).get("pgid"), signal.SIGTERM)
    deadline = time.monotonic() + CANCEL_GRACE
    running = known
    while running and time.monotonic() < deadline:
        time.sleep(0.05)
        running = [jobid for jobid in running if load_record(state_dir, jobid)["state"] in ACTIVE_STATES]
    for jobid in running:
        note(f"cancel: job {jobid} still runs {CANCEL_GRACE} s after SIGTERM; SIGKILL")
        signal_group(load_record(state_dir, jobid).get("pgid"), signal.SIGKILL)
    for jobid in sorted(set(jobids) - set(known)):
        note(f"cancel: unknown job id {jobid!r} in {state_dir}")
    return len(jobids) - len(known)


def cancel_main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # it runs right after a Ctrl-C
    if len(sys.argv) < 2:
        note("usage: cancel JOBID [JOBID ...]")
        return 2
    return 1 if cancel([jobid.strip() for jobid in sys.argv[1:]], os.environ) else 0


if __name__ == "__main__" and sys.argv[1:2] == ["supervise"]:
    sys.exit(supervise(*sys.argv[2:4]))
