"""3. Publication: many small files, a few big ones and many big ones, against cp -a / cp --reflink=auto plus hashing.

``publish.publish()`` from the rendered ``workflow/vendor/publish.py`` runs in a fresh Python process
per measurement (a driver script written to the temp dir), so its wall time includes interpreter
start-up just as ``cp`` includes its own. The driver also times the module's ``sha256_files`` (hashing
on all cores) and ``_write_release`` (copies or hard links, fsyncs, metadata) inside ``publish()``, which give their
shares, and, for the big files,
hashing the same files on one core, the baseline of the all-cores target. Baselines are timed as
separate commands in the same repeat: ``cp -a``, ``cp -a --reflink=auto``, a hash of the same files
(``sha256sum`` for the small files; ``openssl dgst -sha256`` for the big and the many big ones, because
coreutils' ``sha256sum`` lacks the CPU's SHA instructions on some machines and would flatter us) and a
``sync`` after each copy. Publish makes its copy durable, so the headline ratios divide by the durable
baseline (``cp -a`` + hash + ``sync``), and the 1.3x target must hold in every repeat (the worst one is
reported); the ratios without ``sync`` are shown for information and say so.

A second case republishes after one of N files changed: in one driver process, a full publish, then
one file replaced (as a rerun does) and a publish again; it reports the time of the republish against the
full publish and the disk the second release added (allocated blocks, each hard-linked file counted once).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys

from harness import MB, Check, Context, Result, Stats, fill_file, paired, settle

DRIVER = '''"""Benchmark driver: publish one set of files with publish.publish(); print timings as JSON."""
import json, os, sys, time

sys.path.insert(0, sys.argv[1])
import publish  # noqa: E402

SPENT = {"sha256": 0.0, "write": 0.0}


def timed(name, function):
    def wrapper(*args):
        t = time.perf_counter()
        try:
            return function(*args)
        finally:
            SPENT[name] += time.perf_counter() - t

    return wrapper


publish.sha256_files = timed("sha256", publish.sha256_files)
publish._write_release = timed("write", publish._write_release)  # copies or links, fsyncs, metadata
subset, publish_root, one_core = sys.argv[2], sys.argv[3], sys.argv[4] == "1"
republish = sys.argv[5:] == ["republish"]
names = sorted(os.listdir(os.path.join("results", subset)))
entries = {f"{subset}/{n}": f"results/{subset}/{n}" for n in names}


def allocated(root):
    """Bytes allocated under root, as du counts them: every inode once, hard links or not."""
    seen, total = set(), 0
    for dirpath, dirs, files in os.walk(root):
        for name in [".", *dirs, *files]:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


if republish:  # identities remembered only once settled (publish.RACY_NS): wait until the sources are
    newest = max(max(s.st_mtime_ns, s.st_ctime_ns) for s in map(os.stat, entries.values()))
    time.sleep(max(0.0, (newest + publish.RACY_NS - time.time_ns()) / 1e9 + 0.1))
t0 = time.perf_counter()
result = publish.publish(entries, "results", publish_root, {"benchmark": True})
seconds = time.perf_counter() - t0
timings = {"seconds": seconds, "hash_seconds": SPENT["sha256"], "write_seconds": SPENT["write"], "result": result}
if republish:
    changed = entries[f"{subset}/{names[len(names) // 2]}"]
    with open(changed, "rb") as old, open(changed + ".new", "wb") as new:  # a rerun writes a new file
        first = old.read(16)
        new.write(bytes(b ^ 0xFF for b in first))
        while chunk := old.read(1 << 20):
            new.write(chunk)
    os.replace(changed + ".new", changed)
    os.sync()
    cache = os.path.join(publish_root, publish.HASH_CACHE)
    before, cache_before = allocated(publish_root), os.stat(cache).st_blocks * 512
    t0 = time.perf_counter()
    again = publish.publish(entries, "results", publish_root, {"benchmark": True})
    timings["republish_seconds"] = time.perf_counter() - t0
    timings["growth_bytes"] = allocated(publish_root) - before
    release = again["release"]
    timings["changed_bytes"] = os.stat(os.path.join(release, f"{subset}/{names[len(names) // 2]}")).st_blocks * 512
    timings["metadata_bytes"] = (  # the release's own dirs, MANIFEST.json, SHA256SUMS; the cache's growth
        allocated(release)
        - allocated(os.path.join(release, subset))
        + os.lstat(os.path.join(release, subset)).st_blocks * 512
        + os.stat(cache).st_blocks * 512
        - cache_before
    )
    timings["release_bytes"] = allocated(release)
    timings["republish_result"] = again
if one_core:  # the same files hashed one after the other (page cache as warm as for publish)
    t0 = time.perf_counter()
    for value in entries.values():
        publish.sha256_file(value)
    timings["one_core_hash_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    publish.sha256_files(list(entries.values()))
    timings["all_cores_hash_seconds"] = time.perf_counter() - t0
print(json.dumps(timings))
'''


TARGET_FULL = 1.3  # issue 23: a full publish at most 1.3x `cp -a` + hashing, in every repeat
TARGET_REPUBLISH = 0.1  # issue 23: republish after 1 of N changed at most 0.1x a full publish
HASH_TOOL = {"small": "sha256sum", "big": "openssl dgst -sha256", "many": "openssl dgst -sha256"}


def make_sources(
    work, n_small: int, small_bytes: int, n_big: int, big_bytes: int, n_many: int, many_bytes: int
) -> None:
    for i in range(n_many):
        fill_file(work / f"results/many/m{i:03d}.bin", many_bytes, seed=200 + i)
    small = work / "results/small"
    small.mkdir(parents=True)
    for i in range(n_small):
        body = (f"{i:08d}" + os.urandom(small_bytes // 2).hex())[:small_bytes]
        (small / f"s{i:05d}.json").write_text(body)
    for i in range(n_big):
        fill_file(work / f"results/big/b{i}.bin", big_bytes, seed=100 + i)


def _remove(path) -> None:
    """Remove a tree that may hold read-only releases."""
    if not os.path.lexists(path):
        return
    for dirpath, _dirs, _files in os.walk(path):
        os.chmod(dirpath, stat.S_IRWXU)
    shutil.rmtree(path)


def _discard(work, path, small: bool) -> None:
    """Remove a measurement's output; for the small files only with the rest of ``work``, untimed.

    ext4 without a journal skips inodes freed in the last minute when it allocates new ones, checking
    each in turn: right after 10,000 files were removed, making 10,000 files took 2-4 s instead of 0.3 s,
    and which step paid depended on the order. The output is moved aside instead (one rename)."""
    if not small:
        _remove(path)
        return
    graveyard = work / "discarded"
    graveyard.mkdir(exist_ok=True)
    os.rename(path, graveyard / f"{path.name}-{len(os.listdir(graveyard))}")


def _hash_command(subset: str) -> str:
    return f"find results/{subset} -type f -print0 | xargs -0 {HASH_TOOL[subset]} > /dev/null"


def _measure_set(ctx: Context, work, subset: str, repeats: int, driver) -> dict[str, list[float]]:
    scripts = ctx.repo / "workflow/vendor"
    src = f"results/{subset}"
    t: dict[str, list[float]] = {}

    def add(name: str, seconds: float) -> None:
        t.setdefault(name, []).append(seconds)

    steps = ("publish", "cp -a", "cp -a --reflink=auto", "hash")
    for r in range(repeats):
        order = steps[r % len(steps) :] + steps[: r % len(steps)]
        for step in order:
            settle()
            if step == "publish":
                one_core = "1" if subset == "big" else "0"
                seconds, proc = ctx.run([sys.executable, driver, scripts, subset, "pub", one_core], cwd=work)
                info = json.loads(proc.stdout.strip().splitlines()[-1])
                if not info["result"]["created"]:
                    raise RuntimeError(f"publish did not make a new release: {info['result']}")
                # the driver hashes the big files again after publishing (the all-cores check): not publish's time
                extra = info.get("one_core_hash_seconds", 0.0) + info.get("all_cores_hash_seconds", 0.0)
                add(step, seconds - extra)
                for key in (
                    "seconds",
                    "hash_seconds",
                    "write_seconds",
                    "one_core_hash_seconds",
                    "all_cores_hash_seconds",
                ):
                    if key in info:
                        add(f"publish {key}", info[key])
                _discard(work, work / "pub", subset == "small")
            elif step == "hash":
                seconds, _ = ctx.run(["sh", "-c", _hash_command(subset)], cwd=work)
                add(step, seconds)
            else:
                seconds, _ = ctx.run([*step.split(), src, "base"], cwd=work)
                add(step, seconds)
                seconds, _ = ctx.run(["sync"], cwd=work)  # right after: flushes what the copy wrote
                add(f"sync after {step}", seconds)
                _discard(work, work / "base", subset == "small")
    return t


def _measure_republish(ctx: Context, work, subset: str, repeats: int, driver) -> dict[str, list[float]]:
    """A full publish, one file changed, a republish: per repeat, in a fresh publish dir."""
    t: dict[str, list[float]] = {}
    for _ in range(repeats):
        settle()
        _, proc = ctx.run(
            [sys.executable, driver, ctx.repo / "workflow/vendor", subset, "pub", "0", "republish"], cwd=work
        )
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        if not info["republish_result"]["created"] or info["republish_result"]["hashed"] != 1:
            raise RuntimeError(f"the republish did not hash exactly the changed file: {info['republish_result']}")
        for key in ("seconds", "republish_seconds", "growth_bytes", "changed_bytes", "metadata_bytes", "release_bytes"):
            t.setdefault(key, []).append(info[key])
        _discard(work, work / "pub", subset == "small")
    return t


def run(
    ctx: Context,
    n_small: int,
    small_bytes: int,
    n_big: int,
    big_bytes: int,
    n_many: int,
    many_bytes: int,
    repeats_small: int,
    repeats_big: int,
    repeats_many: int,
) -> Result:
    work = ctx.tmp / "publication"
    try:
        make_sources(work, n_small, small_bytes, n_big, big_bytes, n_many, many_bytes)
        driver = ctx.tmp / "publish_driver.py"
        driver.write_text(DRIVER)
        sets = {
            "small": (n_small, n_small * small_bytes, f"{n_small:,} files × {small_bytes} B"),
            "big": (n_big, n_big * big_bytes, f"{n_big} files × {big_bytes / MB:,.0f} MB"),
            "many": (n_many, n_many * many_bytes, f"{n_many} files × {many_bytes / MB:,.0f} MB"),
        }
        sets = {name: value for name, value in sets.items() if value[0] > 0}  # --big-files 0: no big set
        repeats = {"small": repeats_small, "big": repeats_big, "many": repeats_many}
        measured = {name: _measure_set(ctx, work, name, repeats[name], driver) for name in sets}
        # republish after one changed file: the many small files and the many big ones
        again_sets = {name: sets[name][2] for name in ("small", "many") if name in sets}
        again = {name: _measure_republish(ctx, work, name, repeats[name], driver) for name in again_sets}
    finally:  # the many big files alone are 10 GB at full size: never leave them behind
        _remove(work)

    rows, checks, notes = [], [], []
    for name, (_files, nbytes, label) in sets.items():
        t = measured[name]
        mb = nbytes / MB
        hash_name = f"`{HASH_TOOL[name]}`"

        def total(*steps, t=t):
            return Stats([sum(values) for values in zip(*(t[s] for s in steps), strict=True)])

        share = {
            what: paired(t[f"publish {what}_seconds"], t["publish seconds"], lambda a, b: a / b).median
            for what in ("hash", "write")
        }
        baselines = {
            f"`cp -a` + {hash_name}": ("cp -a", "hash"),
            f"`cp -a` + {hash_name} + `sync`": ("cp -a", "hash", "sync after cp -a"),
            f"`cp -a --reflink=auto` + {hash_name} + `sync`": (
                "cp -a --reflink=auto",
                "hash",
                "sync after cp -a --reflink=auto",
            ),
        }
        publish_stats = Stats(t["publish"])
        rows.append(
            [
                label,
                "publish",
                *publish_stats.cells("{:.3f} s"),
                f"{mb / publish_stats.median:.0f}",
                f"{share['hash']:.1%}",
                f"{share['write']:.1%}",
            ]
        )
        for case, steps in [
            ("`cp -a`", ("cp -a",)),
            ("`cp -a --reflink=auto`", ("cp -a --reflink=auto",)),
            (hash_name, ("hash",)),
            *baselines.items(),
        ]:
            stats = total(*steps)
            rows.append([label, case, *stats.cells("{:.3f} s"), f"{mb / stats.median:.0f}", "", ""])
        for case, steps in baselines.items():
            ratios = paired(t["publish"], total(*steps).values, lambda a, b: a / b)
            label_case = case.replace("`", "")
            if steps == ("cp -a", "hash", "sync after cp -a") and name != "big":
                # the headline: durable with durable; issue 23 wants 1.3x in every repeat, so the worst counts.
                # The big set's target is hashing on all cores (below).
                checks.append(
                    Check(
                        f"{name}: publish / ({label_case}), worst of {len(ratios.values)} repeat(s)",
                        ratios.max,
                        f"<= {TARGET_FULL}",
                        ratios.max <= TARGET_FULL,
                    )
                )
            elif not any(step.startswith("sync") for step in steps):
                checks.append(Check(f"{name}: publish / ({label_case}), baseline without sync", ratios.median))
            else:
                checks.append(Check(f"{name}: publish / ({label_case})", ratios.median))
            notes.append(
                f"{label}: publish / ({label_case}) per repeat: " + ", ".join(f"{r:.2f}" for r in ratios.values)
            )
        if name == "big":
            parallel = paired(
                t["publish all_cores_hash_seconds"], t["publish one_core_hash_seconds"], lambda a, b: a / b
            )
            checks.append(
                Check(
                    f"big: hashing on all {os.cpu_count()} cores / one core",
                    parallel.median,
                    "<= 0.6",
                    parallel.median <= 0.6,
                )
            )
        durable = paired(t["publish"], total("cp -a", "hash", "sync after cp -a").values, lambda a, b: a / b)
        notes.append(
            f"{label}: publish / (`cp -a` + {hash_name} + `sync`) per repeat: "
            + ", ".join(f"{v:.2f}x" for v in durable.values)
            + f" (median {durable.median:.2f}x, worst {durable.max:.2f}x)."
        )
        notes.append(
            f"{label}: hashing (all cores) takes {share['hash']:.1%} of the time inside publish() and writing "
            f"the release (copies or links, fsyncs, metadata) {share['write']:.1%}; {hash_name} alone runs at "
            f"{mb / Stats(t['hash']).median:.0f} MB/s here."
        )
    for name, label in again_sets.items():
        t = again[name]
        ratio = paired(t["republish_seconds"], t["seconds"], lambda a, b: a / b)
        rows.append([label, "full publish (in-process)", *Stats(t["seconds"]).cells("{:.3f} s"), "", "", ""])
        rows.append([label, "republish after 1 changed", *Stats(t["republish_seconds"]).cells("{:.3f} s"), "", "", ""])
        checks.append(
            Check(
                f"{name}: republish after 1 of N changed / full publish",
                ratio.max,
                f"<= {TARGET_REPUBLISH}",
                ratio.max <= TARGET_REPUBLISH,
            )
        )
        notes.append(f"{label}: republish / full publish per repeat: " + ", ".join(f"{r:.2f}" for r in ratio.values))
        growth = Stats(t["growth_bytes"])
        allowed = [c + m for c, m in zip(t["changed_bytes"], t["metadata_bytes"], strict=True)]
        within = all(g <= a for g, a in zip(t["growth_bytes"], allowed, strict=True))
        checks.append(
            Check(
                f"{name}: disk growth of the republish", growth.max / 1024, "<= changed + metadata", within, unit="KB"
            )
        )
        notes.append(
            f"{label}: the republish added {growth.max / 1024:,.0f} KB at most (the changed file "
            f"{Stats(t['changed_bytes']).max / 1024:,.0f} KB, the release's directories, MANIFEST.json and "
            f"SHA256SUMS and the hash cache's growth {Stats(t['metadata_bytes']).max / 1024:,.0f} KB) to a release of "
            f"{Stats(t['release_bytes']).median / MB:,.1f} MB; ratio is the largest of the repeats."
        )
    return Result(
        key="publish",
        title="3. Publication",
        method=(
            "`publish.publish(entries, 'results', ROOT, provenance)` with one entry per file, in a fresh Python "
            "process per measurement (wall time including start-up); each measurement makes a new release (the "
            "publish dir is removed between them, untimed). A new release's file is a hard link to an earlier "
            "release holding the same bytes, else a copy (a reflink clone where the filesystem offers one, else "
            "`copy_file_range`), flushed by an fsync each or, from 64 copies on, one `syncfs`. The hash share is the time in `sha256_files()` (all "
            "cores), the write share the time in `_write_release()` (links or copies, fsyncs, metadata), both over "
            "the time inside `publish()`. Republish: in one process, a full publish, one file replaced, a publish "
            "again (both timed inside the process), for the small files and for the many big ones. Disk growth: "
            "allocated blocks under the publish dir after minus before, each inode once. Baselines: `cp -a SRC "
            "DST`, `cp -a --reflink=auto SRC DST`, the hash command (`sha256sum` for the small files, `openssl dgst "
            "-sha256` for the big ones: coreutils' `sha256sum` runs without the CPU's SHA instructions here and "
            "would flatter publish) and `sync` right after each copy, timed separately in the same repeat and "
            "summed. Publish flushes its copies, so each targeted ratio divides by a baseline with `sync` "
            "(durable with durable) and each ratio's name gives its baseline. Ratios are medians of the "
            "per-repeat ratios, except where the name says worst repeat (the full-publish target must hold in "
            "every repeat) and the republish ratios (the largest of the repeats). Every step starts after `sync`."
        ),
        headers=["set", "case", "median", "min", "max", "MB/s (median)", "hash share", "write share"],
        rows=rows,
        checks=checks,
        notes=notes,
        repeats=max(repeats.values()),
        repeats_note=(
            f"{repeats_small} repeat(s) for the small files, {repeats_big} for the big ones, "
            f"{repeats_many} for the many big ones"
        ),
    )
