"""A simulated batch scheduler for Snakemake's cluster-generic executor.

Stdlib only. It runs every job on this machine, but the way a batch system
does: detached, in its own session and process group, with its own log file,
a fake node name and a per-job "node-local" scratch directory, and with an
id that Snakemake has to poll. Optional faults reproduce the ways real
clusters break workflows. Three tiny executables in this directory call it:

    submit [ARGS ...] JOBSCRIPT   print the new job id (and nothing else)
    status JOBID                  print running, success or failed; exit 0
    cancel JOBID [JOBID ...]      kill each job's whole process group

State (env ``SIM_CLUSTER_DIR``, default ``.cluster-sim/`` in the current
directory, which is Snakemake's working directory)::

    seq, seq.lock          global job counter (the job id is its value)
    runs/<hash>            per-run counter (one run = one Snakemake tmp dir)
    jobs/<id>.json         the job record, replaced atomically on each change
    jobs/<id>.sh           the spooled copy of the job script that is run
    jobs/<id>.out          the job's stdout and stderr
    jobs/<id>.sup          the supervisor's own log
    jobs/<id>.lock         serialises read-modify-write of the record
    held/<id>/             outputs held back by the visibility-lag fault

``load_records(state_dir)`` returns all records (dicts), oldest first. A
record holds: id, seq, run_seq, rule, wildcards, snakemake_jobid, outputs,
jobscript, script, submit_args, cwd, host, node_tmpdir, log, supervisor_log,
supervisor_pid, pid, pgid, state (pending, running, success, failed,
cancelled), exit_code, signal, reason, submit_time, start_time, end_time
(epoch seconds), faults, cancel_requested, held, visible_time.

Job environment: the submitter's environment plus
    SIM_JOB_ID        the job id
    SIM_HOSTNAME      the fake node, simnode-01 .. simnode-NN (see SIM_NODES)
    SIM_NODE_TMPDIR   a fresh per-job scratch dir outside the workdir

Settings (all optional):
    SIM_CLUSTER_DIR        state dir (default ./.cluster-sim)
    SIM_NODES              number of fake nodes, jobs go round-robin (default 1)
    SIM_NODE_SCRATCH_ROOT  where node scratch dirs are made
                           (default <system tmp>/cluster-sim-<uid>)
    SIM_PURGE_SCRATCH=1    remove the job's scratch dir when the job ends, as
                           many sites do; default: remove only empty directories
    SIM_CANCEL_GRACE       seconds between SIGTERM and SIGKILL on cancel
                           (default 1.0; cluster-generic gives the whole cancel
                           command only 2 seconds)

Fault injection, all OFF by default:
    SIM_KILL_JOB=N[,M...]  (read by submit) the Nth job submitted by one
                           Snakemake run (1-based; a run is identified by the
                           directory holding its job scripts, so a rerun counts
                           from 1 again) gets SIGKILL on its whole process group
                           SIM_KILL_AFTER seconds (default 1) after it starts,
                           like a time limit or preemption. A job that ends
                           sooner is not killed. status then says failed.
    SIM_VISIBILITY_LAG=S   (read by submit) outputs of a successful job become
                           visible in the shared workdir only S seconds after
                           the job ends, like NFS attribute caching. When the
                           job exits 0 the supervisor moves its declared outputs
                           (from the job script's "# properties" line) into
                           held/<id>/, then records success, then moves them
                           back after S seconds. With S below Snakemake's
                           --latency-wait the run succeeds; above it the main
                           process fails with MissingOutputException.
    SIM_LOST_STATUS=K      (read by status) the first K status queries of each
                           job get no answer from the "scheduler": status prints
                           running (the only safe answer: an empty line, extra
                           text or a non-zero exit aborts the whole Snakemake
                           run) and a note on stderr. Query K+1 tells the truth.

status never exits non-zero and ignores SIGINT (Ctrl-C reaches the whole
foreground process group; a status call dying by a signal makes the plugin
crash). An unknown job id is reported as failed with a note on stderr.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import signal
import sys
import tempfile
import time

FINAL_STATES = ("success", "failed", "cancelled")
DEFAULT_STATE_DIR = ".cluster-sim"
_PROPS = re.compile(r"^#\s*properties\s*=\s*(\{.*\})\s*$", re.M)
_TARGET = re.compile(r"--target-jobs\s+((?:'[^']*'\s*)+)")


# --------------------------------------------------------------------------
# state dir and records
# --------------------------------------------------------------------------
def state_dir_from_env(env=None) -> str:
    env = os.environ if env is None else env
    return os.path.abspath(env.get("SIM_CLUSTER_DIR") or DEFAULT_STATE_DIR)


def _jobs(state_dir: str) -> str:
    return os.path.join(state_dir, "jobs")


def job_path(state_dir: str, jobid: str, suffix: str) -> str:
    return os.path.join(_jobs(state_dir), f"{jobid}.{suffix}")


def atomic_write(path: str, text: str) -> None:
    """Write to a temp file in the same directory, then os.replace it."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load_record(state_dir: str, jobid: str) -> dict | None:
    if not re.fullmatch(r"[0-9]+", str(jobid)):
        return None
    try:
        with open(job_path(state_dir, jobid, "json"), encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None


def load_records(state_dir: str) -> list[dict]:
    """All job records in the state dir, oldest first."""
    records = []
    directory = _jobs(state_dir)
    if not os.path.isdir(directory):
        return records
    for name in os.listdir(directory):
        if name.endswith(".json") and not name.startswith("."):
            rec = load_record(state_dir, name[:-5])
            if rec is not None:
                records.append(rec)
    return sorted(records, key=lambda r: r["seq"])


def save_record(state_dir: str, record: dict) -> None:
    atomic_write(job_path(state_dir, record["id"], "json"), json.dumps(record, indent=1, sort_keys=True) + "\n")


@contextlib.contextmanager
def _locked(path: str):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def record_lock(state_dir: str, jobid: str):
    """Hold the job's lock; yield its current record (None if unknown)."""
    with _locked(job_path(state_dir, jobid, "lock")):
        yield load_record(state_dir, jobid)


def update_record(state_dir: str, jobid: str, **changes) -> dict | None:
    with record_lock(state_dir, jobid) as rec:
        if rec is None:
            return None
        rec.update(changes)
        save_record(state_dir, rec)
        return rec


def _next_ids(state_dir: str, run_key: str) -> tuple[int, int]:
    """Return (global sequence number, sequence number within this run)."""
    os.makedirs(os.path.join(state_dir, "runs"), exist_ok=True)
    with _locked(os.path.join(state_dir, "seq.lock")):
        counters = []
        for path in (
            os.path.join(state_dir, "seq"),
            os.path.join(state_dir, "runs", hashlib.sha1(run_key.encode()).hexdigest()[:16]),
        ):
            try:
                with open(path, encoding="utf-8") as fh:
                    value = int(fh.read().strip() or 0) + 1
            except FileNotFoundError:
                value = 1
            atomic_write(path, f"{value}\n")
            counters.append(value)
    return counters[0], counters[1]


# --------------------------------------------------------------------------
# job scripts
# --------------------------------------------------------------------------
def parse_jobscript(text: str) -> dict:
    """Rule, wildcards, outputs and Snakemake job id of a cluster-generic job script.

    Uses the ``# properties = {json}`` line Snakemake writes; falls back to the
    ``--target-jobs 'rule:wc=value'`` arguments of the job's command.
    """
    info = {"rule": None, "wildcards": {}, "outputs": None, "snakemake_jobid": None}
    match = _PROPS.search(text)
    if match:
        with contextlib.suppress(ValueError):
            props = json.loads(match.group(1))
            if props.get("type") == "group":
                info["rule"] = "group:" + str(props.get("groupid"))
            else:
                info["rule"] = props.get("rule")
                info["wildcards"] = props.get("wildcards") or {}
            info["outputs"] = props.get("output")
            info["snakemake_jobid"] = props.get("jobid")
    if info["rule"] is None:
        target = _TARGET.search(text)
        if target:
            specs = re.findall(r"'([^']*)'", target.group(1))
            rules = []
            for spec in specs:
                rule, _, wc = spec.partition(":")
                rules.append(rule)
                if len(specs) == 1 and wc:
                    info["wildcards"] = dict(kv.split("=", 1) for kv in wc.split(",") if "=" in kv)
            info["rule"] = ",".join(dict.fromkeys(rules))
    return info


def _env_float(name: str, default: float, env=None) -> float:
    env = os.environ if env is None else env
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        print(f"cluster-sim: ignoring {name}={raw!r} (not a number)", file=sys.stderr)
        return default


def _kill_targets(env) -> set[int]:
    raw = (env.get("SIM_KILL_JOB") or "").strip()
    out = set()
    for part in raw.split(","):
        part = part.strip()
        if part.isdigit() and int(part) > 0:
            out.add(int(part))
        elif part:
            print(f"cluster-sim: ignoring SIM_KILL_JOB entry {part!r}", file=sys.stderr)
    return out


# --------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------
def pid_alive(pid) -> bool:
    """True if pid exists and is not a zombie."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def group_alive(pgid) -> bool:
    """True if some non-zombie process is still in process group pgid."""
    if not pgid or pgid <= 1:
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc"):
        return True
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _signal_group(pgid, sig) -> bool:
    if not pgid or pgid <= 1 or pgid == os.getpgrp():
        return False
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _prune_empty_dirs(top: str) -> None:
    """Remove top and the directories below it, as far as they hold no files."""
    for dirpath, _dirs, _files in os.walk(top, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)  # fails (and is skipped) unless empty


def _node_tmpdir(jobid: str, host: str, env) -> str:
    root = env.get("SIM_NODE_SCRATCH_ROOT") or os.path.join(tempfile.gettempdir(), f"cluster-sim-{os.getuid()}")
    node = os.path.join(os.path.abspath(root), host)
    os.makedirs(node, exist_ok=True)
    return tempfile.mkdtemp(prefix=f"job-{jobid}.", dir=node)


# --------------------------------------------------------------------------
# submit
# --------------------------------------------------------------------------
def submit(argv: list[str], env=None, cwd: str | None = None) -> str:
    """Spool the job script, start its supervisor detached, return the job id."""
    import shutil
    import subprocess

    env = dict(os.environ if env is None else env)
    cwd = os.path.abspath(cwd or os.getcwd())
    if not argv:
        raise SystemExit("usage: submit [ARGS ...] JOBSCRIPT")
    jobscript = os.path.abspath(os.path.join(cwd, argv[-1]))
    with open(jobscript, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    state_dir = os.path.abspath(os.path.join(cwd, env.get("SIM_CLUSTER_DIR") or DEFAULT_STATE_DIR))
    os.makedirs(_jobs(state_dir), exist_ok=True)

    seq, run_seq = _next_ids(state_dir, os.path.dirname(os.path.realpath(jobscript)))
    jobid = str(seq)
    nodes = max(1, int(_env_float("SIM_NODES", 1, env)))
    host = f"simnode-{(seq - 1) % nodes + 1:02d}"
    script = job_path(state_dir, jobid, "sh")
    shutil.copyfile(jobscript, script)  # a scheduler spools the script at submit
    os.chmod(script, 0o755)
    info = parse_jobscript(text)
    lag = max(0.0, _env_float("SIM_VISIBILITY_LAG", 0.0, env))
    faults = {"visibility_lag": lag or None, "kill_after": None}
    if run_seq in _kill_targets(env):
        faults["kill_after"] = max(0.0, _env_float("SIM_KILL_AFTER", 1.0, env))
    record = {
        "id": jobid,
        "seq": seq,
        "run_seq": run_seq,
        **info,
        "jobscript": jobscript,
        "script": script,
        "submit_args": list(argv[:-1]),
        "cwd": cwd,
        "host": host,
        "node_tmpdir": _node_tmpdir(jobid, host, env),
        "purge_scratch": env.get("SIM_PURGE_SCRATCH", "") not in ("", "0"),
        "log": job_path(state_dir, jobid, "out"),
        "supervisor_log": job_path(state_dir, jobid, "sup"),
        "supervisor_pid": None,
        "pid": None,
        "pgid": None,
        "state": "pending",
        "exit_code": None,
        "signal": None,
        "reason": None,
        "submit_time": time.time(),
        "start_time": None,
        "end_time": None,
        "faults": faults,
        "cancel_requested": False,
        "held": [],
        "visible_time": None,
    }
    with record_lock(state_dir, jobid):
        save_record(state_dir, record)
    with open(record["supervisor_log"], "ab") as sup_log:
        proc = subprocess.Popen(
            [sys.executable, "-B", "-I", os.path.abspath(__file__), "supervise", state_dir, jobid],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sup_log,
            stderr=sup_log,
            start_new_session=True,
            close_fds=True,
        )
    update_record(state_dir, jobid, supervisor_pid=proc.pid)
    return jobid


def submit_main(argv=None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # never orphan a half-submitted job
    argv = sys.argv[1:] if argv is None else argv
    try:
        jobid = submit(argv)
    except (OSError, ValueError) as exc:
        print(f"cluster-sim submit: {exc}", file=sys.stderr)
        return 1
    print(jobid, flush=True)
    return 0


# --------------------------------------------------------------------------
# supervisor: runs detached, one per job
# --------------------------------------------------------------------------
def _log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def _hide_outputs(state_dir: str, rec: dict) -> list:
    """Move the job's declared outputs into held/<id>/; return [[orig, held], ...]."""
    import shutil

    outputs = rec.get("outputs")
    if not outputs:
        _log("visibility lag: no declared outputs in the job script; nothing to hide")
        return []
    held_dir = os.path.join(state_dir, "held", rec["id"])
    os.makedirs(held_dir, exist_ok=True)
    held = []
    for index, out in enumerate(outputs):
        orig = os.path.normpath(os.path.join(rec["cwd"], out))
        if not os.path.lexists(orig):
            continue
        target = os.path.join(held_dir, str(index))
        try:
            os.rename(orig, target)
        except OSError:
            shutil.move(orig, target)
        held.append([orig, target])
        _log(f"visibility lag: hid {orig}")
    return held


def _restore_outputs(held: list) -> list:
    import shutil

    left = []
    for orig, target in held:
        if os.path.lexists(orig):  # something newer is there: do not clobber it
            _log(f"visibility lag: {orig} exists again; kept the held copy {target}")
            left.append([orig, target])
            continue
        os.makedirs(os.path.dirname(orig), exist_ok=True)
        try:
            os.rename(target, orig)
        except OSError:
            shutil.move(target, orig)
        _log(f"visibility lag: {orig} is visible now")
    return left


def supervise(state_dir: str, jobid: str) -> int:
    import shutil
    import subprocess

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with record_lock(state_dir, jobid) as rec:
        if rec is None:
            _log(f"no record for job {jobid}")
            return 1
        if rec["cancel_requested"]:
            rec.update(state="cancelled", end_time=time.time(), reason="cancelled before start")
            save_record(state_dir, rec)
            return 0
        env = dict(os.environ)
        env.update(SIM_JOB_ID=jobid, SIM_HOSTNAME=rec["host"], SIM_NODE_TMPDIR=rec["node_tmpdir"])
        with open(rec["log"], "ab") as out:
            proc = subprocess.Popen(
                [rec["script"]],
                cwd=rec["cwd"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        rec.update(state="running", pid=proc.pid, pgid=proc.pid, start_time=time.time())
        save_record(state_dir, rec)
    _log(f"job {jobid} ({rec['rule']}) started as pid {proc.pid} on {rec['host']}")

    killed = False
    kill_after = rec["faults"].get("kill_after")
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            _log(f"fault SIM_KILL_JOB: SIGKILL to process group {proc.pid} after {kill_after}s")
            _signal_group(proc.pid, signal.SIGKILL)
            killed = True
    rc = proc.wait()
    _signal_group(proc.pid, signal.SIGKILL)  # like a scheduler, reap what the job left behind
    end = time.time()

    # epilog, before the job counts as finished: clean the node scratch dir
    if rec.get("purge_scratch"):
        shutil.rmtree(rec["node_tmpdir"], ignore_errors=True)
    else:
        _prune_empty_dirs(rec["node_tmpdir"])  # keep what a job left behind, e.g. after a failure

    held = []
    lag = rec["faults"].get("visibility_lag")
    if rc == 0 and not killed and lag:
        held = _hide_outputs(state_dir, rec)
    with record_lock(state_dir, jobid) as rec:
        exit_code, sig = (rc, None) if rc >= 0 else (128 - rc, -rc)
        rec.update(exit_code=exit_code, signal=sig, end_time=end, held=held)
        if rec["cancel_requested"]:
            rec.update(state="cancelled", reason=rec.get("reason") or "cancelled")
        elif killed:
            rec.update(
                state="failed",
                reason=f"killed by SIGKILL after {kill_after}s (simulated time limit/preemption, SIM_KILL_JOB)",
            )
        elif rc == 0:
            rec.update(state="success")
        else:
            rec.update(state="failed", reason=f"exit code {exit_code}" if sig is None else f"killed by signal {sig}")
        save_record(state_dir, rec)
    _log(f"job {jobid} ended: {rec['state']} (exit {exit_code})")

    if held:
        delay = end + lag - time.time()
        if delay > 0:
            time.sleep(delay)
        left = _restore_outputs(held)
        if not left:  # before visible_time is recorded, so a reader who sees it finds held/<id>/ gone
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(state_dir, "held", jobid))
        update_record(state_dir, jobid, held=left, visible_time=time.time())
    return 0


# --------------------------------------------------------------------------
# status
# --------------------------------------------------------------------------
def _count_query(state_dir: str, jobid: str) -> int:
    path = job_path(state_dir, jobid, "queries")
    with _locked(job_path(state_dir, jobid, "lock")):
        try:
            with open(path, encoding="utf-8") as fh:
                count = int(fh.read().strip() or 0) + 1
        except (FileNotFoundError, ValueError):
            count = 1
        atomic_write(path, f"{count}\n")
    return count


def status(jobid: str, env=None) -> str:
    """One of running, success, failed; notes go to stderr."""
    env = os.environ if env is None else env
    state_dir = state_dir_from_env(env)
    rec = load_record(state_dir, jobid)
    if rec is None:
        print(f"cluster-sim status: unknown job id {jobid!r} in {state_dir}; reporting failed", file=sys.stderr)
        return "failed"
    lost = int(_env_float("SIM_LOST_STATUS", 0, env))
    if lost > 0:
        n = _count_query(state_dir, jobid)
        if n <= lost:
            print(
                f"cluster-sim status: job {jobid}: status unavailable (fault SIM_LOST_STATUS, query {n}/{lost}); "
                "reporting running",
                file=sys.stderr,
            )
            return "running"
    state = rec["state"]
    if state == "success":
        return "success"
    if state in ("failed", "cancelled"):
        return "failed"
    if not pid_alive(rec.get("supervisor_pid")):
        rec = load_record(state_dir, jobid)  # it may have finished just now
        if rec["state"] in FINAL_STATES:
            return "success" if rec["state"] == "success" else "failed"
        if rec.get("supervisor_pid") is not None:
            print(
                f"cluster-sim status: job {jobid}: supervisor {rec['supervisor_pid']} is gone "
                f"but the job never finished; reporting failed",
                file=sys.stderr,
            )
            return "failed"
    return "running"


def status_main(argv=None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(f"cluster-sim status: expected one job id, got {argv!r}; reporting failed", file=sys.stderr)
        print("failed", flush=True)
        return 0
    try:
        word = status(argv[0].strip())
    except Exception as exc:  # never let a bug abort the Snakemake run
        print(f"cluster-sim status: internal error {type(exc).__name__}: {exc}; reporting failed", file=sys.stderr)
        word = "failed"
    print(word, flush=True)
    return 0


# --------------------------------------------------------------------------
# cancel
# --------------------------------------------------------------------------
def cancel(jobids: list[str], env=None) -> int:
    """SIGTERM every job's process group, SIGKILL survivors after the grace time.

    Returns the number of unknown job ids.
    """
    env = os.environ if env is None else env
    state_dir = state_dir_from_env(env)
    grace = max(0.0, _env_float("SIM_CANCEL_GRACE", 1.0, env))
    known = []
    for jobid in (j.strip() for j in jobids):
        if load_record(state_dir, jobid) is None:
            print(f"cluster-sim cancel: unknown job id {jobid!r} in {state_dir}", file=sys.stderr)
        else:
            known.append(jobid)
    groups = {}
    for jobid in known:
        with record_lock(state_dir, jobid) as rec:
            if rec["state"] in FINAL_STATES:
                continue
            rec.update(cancel_requested=True, reason="cancelled by cancel command")
            save_record(state_dir, rec)
            if rec.get("pgid") and _signal_group(rec["pgid"], signal.SIGTERM):
                groups[jobid] = rec["pgid"]
    deadline = time.monotonic() + grace
    while groups and time.monotonic() < deadline:
        groups = {j: g for j, g in groups.items() if group_alive(g)}
        if groups:
            time.sleep(0.05)
    for jobid, pgid in groups.items():
        if group_alive(pgid):
            print(f"cluster-sim cancel: job {jobid} ignored SIGTERM for {grace}s; SIGKILL", file=sys.stderr)
            _signal_group(pgid, signal.SIGKILL)
    for jobid in known:  # the supervisor adds the exit code when it reaps the job
        with record_lock(state_dir, jobid) as rec:
            if rec["state"] not in FINAL_STATES:
                rec.update(state="cancelled", end_time=rec.get("end_time") or time.time())
                save_record(state_dir, rec)
    return len(jobids) - len(known)


def cancel_main(argv=None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # it runs right after a Ctrl-C
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: cancel JOBID [JOBID ...]", file=sys.stderr)
        return 2
    return 1 if cancel(argv) else 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = {"submit": submit_main, "status": status_main, "cancel": cancel_main}
    if argv[:1] == ["supervise"] and len(argv) == 3:
        return supervise(argv[1], argv[2])
    if not argv or argv[0] not in commands:
        print("usage: scheduler.py {submit,status,cancel} ARGS", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
