"""3. Publication: many small files and a few big ones, hardlink and copy mode vs cp -al / cp -a + sha256sum.

``publish.publish()`` from the rendered ``workflow/scripts/publish.py`` runs in a fresh Python process
per measurement (a driver script written to the temp dir), so its wall time includes interpreter
start-up just as ``cp`` includes its own. The driver counts the seconds spent in sha256 (it wraps the
``hashlib`` the module uses), which gives the sha256 share. Baselines are timed as separate commands in
the same repeat: ``cp -al``, ``cp -a``, ``sha256sum`` over the same files and a ``sync`` after ``cp -a``
(what the copy would cost if it were made durable, as publish makes it).
"""

from __future__ import annotations

import json
import operator
import os
import shutil
import stat
import sys

from harness import MB, Check, Context, Result, Stats, fill_file, load, paired, settle

DRIVER = '''"""Benchmark driver: publish one set of files with publish.publish(); print timings as JSON."""
import hashlib, json, os, sys, time

sys.path.insert(0, sys.argv[1])
import publish  # noqa: E402

SPENT = [0.0]
FSYNC = [0.0]
IN_FILE_HASH = [False]


class TimedSha256:
    def __init__(self, data=b""):
        self._h = hashlib.sha256()
        if data:
            self.update(data)

    def update(self, data):
        t = time.perf_counter()
        self._h.update(data)
        if not IN_FILE_HASH[0]:  # sha256_file() is timed as a whole, reading included
            SPENT[0] += time.perf_counter() - t

    def hexdigest(self):
        return self._h.hexdigest()


class Shim:
    sha256 = TimedSha256

    def __getattr__(self, name):
        return getattr(hashlib, name)


class TimedOs:
    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def fsync(fd):
        t = time.perf_counter()
        os.fsync(fd)
        FSYNC[0] += time.perf_counter() - t


def timed_sha256_file(path, _orig=publish.sha256_file):
    t = time.perf_counter()
    IN_FILE_HASH[0] = True
    try:
        return _orig(path)
    finally:
        IN_FILE_HASH[0] = False
        SPENT[0] += time.perf_counter() - t


publish.hashlib = Shim()
publish.sha256_file = timed_sha256_file
publish.os = TimedOs()
mode, subset, publish_root = sys.argv[2], sys.argv[3], sys.argv[4]
names = sorted(os.listdir(os.path.join("results", subset)))
entries = {f"{subset}/{n}": f"results/{subset}/{n}" for n in names}
t0 = time.perf_counter()
result = publish.publish(entries, "results", publish_root, {"benchmark": True}, mode=mode)
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "hash_seconds": SPENT[0], "fsync_seconds": FSYNC[0], "result": result}))
'''


def _remove(path) -> None:
    if not os.path.lexists(path):
        return
    for dirpath, dirs, _files in os.walk(path):
        os.chmod(dirpath, stat.S_IRWXU)
        for d in dirs:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, stat.S_IRWXU)
    shutil.rmtree(path)


