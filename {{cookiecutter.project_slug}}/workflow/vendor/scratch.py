#!/usr/bin/env python3
"""Run one job in node-local scratch and bring its outputs back whole.

Mechanism only (stdlib, no Snakemake import), used two ways:

* shell rules: ``shell: scratch("sort {input:q} > {output:q}")`` (rules/contract.smk)
  runs ``scratch.py shell ...`` with the command on stdin;
* script rules: ``with scratch_job(snakemake) as job:`` gives scratch paths in
  ``job.input`` and ``job.output``.

Guarantees:

* The job works in a private directory of its own under the scratch root: the
  profile's ``resources.tmpdir``, evaluated inside the job, one root per user.
* The job dir is named after the job (rule, wildcards, a digest of the checkout
  and outputs), never at random, so tools that record their directory give the
  same bytes on a rerun.
* Inputs are mirrored at their workdir-relative paths, ``../`` ones included
  (policy ``link``: symlinks; ``copy``: size-checked copies); a shell command
  must name none by an absolute path. Logs are symlinked to their durable
  paths, so a log never dies with the scratch dir.
* Each declared output comes back atomically (durable.py): renamed if scratch
  is on the same filesystem, else copied to a hidden partial name beside it,
  synced, size-checked and renamed. A file under ``results/`` is whole or absent.
* Success removes the scratch dir; a failure keeps (``keep``) or removes
  (``remove``) it, and the job log says which, with the traceback of a script.
* One ``[scratch]`` JSON record per job goes to the job log.

``scratch.py kept [--clean] [LOGDIR]`` lists (or removes) the scratch dirs
kept after failures, found through those records.

From the Snakemake repository template, release {{ cookiecutter._template_version }}.
"""

# Annotations stay strings: the wrapper runs under whatever python3 a job's PATH gives.
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import time

import durable

POLICY = {"scratch_staging": ("link", "copy"), "scratch_on_failure": ("keep", "remove")}
RECORD_PREFIX = "[scratch] "
PARTIAL_MARK = ".scratch-partial-"
WORKDIR_LEVEL = "_wd"  # one level of the command's working dir below the job dir, per "../" of an input
TEMP_VARIABLES = ("TMPDIR", "TMP", "TEMP", "TEMPDIR")


class ScratchError(RuntimeError):
    """A staging problem, with a message that says what to do about it."""


def resolve_root(value: str) -> str:
    """The scratch root for this job, created if missing and checked private.

    A node's temp dir is shared, so the profiles give each user a root of their
    own (its name ends with the uid); a root of this user is made private (700).
    A shared sticky temp dir (like /tmp) may be the root as it is: every job dir
    in it is private. Another user's directory is refused.
    """
    root = os.path.expanduser((value or "").strip())
    if not os.path.isabs(root):
        raise ScratchError(
            f"scratch root {value!r} is not an absolute path; set default-resources: tmpdir "
            "in the profile to a node-local directory"
        )
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
        info, me = os.stat(root), os.getuid()
        if info.st_mode & stat.S_ISVTX and info.st_uid in (0, me):
            return root
        if info.st_uid != me:
            raise ScratchError(
                f"scratch root {root} belongs to uid {info.st_uid}, not to this user (uid {me}); give each "
                "user a root of their own, as the shipped profiles do: "
                "tmpdir: \"system_tmpdir + '/<name>-' + str(__import__('os').getuid())\""
            )
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(root, 0o700)
    except OSError as exc:
        raise ScratchError(f"cannot use scratch root {root!r}: {exc.strerror or exc}") from exc
    return root


def hostname() -> str:
    return os.uname().nodename


def bring_back(src: str, final: str) -> int:
    """Place the scratch output ``src`` at ``final`` atomically; return its bytes."""
    if not os.path.lexists(src):
        raise ScratchError(f"declared output {final} was not created by the job (looked in {src})")
    os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
    for stale in _partials_of(final):  # left by a copy-back that was killed
        durable.rollback(stale)
    if os.path.isdir(final) and not os.path.islink(final):
        if os.listdir(final):
            raise ScratchError(f"directory output {final} exists and is not empty; remove it and rerun")
        os.rmdir(final)
    size = _tree_bytes(src)
    if os.stat(src).st_dev == os.stat(os.path.dirname(final) or ".").st_dev:
        durable.sync(src)
        durable.commit(src, final)
        return size
    partial = os.path.join(os.path.dirname(final), f".{os.path.basename(final)}{PARTIAL_MARK}{os.getpid()}")
    try:
        copied = durable.clone_tree(src, partial)
        if copied != size:
            raise ScratchError(f"size check failed for {final}: expected {size} bytes, copied {copied}")
        durable.sync(partial)
        durable.commit(partial, final)
    except BaseException:
        durable.rollback(partial)
        raise
    return size


