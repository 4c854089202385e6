"""Shared pieces of the benchmarks: the rendered repository, timed commands, statistics and results.

Everything runs in one temporary directory: the rendered repository, caches (``XDG_CACHE_HOME``),
``TMPDIR`` (so every scratch root the profiles derive from ``system_tmpdir`` lands there too) and the
simulated cluster's node scratch.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLUG = "text-statistics-workflow"
BIN = Path(sys.executable).parent
MB = 1 << 20
# GNU time reports a command's peak memory without this process's size in it (see Context.run_peak)
GNU_TIME = shutil.which("time")  # the program (Debian package time), not the shell keyword
PEAK_METHOD = (
    "`ru_maxrss` of the command as GNU `time -f %M` reports it"
    if GNU_TIME
    else "`ru_maxrss` from `wait4` (GNU time is missing: at least the benchmark process's own size)"
)


def tool(name: str) -> str:
    """A console script next to this interpreter (the venv's snakemake), else from PATH."""
    here = BIN / name
    return str(here) if here.exists() else shutil.which(name) or name


class BenchError(RuntimeError):
    """A benchmark command failed; the message ends with the tail of its output."""


# --------------------------------------------------------------------------
# statistics and results
# --------------------------------------------------------------------------
@dataclass
class Stats:
    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def scaled(self, factor: float) -> Stats:
        return Stats([v * factor for v in self.values])

    def cells(self, fmt: str = "{:.3f}") -> list[str]:
        return [fmt.format(self.median), fmt.format(self.min), fmt.format(self.max)]


def paired(a: list[float], b: list[float], op) -> Stats:
    """Statistics of op(a[i], b[i]) over repeats (pairs measured in the same repeat)."""
    return Stats([op(x, y) for x, y in zip(a, b, strict=True)])


@dataclass
class Check:
    """One compared quantity: a value (a ratio unless unit says otherwise) against a target."""

    name: str
    value: float
    target: str = ""  # e.g. "<= 1.15"; empty: informational
    ok: bool | None = None
    unit: str = "x"

    @property
    def verdict(self) -> str:
        return "-" if self.ok is None else ("PASS" if self.ok else "MISS")

    def text(self) -> str:
        value = f"{self.value:.2f}x" if self.unit == "x" else f"{self.value:.1f} {self.unit}"
        return value


@dataclass
class Result:
    key: str
    title: str
    method: str
    headers: list[str]
    rows: list[list[str]]
    checks: list[Check]
    notes: list[str] = field(default_factory=list)
    # filled in by run.py around each benchmark
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    seconds: float = 0.0
    repeats: int = 0
    repeats_note: str = ""
    # cases that could not run here, as (case, reason): reported as "not run", never as a number
    not_run: list[tuple[str, str]] = field(default_factory=list)

    @property
    def repeats_text(self) -> str:
        return self.repeats_note or f"{self.repeats} repeat(s)"


def load() -> tuple[float, float, float]:
    return os.getloadavg()


def fmt_load(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


# --------------------------------------------------------------------------
# the run context
# --------------------------------------------------------------------------
class Context:
    """The temp dir, the rendered repository and the environment every command runs with."""

    def __init__(self, tmp: Path, template: Path, smoke: bool, verbose: bool = False):
        self.tmp = tmp
        self.template = template
        self.smoke = smoke
        self.verbose = verbose
        self.env = self._environment()
        self.repo = self.render(tmp / "rendered")

    def _environment(self) -> dict:
        env = dict(os.environ)
        for name in list(env):
            if name.startswith(("SNAKEMAKE_", "SIM_")):
                del env[name]
        stub_dir = self.tmp / "stub-bin"
        stub_dir.mkdir(parents=True, exist_ok=True)
        # The Slurm executor plugin runs `scontrol show config` (timeout 10 s) every time Snakemake
        # starts. With a Slurm client installed but no controller answering, that adds up to 10 s to
        # every snakemake process; a stub that fails at once keeps this machine detail out of the numbers.
        self.scontrol_stubbed = shutil.which("scontrol") is not None
        stub = stub_dir / "scontrol"
        stub.write_text("#!/bin/sh\nexit 1\n")
        stub.chmod(0o755)
        tmpdir = self.tmp / "tmp"
        tmpdir.mkdir(exist_ok=True)
        config = self.tmp / "cookiecutter-config.yaml"
        config.write_text(f"cookiecutters_dir: {self.tmp / 'cc-templates'}\nreplay_dir: {self.tmp / 'cc-replay'}\n")
        env.update(
            XDG_CACHE_HOME=str(self.tmp / "xdg-cache"),
            TMPDIR=str(tmpdir),
            COOKIECUTTER_CONFIG=str(config),
            SIM_NODE_SCRATCH_ROOT=str(self.tmp / "sim-nodes"),
            PATH=os.pathsep.join([str(stub_dir), str(BIN), env.get("PATH", "")]),
        )
        return env

    def render(self, out: Path, **answers: str) -> Path:
        cmd = [tool("cookiecutter"), str(self.template), "--no-input", "-o", str(out), "init_git=no"]
        cmd += [f"{key}={value}" for key, value in answers.items()]
        self.run(cmd, cwd=self.tmp, timeout=300)
        (repo,) = [p for p in out.iterdir() if p.is_dir()]
        return repo

    def run(self, args, cwd=None, timeout=1800, stdin: str | None = None, env: dict | None = None):
        """Run a command; return (wall seconds, CompletedProcess). Raises BenchError on failure."""
        args = [str(a) for a in args]
        if self.verbose:
            print("  $", " ".join(args), file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                args,
                cwd=cwd or self.repo,
                env=env or self.env,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"{' '.join(args[:6])} ... timed out after {timeout} s") from exc
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr)[-3000:]
            raise BenchError(f"{' '.join(args[:8])} ... exited with {proc.returncode}:\n{tail}")
        return seconds, proc

    def run_peak(self, args, cwd=None, timeout=7200) -> tuple[float, str, int]:
        """Run a command; return (wall seconds, stdout, peak resident bytes). Raises BenchError on failure.

        The peak is the child's ``ru_maxrss``, which covers the descendants it waited for (``sh -c 'a | b'``:
        the biggest of sh, a and b). Linux starts an exec'd program's ``ru_maxrss`` at the size of the
        process that forked it, so a command forked from this Python process would never report less
        than this process's size; GNU ``time`` (small) forks the command instead and reports its peak.
        Without GNU time, ``wait4`` gives the child's peak with that floor (PEAK_METHOD says which).
        """
        args = [str(a) for a in args]
        if self.verbose:
            print("  $", " ".join(args), file=sys.stderr, flush=True)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile() as report:
            command = [GNU_TIME, "-f", "%M", "-o", report.name, *args] if GNU_TIME else args
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                command, cwd=cwd or self.repo, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
            timer = threading.Timer(timeout, proc.kill)
            timer.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)  # not proc.wait(): that reaps the child without its rusage
            finally:
                timed_out = not timer.is_alive()
                timer.cancel()
            seconds = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0), err.seek(0)
            stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
            reported = Path(report.name).read_text().split() if GNU_TIME else []
        if timed_out:
            raise BenchError(f"{' '.join(args[:6])} ... timed out after {timeout} s")
        if proc.returncode != 0:
            tail = (stdout + stderr)[-3000:]
            raise BenchError(f"{' '.join(args[:8])} ... exited with {proc.returncode}:\n{tail}")
        kilobytes = int(reported[-1]) if reported else usage.ru_maxrss  # both in KB on Linux
        return seconds, stdout, kilobytes * 1024

    def snakemake(self, *args, cwd=None, timeout=1800, env: dict | None = None):
        return self.run([tool("snakemake"), *args], cwd=cwd, timeout=timeout, env=env)


