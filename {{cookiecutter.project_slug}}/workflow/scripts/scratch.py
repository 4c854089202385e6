#!/usr/bin/env python3
"""Run one job in node-local scratch and bring its outputs back whole.

Mechanism only (stdlib, no Snakemake import), used two ways:

* shell rules: ``shell: scratch("sort {input:q} > {output:q}")`` in
  ``workflow/rules/common.smk`` turns the command into a call of
  ``scratch.py shell ...`` that reads the command on stdin;
* script rules: ``with scratch_job(snakemake) as job:`` yields scratch paths
  for ``job.input`` and ``job.output``.

What it guarantees:

* The job works in its own directory under the scratch root. The root is
  policy: it comes from the job's ``resources.tmpdir``, which the profile sets
  as an expression Snakemake evaluates inside the job (on the execution node).
  It is per user (a node's temp dir is shared) and private: see resolve_root().
* Inputs are mirrored at their workdir-relative paths (``link``: symlinks,
  ``copy``: size-checked copies). Logs are symlinked to their durable paths,
  so a log never dies with the scratch dir.
* Each declared output is brought back atomically: written to a hidden
  temporary name in its final directory, fsynced, size-checked, then
  ``os.replace``d into place. A file under ``results/`` is whole or absent.
* On success the scratch dir is removed. On failure it is kept (policy
  ``keep``) or removed (``remove``); the job log names it either way.
* One ``[scratch]`` JSON record per job goes to the job log: bytes and seconds
  for staging in, running and staging out.

Command line (besides ``shell``): ``scratch.py kept [--clean] [LOGDIR]`` lists
(or removes) scratch dirs kept after failures, found through those records.
"""

# Annotations stay strings: the wrapper runs under whatever python3 a job's PATH gives.
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGING_MODES = ("link", "copy")
FAILURE_POLICIES = ("keep", "remove")
RECORD_PREFIX = "[scratch] "
PARTIAL_MARK = ".scratch-partial-"


class ScratchError(RuntimeError):
    """A staging problem, with a message that says what to do about it."""


# --------------------------------------------------------------------------
# scratch root: policy, resolved inside the job, one per user
# --------------------------------------------------------------------------
def resolve_root(value: str | None) -> Path:
    """Return the absolute scratch root for this job, created if missing and checked private.

    The profiles give each user a root of their own (its name ends with the uid),
    because a node's temp dir is shared: a root made by one user cannot be written
    by the next. A root owned by this user is made private (mode 700; Snakemake
    creates it first, with the umask's mode). A shared sticky temp dir (like
    /tmp) may be the root as is: every job dir in it is private (mkdtemp, 700).
    Anything else (another user's dir) is refused with what to do instead.
    """
    value = (value or "").strip()
    root = os.path.expanduser(value) if value else tempfile.gettempdir()
    if not os.path.isabs(root):
        raise ScratchError(
            f"scratch root {value!r} is a relative path; scratch must be an absolute "
            "node-local path (set default-resources: tmpdir in the profile)"
        )
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
        info = os.stat(root)
        me = os.getuid()
        if info.st_mode & stat.S_ISVTX and info.st_uid in (0, me):
            return Path(root)  # a shared temp dir: its sticky bit keeps others off our job dirs
        if info.st_uid != me:
            raise ScratchError(
                f"scratch root {root} belongs to uid {info.st_uid}, not to this user (uid {me}); "
                "give each user a root of their own, as the shipped profiles do: "
                "tmpdir: \"system_tmpdir + '/<name>-' + str(__import__('os').getuid())\""
            )
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(root, 0o700)
    except OSError as exc:
        raise ScratchError(f"cannot use scratch root {root!r}: {exc.strerror or exc}") from exc
    return Path(root)


def hostname() -> str:
    """This node's name, as socket.gethostname() gives it, without importing socket."""
    return os.uname().nodename


def job_dir_name(rule: str, wildcards: str) -> str:
    """rule, wildcards and host, made safe for a directory name."""
    label = re.sub(r"[^A-Za-z0-9_.=-]+", "_", wildcards).strip("_")[:80]
    host = re.sub(r"[^A-Za-z0-9_.-]+", "_", hostname())[:32]
    parts = [rule or "job", label, host]
    return ".".join(p for p in parts if p) + "."