def make_sources(work, n_small: int, small_bytes: int, n_big: int, big_bytes: int) -> None:
    small = work / "results/small"
    small.mkdir(parents=True)
    for i in range(n_small):
        body = (f"{i:08d}" + os.urandom(small_bytes // 2).hex())[:small_bytes]
        (small / f"s{i:05d}.json").write_text(body)
    for i in range(n_big):
        fill_file(work / f"results/big/b{i}.bin", big_bytes, seed=100 + i)


def _measure_set(ctx: Context, work, subset: str, repeats: int, driver) -> dict[str, list[float]]:
    scripts = ctx.repo / "workflow/scripts"
    src = f"results/{subset}"
    t: dict[str, list[float]] = {}

    def add(name: str, seconds: float) -> None:
        t.setdefault(name, []).append(seconds)

    steps = ("hardlink", "copy", "cp -al", "cp -a", "sha256sum")
    for r in range(repeats):
        order = steps[r % len(steps) :] + steps[: r % len(steps)]
        for step in order:
            settle()
            if step in ("hardlink", "copy"):
                seconds, proc = ctx.run([sys.executable, driver, scripts, step, subset, "pub"], cwd=work)
                info = json.loads(proc.stdout.strip().splitlines()[-1])
                placed = info["result"].get("hardlinked" if step == "hardlink" else "copied")
                if not info["result"]["created"] or placed != info["result"]["files"]:
                    raise RuntimeError(f"publish {step} did not place every file as asked: {info['result']}")
                add(step, seconds)
                add(f"{step} inner", info["seconds"])
                add(f"{step} sha256", info["hash_seconds"])
                add(f"{step} fsync", info["fsync_seconds"])
                _remove(work / "pub")
            elif step == "cp -al":
                seconds, _ = ctx.run(["cp", "-al", src, "base"], cwd=work)
                add(step, seconds)
                _remove(work / "base")
            elif step == "cp -a":
                seconds, _ = ctx.run(["cp", "-a", src, "base"], cwd=work)
                add(step, seconds)
                seconds, _ = ctx.run(["sync"], cwd=work)  # right after: flushes what cp -a wrote
                add("sync after cp -a", seconds)
                _remove(work / "base")
            else:
                cmd = f"find {src} -type f -print0 | xargs -0 sha256sum > /dev/null"
                seconds, _ = ctx.run(["sh", "-c", cmd], cwd=work)
                add(step, seconds)
    return t


def run(
    ctx: Context, n_small: int, small_bytes: int, n_big: int, big_bytes: int, repeats_small: int, repeats_big: int
) -> Result:
    before = load()
    work = ctx.tmp / "publication"
    make_sources(work, n_small, small_bytes, n_big, big_bytes)
    driver = ctx.tmp / "publish_driver.py"
    driver.write_text(DRIVER)
    sets = {
        "small": (n_small, n_small * small_bytes, f"{n_small:,} files × {small_bytes} B"),
        "big": (n_big, n_big * big_bytes, f"{n_big} files × {big_bytes / MB:,.0f} MB"),
    }
    sets = {name: value for name, value in sets.items() if value[0] > 0}  # --big-files 0: small files only
    repeats = {"small": repeats_small, "big": repeats_big}
    measured = {name: _measure_set(ctx, work, name, repeats[name], driver) for name in sets}
    _remove(work)

    rows, checks, notes = [], [], []
    for name, (_files, nbytes, label) in sets.items():
        t = measured[name]
        mb = nbytes / MB
        cpa_sha = paired(t["cp -a"], t["sha256sum"], lambda a, b: a + b)
        cpa_sha_sync = Stats(
            [a + b + c for a, b, c in zip(t["cp -a"], t["sha256sum"], t["sync after cp -a"], strict=True)]
        )
        cpal_sha = paired(t["cp -al"], t["sha256sum"], lambda a, b: a + b)

        share = {
            (step, what): paired(t[f"{step} {what}"], t[f"{step} inner"], operator.truediv).median
            for step in ("hardlink", "copy")
            for what in ("sha256", "fsync")
        }

        def row(case: str, s: Stats, step: str = "", mb=mb, label=label, share=share) -> list[str]:
            rate = f"{mb / s.median:.0f}" if s.median > 0 else "-"
            shares = [f"{share[step, what]:.1%}" for what in ("sha256", "fsync")] if step else ["", ""]
            return [label, case, *s.cells("{:.3f} s"), rate, *shares]

        hl, cp = Stats(t["hardlink"]), Stats(t["copy"])
        rows += [
            row("publish, hardlink mode", hl, "hardlink"),
            row("`cp -al`", Stats(t["cp -al"])),
            row("`cp -al` + `sha256sum`", cpal_sha),
            row("publish, copy mode", cp, "copy"),
            row("`cp -a` + `sha256sum`", cpa_sha),
            row("`cp -a` + `sha256sum` + `sync`", cpa_sha_sync),
        ]
        hl_vs = paired(t["hardlink"], t["cp -al"], lambda a, b: a / b)
        cp_vs = paired(t["copy"], cpa_sha.values, lambda a, b: a / b)
        hl_vs_sha = paired(t["hardlink"], cpal_sha.values, lambda a, b: a / b)
        cp_vs_sync = paired(t["copy"], cpa_sha_sync.values, lambda a, b: a / b)
        if name == "small":
            checks.append(Check("small: hardlink mode / cp -al", hl_vs.median, "<= 2.0", hl_vs.median <= 2.0))
        else:
            checks.append(Check("big: hardlink mode / cp -al", hl_vs.median))
        checks += [
            Check(f"{name}: hardlink mode / (cp -al + sha256sum)", hl_vs_sha.median),
            Check(f"{name}: copy mode / (cp -a + sha256sum)", cp_vs.median, "<= 1.3", cp_vs.median <= 1.3),
            Check(f"{name}: copy mode / (cp -a + sha256sum + sync)", cp_vs_sync.median),
        ]
        notes.append(
            f"{label}: sha256 takes {share['hardlink', 'sha256']:.1%} of the time inside publish() in hardlink "
            f"mode and {share['copy', 'sha256']:.1%} in copy mode; fsync {share['hardlink', 'fsync']:.1%} and "
            f"{share['copy', 'fsync']:.1%}. `sha256sum` alone runs at {mb / Stats(t['sha256sum']).median:.0f} "
            "MB/s here; Python's hashlib (OpenSSL) is several times faster on big files."
        )
    return Result(
        key="publish",
        title="3. Publication",
        method=(
            "`publish.publish(entries, 'results', ROOT, provenance, mode=...)` with one entry per file, in a "
            "fresh Python process per measurement (wall time including start-up); each measurement makes a "
            "new release (the publish dir is removed between them, untimed). The sha256 share is the time in "
            "`sha256_file()` (reading and hashing each file for the manifest) plus hashing while copying, the "
            "fsync share the time in `os.fsync`, both over the time inside `publish()`. Baselines: `cp -al SRC DST`, "
            "`cp -a SRC DST`, `find SRC -type f -print0 | xargs -0 sha256sum`, and `sync` right after "
            "`cp -a`, each timed separately in the same repeat and summed. Every step starts after `sync`."
        ),
        headers=["set", "case", "median", "min", "max", "MB/s (median)", "sha256 share", "fsync share"],
        rows=rows,
        checks=checks,
        notes=notes,
        load_before=before,
        load_after=load(),
        repeats=max(repeats.values()),
        repeats_note=f"{repeats_small} repeat(s) for the small files, {repeats_big} for the big ones",
    )