def settle() -> None:
    """Flush dirty pages before a timed step, so one step's writeback is not billed to the next."""
    os.sync()


def fill_file(path: Path, nbytes: int, seed: int = 0) -> None:
    """Write nbytes of incompressible data (a random block with a per-MB counter)."""
    block = bytearray(os.urandom(MB))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        left, i = nbytes, 0
        while left > 0:
            block[:16] = f"{seed:08d}{i:08d}".encode()
            n = min(left, MB)
            fh.write(block[:n])
            left -= n
            i += 1


# --------------------------------------------------------------------------
# the machine
# --------------------------------------------------------------------------
def _meminfo_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1 << 20)
    except OSError:
        pass
    return 0.0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def filesystem_of(path: Path) -> str:
    """Filesystem type of the mount holding path (from /proc/mounts), e.g. ext4, overlay, tmpfs."""
    best, kind = "", "unknown"
    try:
        target = str(Path(path).resolve())
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) < 3:
                continue
            mount = parts[1].replace("\\040", " ")
            inside = target == mount or target.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best):
                best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


def machine(ctx: Context) -> dict:
    _, proc = ctx.snakemake("--version", cwd=ctx.tmp)
    return {
        "cores": os.cpu_count(),
        "ram_gb": round(_meminfo_gb(), 1),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "snakemake": proc.stdout.strip(),
        "filesystem": filesystem_of(ctx.tmp),
    }


def scratch_record(text: str) -> dict:
    """The last ``[scratch] {...}`` JSON record in a wrapper's stderr."""
    records = [json.loads(line[len("[scratch] ") :]) for line in text.splitlines() if line.startswith("[scratch] {")]
    if not records:
        raise BenchError(f"no [scratch] record in the wrapper's output:\n{text[-2000:]}")
    return records[-1]