def _partials_of(final: str) -> list[str]:
    parent, prefix = os.path.dirname(final) or ".", f".{os.path.basename(final)}{PARTIAL_MARK}"
    return [os.path.join(parent, n) for n in os.listdir(parent) if n.startswith(prefix)]


def _tree_bytes(path: str) -> int:
    if not os.path.isdir(path):
        return os.path.getsize(path)
    return sum(os.lstat(os.path.join(d, n)).st_size for d, _, names in os.walk(path) for n in names)


def _levels_up(path: str) -> int:
    parts = os.path.normpath(path).split(os.sep)
    return next((i for i, part in enumerate(parts) if part != ".."), len(parts))


def _remove_tree(path: str) -> None:
    """Remove a scratch dir, also where a job left read-only folders in it."""

    def make_writable(folder):
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o700)
            for entry in os.scandir(folder):
                if entry.is_dir(follow_symlinks=False):
                    make_writable(entry.path)

    make_writable(path)
    shutil.rmtree(path, ignore_errors=True)


def _flatten(items) -> list[str]:
    out = []
    for item in items:
        out.extend(_flatten(item) if isinstance(item, (list, tuple)) else [str(item)] if str(item) else [])
    return out


class ScratchJob:
    """One job's scratch dir: start() stages in, finish() brings outputs back, fail() records why not."""

    def __init__(self, inputs, outputs, logs, policy: dict, rule="", wildcards="", literal_paths=False):
        for name, allowed in POLICY.items():
            if policy.get(name) not in allowed:
                raise ScratchError(
                    f"{name}={policy.get(name)!r} is not one of {', '.join(allowed)}; "
                    "it comes from the profile's default-resources (run with --profile profiles/<context>)"
                )
        self.workdir = os.getcwd()
        self.inputs, self.outputs, self.logs = _flatten(inputs), _flatten(outputs), _flatten(logs)
        self.root, self.staging, self.on_failure = (
            policy.get("tmpdir"),
            policy["scratch_staging"],
            policy["scratch_on_failure"],
        )
        self.rule, self.wildcards = rule, wildcards
        self.stats = dict.fromkeys(("in_bytes", "in_files", "out_bytes", "out_files"), 0)
        self.clock = {"start": time.monotonic()}
        for out in self.outputs:
            if os.path.isabs(out) or os.path.normpath(out).startswith(".."):
                raise ScratchError(
                    f"output {out} is outside the working directory; declare outputs with relative paths"
                )
        if literal_paths:  # a shell command reads its inputs by the paths written in it
            for path in self.inputs:
                if os.path.isabs(path):
                    raise ScratchError(
                        f"input {path} is an absolute path, which the command would read outside scratch; "
                        "give it relative to the working directory, e.g. os.path.relpath(config[...]) "
                        "(docs/rule-kinds.md, inputs outside the working directory)"
                    )
        # The job dir is named after the job, not at random: tools write their working directory and
        # $TMPDIR into outputs, and a rerun must give the same bytes. A relative input outside the
        # working directory ("../ref/genome.fa") is staged at the same relative path, so the command
        # runs WORKDIR_LEVEL levels below the job dir.
        up = max((_levels_up(p) for p in self.inputs + self.logs if not os.path.isabs(p)), default=0)
        digest = hashlib.sha256("\0".join([self.workdir, *self.outputs]).encode()).hexdigest()[:12]
        label = re.sub(
            r"[^A-Za-z0-9_.=-]+",
            "_",
            ".".join(filter(None, [self.rule or os.path.basename(next(iter(self.outputs), "job")), self.wildcards])),
        )
        self.name = f"{label.strip('._')[:100]}.{digest}"
        self.dir = self.cwd = None
        self._up = up

    def in_scratch(self, path: str) -> str:
        """Where a path of the job lives inside the scratch dir: a relative path at the same place
        relative to the command's working directory; an absolute one (scripts only) under _external/."""
        if os.path.isabs(path):
            return os.path.join(self.dir, "_external", os.path.normpath(path).lstrip("/"))
        return os.path.normpath(os.path.join(self.cwd, path))

    def start(self) -> ScratchJob:
        self.dir = os.path.join(resolve_root(self.root), self.name)
        self.cwd = os.path.join(self.dir, *[WORKDIR_LEVEL] * self._up) if self._up else self.dir
        if os.path.lexists(self.dir):  # left by a killed run of this job, or kept after its failure
            _remove_tree(self.dir)
            self._say(f"{RECORD_PREFIX}removed what an earlier run of this job left in {self.dir}")
        try:
            os.mkdir(self.dir, 0o700)
            os.makedirs(self.cwd, exist_ok=True)
            os.mkdir(os.path.join(self.dir, ".tmp"))
            for src in dict.fromkeys(self.inputs):  # an input listed twice is staged once
                self._stage_in(src)
            for log in self.logs:  # logs write straight to durable storage
                os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
                os.makedirs(os.path.dirname(self.in_scratch(log)), exist_ok=True)
                if not os.path.lexists(self.in_scratch(log)):
                    os.symlink(os.path.abspath(log), self.in_scratch(log))
            for out in self.outputs:
                os.makedirs(os.path.dirname(self.in_scratch(out)), exist_ok=True)
        except (OSError, ScratchError) as exc:
            self.fail(f"staging in failed: {exc}")
            raise ScratchError(f"staging in failed: {exc}") from exc
        self.clock["run"] = time.monotonic()
        return self

    def _stage_in(self, src: str) -> None:
        if not os.path.exists(src):
            raise ScratchError(f"input {src} does not exist; cannot stage it into scratch")
        target = self.in_scratch(src)
        if os.path.lexists(target):
            raise ScratchError(f"input {src} would be staged at {target}, where another input already is")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        size = _tree_bytes(src)
        if self.staging == "link":
            os.symlink(os.path.realpath(src), target)
        elif durable.clone_tree(src, target) != size:
            raise ScratchError(f"staging {src}: the copy in scratch is not {size} bytes")
        self.stats["in_bytes"] += size
        self.stats["in_files"] += 1 if not os.path.isdir(src) else sum(len(f) for _, _, f in os.walk(src))

    def environment(self) -> dict:
        """The job command's environment: its temp files go to scratch too."""
        return {
            **os.environ,
            **dict.fromkeys(TEMP_VARIABLES, os.path.join(self.dir, ".tmp")),
            "SCRATCH_JOB_DIR": self.dir,
        }

    def finish(self) -> None:
        """Bring every output back and remove the scratch dir; on failure record it and raise ScratchError."""
        self.clock["out"] = time.monotonic()
        try:
            for out in self.outputs:
                self.stats["out_bytes"] += bring_back(self.in_scratch(out), out)
                self.stats["out_files"] += 1
        except (OSError, ScratchError) as exc:
            reason = f"copy-back failed: {exc}"
            self.fail(reason)
            raise ScratchError(reason) from exc
        _remove_tree(self.dir)
        self._record("ok", removed=True)

    def fail(self, reason: str, details: str = "") -> None:
        """Record the failure (``details``, a traceback, goes to the durable log first)."""
        if details:
            self._append_log(details.rstrip("\n"))
        keep = self.on_failure == "keep"
        if self.dir is not None and not keep:
            _remove_tree(self.dir)
        self._record("failed", removed=not keep, reason=reason)
        if self.dir is not None:
            what = (
                f"KEPT for debugging: {self.dir} (on host {hostname()}). Remove it with: rm -rf '{self.dir}' "
                "or list all kept dirs with: python workflow/vendor/scratch.py kept"
                if keep
                else f"removed (scratch_on_failure=remove): {self.dir}"
            )
            self._say(f"{RECORD_PREFIX}job failed ({reason}); scratch dir {what}")

    def _record(self, status: str, removed: bool, reason: str = "") -> None:
        now, clock = time.monotonic(), self.clock
        run_end = clock.get("out", now)
        seconds = {
            "stage_in_s": clock.get("run", now) - clock["start"],
            "run_s": run_end - clock["run"] if "run" in clock else 0.0,
            "stage_out_s": now - clock["out"] if "out" in clock else 0.0,
        }
        record = {
            **{"rule": self.rule or None, "outputs": self.outputs, "wildcards": self.wildcards, "status": status},
            **{"host": hostname(), "dir": self.dir, "root": os.path.dirname(self.dir) if self.dir else None},
            **{"staging": self.staging, "removed": removed, **self.stats},
            **{k: round(v, 4) for k, v in seconds.items()},
            **({"reason": reason} if reason else {}),
        }
        self._say(RECORD_PREFIX + json.dumps(record, sort_keys=True))

    def _say(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)
        self._append_log(line)

    def _append_log(self, line: str) -> None:
        if self.logs:
            with contextlib.suppress(OSError), open(self.logs[0], "a", encoding="utf-8") as fh:
                fh.write(line + "\n")