# --------------------------------------------------------------------------
# copying with durability checks
# --------------------------------------------------------------------------
def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems refuse directory fsync
        _fsync_path(path)


def tree_size(path: Path) -> tuple[int, int]:
    """(bytes, files) below path, following no symlinks except path itself."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size, 1
    total = files = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            total += os.lstat(os.path.join(dirpath, name)).st_size
            files += 1
    return total, files


def copy_verified(src: Path, dst: Path, durable: bool = True) -> int:
    """Copy a file's bytes and mode, fsync (if durable), and check the size; return bytes.

    Staging into scratch passes ``durable=False``: a scratch copy never outlives a
    crash that would need the fsync (the job reruns in a new scratch dir).
    """
    shutil.copyfile(src, dst)
    shutil.copymode(src, dst)
    if durable:
        _fsync_path(dst)
    want, got = os.stat(src).st_size, os.stat(dst).st_size
    if want != got:
        raise ScratchError(f"size check failed for {dst}: expected {want} bytes, found {got}")
    return got


def _copytree_verified(src: Path, dst: Path, durable: bool = True) -> int:
    total = 0
    dst.mkdir()
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        if entry.is_dir():
            total += _copytree_verified(entry, target, durable)
        else:
            total += copy_verified(entry, target, durable)
    if durable:
        _fsync_dir(dst)
    return total


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_stale_partials(final: Path) -> None:
    """Remove hidden partial copies of ``final`` left by a killed copy-back."""
    parent = final.parent
    if not parent.is_dir():
        return
    prefix = f".{final.name}{PARTIAL_MARK}"
    for entry in parent.iterdir():
        if entry.name.startswith(prefix):
            _remove(entry)


def bring_back(src: Path, final: Path, label: str | None = None) -> int:
    """Atomically place scratch output ``src`` at ``final``; return bytes.

    Same filesystem: fsync and rename (already atomic). Otherwise: copy to a
    hidden partial name beside ``final``, fsync, size-check, ``os.replace``.
    A failure removes the partial copy and raises ScratchError.
    """
    label = label or str(final)
    if not src.exists():
        raise ScratchError(f"declared output {label} was not created by the job (looked in {src})")
    try:
        return _bring_back(src, final)
    except OSError as exc:
        raise ScratchError(
            f"copy-back of {label} failed: {exc.strerror or exc} ({exc.filename or final}); "
            "no partial file was left in place"
        ) from exc


def _bring_back(src: Path, final: Path) -> int:
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(final)
    size, _ = tree_size(src)
    is_dir = src.is_dir() and not src.is_symlink()
    if final.is_dir() and not final.is_symlink():
        if any(final.iterdir()):
            raise ScratchError(f"directory output {final} exists and is not empty; remove it and rerun")
        final.rmdir()
    same_device = not src.is_symlink() and os.stat(src).st_dev == os.stat(final.parent).st_dev
    if same_device:
        if is_dir:
            for dirpath, _dirs, names in os.walk(src):
                for name in names:
                    _fsync_path(Path(dirpath, name))
        else:
            _fsync_path(src)
        os.replace(src, final)
        _fsync_dir(final.parent)
        return size
    partial = final.parent / f".{final.name}{PARTIAL_MARK}{os.getpid()}-{os.urandom(3).hex()}"
    try:
        copied = _copytree_verified(src, partial) if is_dir else copy_verified(src, partial)
        if copied != size:
            raise ScratchError(f"size check failed for {final}: expected {size} bytes, copied {copied}")
        os.replace(partial, final)
    except BaseException:
        _remove(partial)
        raise
    _fsync_dir(final.parent)
    return size


# --------------------------------------------------------------------------
# one job in scratch
# --------------------------------------------------------------------------
def _flatten(items) -> list[str]:
    out = []
    for item in items:
        if isinstance(item, (list, tuple)):
            out.extend(_flatten(item))
        elif item is not None and str(item) != "":
            out.append(str(item))
    return out


class ScratchJob:
    # A plain class, not a dataclass: importing dataclasses (and inspect) would add
    # milliseconds of start-up to every wrapped job (see the template's docs/performance.md).
    def __init__(
        self,
        rule: str,
        wildcards: str,
        inputs: list[str],
        outputs: list[str],
        logs: list[str] | None = None,
        root: str | None = None,
        staging: str = "link",
        on_failure: str = "keep",
        workdir: Path | None = None,
    ):
        self.rule, self.wildcards, self.root = rule, wildcards, root
        self.inputs, self.outputs, self.logs = inputs, outputs, logs or []
        self.staging, self.on_failure = staging, on_failure
        self.workdir = Path.cwd() if workdir is None else workdir
        if self.staging not in STAGING_MODES:
            raise ScratchError(
                f"scratch_staging={self.staging!r} is not one of {', '.join(STAGING_MODES)} (set it in the profile's default-resources)"
            )
        if self.on_failure not in FAILURE_POLICIES:
            raise ScratchError(
                f"scratch_on_failure={self.on_failure!r} is not one of {', '.join(FAILURE_POLICIES)} (set it in the profile's default-resources)"
            )
        self.workdir = Path(self.workdir).resolve()
        self.inputs, self.outputs, self.logs = _flatten(self.inputs), _flatten(self.outputs), _flatten(self.logs)
        for out in self.outputs:
            self._relative(out, what="output")
        self.dir: Path | None = None
        self.stats = {
            "in_bytes": 0,
            "in_files": 0,
            "out_bytes": 0,
            "out_files": 0,
            "stage_in_s": 0.0,
            "run_s": 0.0,
            "stage_out_s": 0.0,
        }
        self._t_run = None

    # paths -----------------------------------------------------------------
    def _relative(self, path: str, what: str) -> Path:
        p = Path(path)
        absolute = p if p.is_absolute() else self.workdir / p
        try:
            return Path(os.path.normpath(absolute)).relative_to(self.workdir)
        except ValueError:
            if what == "output":
                raise ScratchError(
                    f"output {path} is outside the working directory {self.workdir}; declare outputs with relative paths"
                ) from None
            return Path("_external") / str(absolute).lstrip("/")

    def scratch_path(self, path: str, what: str = "input") -> Path:
        assert self.dir is not None, "job not started"
        return self.dir / self._relative(path, what)

    def durable(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.workdir / p

    # lifecycle ---------------------------------------------------------------
    def start(self) -> ScratchJob:
        t0 = time.monotonic()
        root = resolve_root(self.root)
        self.dir = Path(tempfile.mkdtemp(prefix=job_dir_name(self.rule, self.wildcards), dir=root))
        (self.dir / ".tmp").mkdir()
        print(f"{RECORD_PREFIX}rule {self.rule} ({self.wildcards}) working in {self.dir}", file=sys.stderr, flush=True)
        for src in self.inputs:
            self._stage_in(src)
        for log in self.logs:  # logs write straight to durable storage
            durable = self.durable(log)
            durable.parent.mkdir(parents=True, exist_ok=True)
            link = self.scratch_path(log, "log")
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(durable)
        for out in self.outputs:
            self.scratch_path(out, "output").parent.mkdir(parents=True, exist_ok=True)
        self.stats["stage_in_s"] = time.monotonic() - t0
        self._t_run = time.monotonic()
        return self

    def _stage_in(self, src: str) -> None:
        source = self.durable(src)
        if not source.exists():
            raise ScratchError(f"input {src} does not exist; cannot stage it into scratch")
        target = self.scratch_path(src)
        if target.exists() or target.is_symlink():
            return  # the same input listed twice
        target.parent.mkdir(parents=True, exist_ok=True)
        size, files = tree_size(source)
        if self.staging == "link":
            target.symlink_to(source.resolve())
        elif source.is_dir():
            copied = _copytree_verified(source, target, durable=False)
            if copied != size:
                raise ScratchError(f"staging {src}: copied {copied} of {size} bytes")
        else:
            copy_verified(source, target, durable=False)
        self.stats["in_bytes"] += size
        self.stats["in_files"] += files

    def environment(self) -> dict:
        """Environment for the job's command: temp files go to scratch too."""
        env = dict(os.environ)
        tmp = str(self.dir / ".tmp")
        for name in ("TMPDIR", "TMP", "TEMP", "TEMPDIR"):
            env[name] = tmp
        env["SCRATCH_JOB_DIR"] = str(self.dir)
        return env

    def finish(self) -> None:
        """Bring every output back; remove the scratch dir. Raises ScratchError."""
        self.stats["run_s"] = time.monotonic() - (self._t_run or time.monotonic())
        t0 = time.monotonic()
        try:
            for out in self.outputs:
                size = bring_back(self.scratch_path(out, "output"), self.durable(out), label=out)
                self.stats["out_bytes"] += size
                self.stats["out_files"] += 1
        except ScratchError as exc:
            self.stats["stage_out_s"] = time.monotonic() - t0
            self.fail(f"copy-back failed: {exc}")
            raise
        self.stats["stage_out_s"] = time.monotonic() - t0
        shutil.rmtree(self.dir, ignore_errors=True)
        self._record("ok", removed=True)

    def fail(self, reason: str, details: str | None = None) -> None:
        """Record the failure; ``details`` (a traceback) goes to the durable log first."""
        if self._t_run and not self.stats["run_s"]:
            self.stats["run_s"] = time.monotonic() - self._t_run
        if details:
            self._append_log(details.rstrip("\n"))
        keep = self.on_failure == "keep"
        if self.dir is not None and not keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        self._record("failed", removed=not keep, reason=reason)
        if self.dir is not None:
            if keep:
                msg = (
                    f"job failed ({reason}); scratch dir KEPT for debugging: {self.dir} "
                    f"(on host {hostname()}). Remove it with: rm -rf '{self.dir}' "
                    "or list all kept dirs with: python workflow/scripts/scratch.py kept"
                )
            else:
                msg = f"job failed ({reason}); scratch dir removed (scratch_on_failure=remove): {self.dir}"
            print(RECORD_PREFIX + msg, file=sys.stderr, flush=True)
            self._append_log(RECORD_PREFIX + msg)

    # records -------------------------------------------------------------------
    def _record(self, status: str, removed: bool, reason: str | None = None) -> None:
        record = {
            "rule": self.rule,
            "wildcards": self.wildcards,
            "status": status,
            "host": hostname(),
            "dir": str(self.dir),
            "root": str(self.dir.parent) if self.dir else None,
            "staging": self.staging,
            "removed": removed,
            **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.stats.items()},
        }
        if reason:
            record["reason"] = reason
        line = RECORD_PREFIX + json.dumps(record, sort_keys=True)
        print(line, file=sys.stderr, flush=True)
        self._append_log(line)

    def _append_log(self, line: str) -> None:
        if not self.logs:
            return
        path = self.durable(self.logs[0])
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")


