"""8. Publication at scale: 1,000,000 small files published and verified (``run.py --scale``; one repeat).

Slow (about 20 minutes at full size on a 2-core VM, a third of it deleting the trees where the
filesystem discards freed blocks), so a full ``run.py`` leaves it out unless given ``--scale`` (or
``--only scale``); ``--smoke`` runs it with a few hundred files.

The files (``--small-bytes`` each, 1,000 to a directory) are one directory entry of the publish set, as
a workflow declares a ``directory()`` output. Each step is a child process started after ``sync``; its wall
time and its peak memory come from ``Context.run_peak``: ``ru_maxrss`` of the command and of the
descendants it waited for, i.e. the biggest single process of a pipeline (reported by GNU ``time``, so
that the benchmark's own size is not in it). Steps:

- ``publish``: ``publish.publish({"scale": "results/scale"})`` in a fresh Python process;
- ``verify``: ``publish.py verify``, the command a user runs, which reads every byte of the release;
- ``sha256sum -c SHA256SUMS`` inside the release: the same check done by coreutils;
- ``cp -a`` of ``results/scale``, ``sync``, and ``find | xargs -0 sha256sum``: the baseline issue 23 names.

Ratios have no targets (issue 23 asks that publish and verify finish, with time and peak memory reported):
publish / (``cp -a`` + ``sha256sum`` + ``sync``), durable with durable as publish flushes its copies, and
verify / ``sha256sum -c`` (both hash every file of the release).
"""

from __future__ import annotations

import json
import os
import sys

from bench_publish import _remove
from harness import MB, PEAK_METHOD, Check, Context, Result, settle

FILES_PER_DIR = 1000  # a directory() output of a million files is spread over directories in practice too
DRIVER = '''"""Benchmark driver: publish results/scale (one directory entry) with publish.publish(); print JSON."""
import json, sys, time

sys.path.insert(0, sys.argv[1])
import publish  # noqa: E402

t0 = time.perf_counter()
result = publish.publish({"scale": "results/scale"}, "results", sys.argv[2], {"benchmark": True})
print(json.dumps({"seconds": time.perf_counter() - t0, "result": result}))
'''


def make_files(top, n_files: int, nbytes: int) -> None:
    """n_files files of nbytes (distinct contents: nothing to deduplicate), FILES_PER_DIR to a directory."""
    for i in range(n_files):
        folder = top / f"d{i // FILES_PER_DIR:04d}"
        if i % FILES_PER_DIR == 0:
            folder.mkdir(parents=True)
        body = (f"{i:08d}" + os.urandom(nbytes // 2 + 1).hex())[:nbytes].encode()
        fd = os.open(folder / f"f{i % FILES_PER_DIR:03d}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, body)
        finally:
            os.close(fd)


def run(ctx: Context, n_files: int, nbytes: int) -> Result:
    work = ctx.tmp / "scale"
    scripts = ctx.repo / "workflow/vendor"
    driver = ctx.tmp / "scale_driver.py"
    driver.write_text(DRIVER)
    seconds: dict[str, float] = {}
    peak: dict[str, int] = {}

    def step(name: str, args: list) -> str:
        settle()
        seconds[name], out, peak[name] = ctx.run_peak(args, cwd=work)
        return out

    try:
        make_files(work / "results/scale", n_files, nbytes)
        info = json.loads(step("publish", [sys.executable, driver, scripts, "pub"]).strip().splitlines()[-1])
        if not info["result"]["created"] or info["result"]["files"] != n_files:
            raise RuntimeError(f"publish did not release the {n_files:,} files: {info['result']}")
        step("verify", [sys.executable, scripts / "publish.py", "--publish-root", "pub", "verify"])
        step("sha256sum -c", ["sh", "-c", "cd pub/current && sha256sum --quiet -c SHA256SUMS"])
        _remove(work / "pub")
        step("cp -a", ["cp", "-a", "results/scale", "copy"])
        step("sync", ["sync"])  # right after the copy: flushes what it wrote
        step("sha256sum", ["sh", "-c", "find results/scale -type f -print0 | xargs -0 sha256sum > /dev/null"])
    finally:  # a million files: never leave them behind
        _remove(work)

    baseline = seconds["cp -a"] + seconds["sync"] + seconds["sha256sum"]
    baseline_peak = max(peak["cp -a"], peak["sync"], peak["sha256sum"])
    size = f"{n_files * nbytes / MB:,.0f} MB" if n_files * nbytes >= MB else f"{n_files * nbytes / 1024:,.0f} KB"
    label = f"{n_files:,} files × {nbytes} B"

    def row(case: str, secs: float, memory: int, per_file: bool = True) -> list[str]:
        rate = f"{n_files / secs:,.0f}" if per_file and secs > 0 else "-"
        return [case, f"{secs:.1f} s", rate, f"{memory / MB:,.1f} MB"]

    rows = [
        row("publish (`publish.publish()`, one directory entry)", seconds["publish"], peak["publish"]),
        row("verify (`publish.py verify`)", seconds["verify"], peak["verify"]),
        row("`sha256sum -c SHA256SUMS` in the release", seconds["sha256sum -c"], peak["sha256sum -c"]),
        row("`cp -a`", seconds["cp -a"], peak["cp -a"]),
        row("`sync` after `cp -a`", seconds["sync"], peak["sync"], per_file=False),  # flushes what is still dirty
        row("`find | xargs -0 sha256sum`", seconds["sha256sum"], peak["sha256sum"]),
        row("`cp -a` + `sha256sum` + `sync`", baseline, baseline_peak),
    ]
    checks = [
        Check("publish / (cp -a + sha256sum + sync)", seconds["publish"] / baseline),
        Check("verify / sha256sum -c SHA256SUMS", seconds["verify"] / seconds["sha256sum -c"]),
        Check("publish: peak memory", peak["publish"] / MB, unit="MB"),
        Check("verify: peak memory", peak["verify"] / MB, unit="MB"),
        Check("cp -a + sha256sum + sync: peak memory (largest process)", baseline_peak / MB, unit="MB"),
    ]
    notes = [
        f"{label} ({size} of data) in directories of {FILES_PER_DIR:,}: publish took {seconds['publish']:.1f} s "
        f"({seconds['publish'] / n_files * 1e6:.0f} µs a file) and verify {seconds['verify']:.1f} s; both finished "
        "and the release verified intact.",
        f"Peak memory is {PEAK_METHOD}: the largest process of the step's tree (the Python process for publish "
        "and verify, the biggest of `sh`, `find`, `xargs` and `cp` or `sha256sum` for the baselines).",
    ]
    return Result(
        key="scale",
        title=f"8. Publication at scale ({label}, run.py --scale)",
        method=(
            "One repeat (tens of minutes at full size). The files are one directory entry of the publish set. "
            "Each step is a child process started after `sync`: `publish.publish()` in a fresh Python process, "
            "`publish.py verify`, `sha256sum -c SHA256SUMS` in the release, then `cp -a` of the results, `sync` "
            "and `find | xargs -0 sha256sum`. Publish flushes its copies, so its ratio divides by the durable "
            "baseline (`cp -a` + `sha256sum` + `sync`); verify is divided by `sha256sum -c` (both hash every "
            f"file). Peak memory: {PEAK_METHOD}."
        ),
        headers=["case", "wall time", "files/s", "peak memory"],
        rows=rows,
        checks=checks,
        notes=notes,
        repeats=1,
    )