def read_records(paths) -> list[dict]:
    """Every ``[scratch]`` JSON record in the given log files or directories."""
    records = []
    for base in paths:
        files = [base] if os.path.isfile(base) else sorted(os.path.join(d, n) for d, _, ns in os.walk(base) for n in ns)
        for path in files:
            with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if line.startswith(RECORD_PREFIX + "{"):
                        with contextlib.suppress(ValueError):
                            records.append({**json.loads(line[len(RECORD_PREFIX) :]), "log": path})
    return records


# --------------------------------------------------------------------------
# script rules
# --------------------------------------------------------------------------
class Paths(list):
    """A rule's paths, by index and by the rule's names (job.input.text)."""

    def __init__(self, namedlist, convert):
        super().__init__(convert(str(v)) for v in namedlist)
        for name, value in namedlist.items() if hasattr(namedlist, "items") else []:
            many = isinstance(value, (list, tuple))
            setattr(self, name, [convert(str(v)) for v in value] if many else convert(str(value)))


@contextlib.contextmanager
def scratch_job(smk):
    """``with scratch_job(snakemake) as job:`` for ``script:`` rules.

    ``job.input`` and ``job.output`` are scratch paths (by index and by name),
    ``job.log`` the durable log paths, ``job.dir`` the scratch dir. The outputs
    come back when the block ends cleanly; an exception is recorded with its
    traceback in the log, and the scratch dir kept or removed by policy.
    """
    resources = smk.resources
    policy = {name: getattr(resources, name, None) for name in ("tmpdir", *POLICY)}
    wildcards = ",".join(f"{k}={v}" for k, v in smk.wildcards.items())  # as a shell job's {wildcards:q}
    job = ScratchJob(smk.input, smk.output, smk.log, policy, rule=smk.rule, wildcards=wildcards).start()
    job.input, job.output = Paths(smk.input, job.in_scratch), Paths(smk.output, job.in_scratch)
    job.log = Paths(smk.log, os.path.abspath)
    saved = {k: os.environ.get(k) for k in TEMP_VARIABLES}
    os.environ.update(dict.fromkeys(TEMP_VARIABLES, os.path.join(job.dir, ".tmp")))
    try:
        yield job
    except BaseException as exc:
        import traceback  # only when failing: every job would pay for its import

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
# shell rules and the command line
# --------------------------------------------------------------------------
def run_shell(job: ScratchJob, command: str) -> int:
    """Run ``command`` with bash in the job's scratch dir; return its exit code."""
    import signal
    import subprocess

    job.start()
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", command], cwd=job.cwd, env=job.environment(), stdin=subprocess.DEVNULL
    )
    forward = lambda signum, _frame: proc.poll() is None and proc.send_signal(signum)  # noqa: E731
    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if code != 0:
        job.fail(f"command exited with {code}" if code > 0 else f"command killed by signal {-code}")
        return code if code > 0 else 128 - code
    try:
        job.finish()
    except ScratchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 70
    return 0