def read_records(paths) -> list[dict]:
    """All ``[scratch]`` JSON records in the given log files or directories."""
    records = []
    for base in paths:
        base = Path(base)
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in files:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith(RECORD_PREFIX + "{"):
                    with contextlib.suppress(ValueError):
                        rec = json.loads(line[len(RECORD_PREFIX) :])
                        rec["log"] = str(path)
                        records.append(rec)
    return records


# --------------------------------------------------------------------------
# script rules
# --------------------------------------------------------------------------
class _Paths(list):
    """A list of paths that also answers to the rule's names (job.input.text)."""

    def __init__(self, values, names):
        super().__init__(values)
        for name, value in names.items():
            setattr(self, name, value)


def _mirror(namedlist, convert):
    values = [convert(str(v)) for v in namedlist]
    names = {}
    items = namedlist.items() if hasattr(namedlist, "items") else []
    for name, value in items:
        names[name] = [convert(str(v)) for v in value] if isinstance(value, (list, tuple)) else convert(str(value))
    return _Paths(values, names)


def _resource(smk, name, default=None):
    resources = getattr(smk, "resources", None)
    value = getattr(resources, name, None) if resources is not None else None
    return default if value is None else value


def _wildcards_label(wildcards) -> str:
    if hasattr(wildcards, "items"):
        return ",".join(f"{k}={v}" for k, v in wildcards.items())
    return str(wildcards or "")


@contextlib.contextmanager
def scratch_job(smk, staging: str | None = None, on_failure: str | None = None):
    """Context manager for ``script:`` rules.

    ``with scratch_job(snakemake) as job:`` yields the job with ``job.input``,
    ``job.output`` (scratch paths, by index and by name), ``job.log``
    (durable paths) and ``job.dir``. Outputs come back when the block exits
    cleanly; an exception keeps or removes the scratch dir by policy.
    """
    job = ScratchJob(
        rule=str(getattr(smk, "rule", "job")),
        wildcards=_wildcards_label(getattr(smk, "wildcards", "")),
        inputs=list(smk.input),
        outputs=list(smk.output),
        logs=list(getattr(smk, "log", [])),
        root=str(_resource(smk, "tmpdir", "") or ""),
        staging=staging or str(_resource(smk, "scratch_staging", "link")),
        on_failure=on_failure or str(_resource(smk, "scratch_on_failure", "keep")),
    )
    job.start()
    job.input = _mirror(smk.input, lambda p: str(job.scratch_path(p, "input")))
    job.output = _mirror(smk.output, lambda p: str(job.scratch_path(p, "output")))
    job.log = _mirror(getattr(smk, "log", []), lambda p: str(job.durable(p)))
    saved = {k: os.environ.get(k) for k in ("TMPDIR", "TMP", "TEMP", "TEMPDIR")}
    os.environ.update({k: job.environment()[k] for k in saved})
    try:
        yield job
    except BaseException as exc:
        import traceback  # only when failing: it costs start-up time every job would pay

        # Snakemake prints the traceback only to its own stderr; the rule's log keeps it too.
        job.fail(f"{type(exc).__name__}: {exc}", details=traceback.format_exc())
        raise
    else:
        job.finish()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------