def list_kept(logdirs, clean: bool) -> int:
    kept = {r["dir"]: r for r in read_records(logdirs) if r.get("status") == "failed" and not r.get("removed")}
    for path, rec in sorted(kept.items()):
        here = rec.get("host") == hostname()
        state = "present" if os.path.exists(path) else ("gone" if here else "not visible from this host")
        job = rec.get("rule") or ",".join(rec.get("outputs", []))
        where = "here" if here else f"on host {rec.get('host')}"
        print(f"{path}\t{job}\t{rec.get('wildcards', '')}\t{where}\t{state}\t{rec['log']}")
        if clean and state == "present":
            shutil.rmtree(path, ignore_errors=True)
            print(f"removed {path}")
    if not kept:
        print("no kept scratch dirs recorded under " + ", ".join(logdirs))
    return 0


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sh = sub.add_parser("shell", help="run a shell command (read from stdin) in scratch")
    sh.add_argument("--rule", default="", help="the job's rule, for its scratch dir name and record")
    sh.add_argument("--wildcards", nargs="*", default=[], help="the job's wildcard values (none for a rule without)")
    for name in ("tmpdir", *POLICY):  # policy: every value comes from the profile, none is defaulted here
        sh.add_argument(f"--{name.replace('_', '-')}", dest=name, required=True)
    for name in ("input", "output", "log"):
        sh.add_argument(f"--{name}", nargs="*", default=[])
    kept = sub.add_parser("kept", help="list scratch dirs kept after failed jobs")
    kept.add_argument("logdir", nargs="*", default=["logs"])
    kept.add_argument("--clean", action="store_true", help="remove the kept dirs visible from this host")
    args = parser.parse_args(argv)
    if args.command == "kept":
        return list_kept(args.logdir, args.clean)
    command = sys.stdin.read()
    if not command.strip():
        print("ERROR: no command on stdin for scratch.py shell", file=sys.stderr)
        return 2
    try:
        policy = {name: getattr(args, name) for name in ("tmpdir", *POLICY)}
        job = ScratchJob(
            args.input, args.output, args.log, policy, args.rule, ",".join(args.wildcards), literal_paths=True
        )
        return run_shell(job, command)
    except (OSError, ScratchError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