# shell rules
# --------------------------------------------------------------------------
def run_shell(job: ScratchJob, command: str) -> int:
    """Run ``command`` with bash in the job's scratch dir; return its exit code."""
    job.start()
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=job.dir,
        env=job.environment(),
        stdin=subprocess.DEVNULL,
    )

    def forward(signum, _frame):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if code != 0:
        reason = f"command exited with {code}" if code > 0 else f"command killed by signal {-code}"
        job.fail(reason)
        return code if code > 0 else 128 - code
    try:
        job.finish()
    except ScratchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 70
    return 0


def _cmd_shell(args) -> int:
    command = sys.stdin.read()
    if not command.strip():
        print("ERROR: no command on stdin for scratch.py shell", file=sys.stderr)
        return 2
    try:
        job = ScratchJob(
            rule=args.rule,
            wildcards=args.wildcards,
            inputs=args.input,
            outputs=args.output,
            logs=args.log,
            root=args.root,
            staging=args.staging,
            on_failure=args.on_failure,
        )
        return run_shell(job, command)
    except ScratchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 70


def _cmd_kept(args) -> int:
    kept = {}
    for rec in read_records(args.logdir):
        if rec.get("status") == "failed" and not rec.get("removed"):
            kept[rec["dir"]] = rec
    here = hostname()
    for path, rec in sorted(kept.items()):
        exists = Path(path).exists()
        where = "here" if rec.get("host") == here else f"on host {rec.get('host')}"
        state = "present" if exists else ("gone" if rec.get("host") == here else "not visible from this host")
        print(f"{path}\t{rec['rule']}\t{rec.get('wildcards', '')}\t{where}\t{state}\t{rec['log']}")
        if args.clean and exists:
            shutil.rmtree(path, ignore_errors=True)
            print(f"removed {path}")
    if not kept:
        print("no kept scratch dirs recorded under " + ", ".join(args.logdir))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sh = sub.add_parser("shell", help="run a shell command (read from stdin) in scratch")
    sh.add_argument("--rule", required=True)
    sh.add_argument("--wildcards", default="")
    sh.add_argument("--root", default="", help="scratch root (resources.tmpdir), absolute")
    sh.add_argument("--staging", choices=STAGING_MODES, default="link")
    sh.add_argument("--on-failure", choices=FAILURE_POLICIES, default="keep")
    sh.add_argument("--input", nargs="*", default=[])
    sh.add_argument("--output", nargs="*", default=[])
    sh.add_argument("--log", nargs="*", default=[])
    sh.set_defaults(func=_cmd_shell)
    kept = sub.add_parser("kept", help="list scratch dirs kept after failed jobs")
    kept.add_argument("logdir", nargs="*", default=["logs"])
    kept.add_argument("--clean", action="store_true", help="remove the kept dirs visible from this host")
    kept.set_defaults(func=_cmd_kept)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
