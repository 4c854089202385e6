"""7. Publication on reflink filesystems: XFS (``mkfs.xfs -m reflink=1``) and btrfs, each on a loop device.

For each filesystem the benchmark makes its own: a sparse image file in the temp dir, ``mkfs``, ``mount -o
loop``; ``results/`` and the publish dir are both on it, so each file publish copies is a reflink clone
(``FICLONE``: shared blocks, no data written) and a full publish should cost little more than hashing the
files. The filesystem is unmounted and its image deleted afterwards, also when a step fails.

Cases, in rotating order within each repeat, each after ``sync``:
- ``publish``: ``publish.publish()`` of the files in a fresh Python process (the driver of
  ``bench_publish``; wall time including interpreter start-up), into a publish dir removed after each repeat;
- hashing the same bytes alone: ``openssl dgst -sha256`` once per file, as many at once as ``publish``
  hashes in parallel (``sha256_files`` runs 4 threads per core; ``xargs -P``), so both sides hash the same
  bytes with the same parallelism (the target's baseline);
- ``cp -a --reflink=always`` + ``sync`` (for information: what a reflink copy alone costs here).
The disk a publish adds (used blocks from ``statvfs`` after minus before, both after ``sync``) shows
that the release shares the results' blocks instead of copying them.

Without root, without ``mkfs.xfs``/``mkfs.btrfs`` or loop devices, or when mkfs or the mount fails, the
filesystem's case is reported as not run, with the reason, and gives no number.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path

from bench_publish import DRIVER, _remove
from harness import MB, BenchError, Check, Context, Result, Stats, fill_file, paired, settle

# filesystem: (mkfs program, its options, the Debian package that has it)
FILESYSTEMS = {
    "xfs": ("mkfs.xfs", ["-q", "-m", "reflink=1"], "xfsprogs"),
    "btrfs": ("mkfs.btrfs", ["-q"], "btrfs-progs"),
}
MIN_IMAGE = 320 * MB  # mkfs.xfs refuses filesystems under 300 MB; the image is sparse, so this costs nothing
TARGET = 1.1  # issue 23: a full publish at most 1.1x hashing the same bytes alone
HASH_THREADS = 4 * (os.cpu_count() or 1)  # publish.sha256_files: 4 threads per core
SUBSET = "files"


class NoFilesystem(Exception):
    """mkfs or the loop mount failed: this filesystem cannot be measured here."""


def _program(name: str) -> str | None:
    """Path of a system program; mkfs and mount live in sbin, which a user's PATH may lack."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def unavailable(kind: str) -> str:
    """Why a ``kind`` filesystem cannot be made on a loop device here; empty if it can (as far as known)."""
    mkfs, _, package = FILESYSTEMS[kind]
    if os.geteuid() != 0:
        return "needs root to mount a loop device"
    if not _program(mkfs):
        return f"{mkfs} not found (Debian package {package})"
    if not _program("mount") or not _program("umount"):
        return "mount/umount not found"
    if not os.path.exists("/dev/loop-control"):
        return "no loop devices here (/dev/loop-control is missing)"
    return ""


@contextlib.contextmanager
def loop_filesystem(ctx: Context, kind: str, where: Path, nbytes: int):
    """A fresh ``kind`` filesystem of ``nbytes`` (a sparse image) mounted at ``where/mnt``; on leaving, it is
    unmounted (which also frees the loop device ``mount -o loop`` set up) and ``where`` deleted."""
    mkfs, options, _ = FILESYSTEMS[kind]
    image, mount = where / f"{kind}.img", where / "mnt"
    mount.mkdir(parents=True)
    with open(image, "wb") as fh:
        fh.truncate(max(nbytes, MIN_IMAGE))
    mounted = False
    try:
        try:
            ctx.run([_program(mkfs), *options, image], cwd=where, timeout=300)
            ctx.run([_program("mount"), "-o", "loop", image, mount], cwd=where, timeout=120)
        except BenchError as exc:  # e.g. a container that may not attach loop devices
            last = [line for line in str(exc).splitlines() if line.strip()][-1]
            raise NoFilesystem(f"could not make the filesystem: {last.strip()[:200]}") from exc
        mounted = True
        yield mount
    finally:
        if mounted:
            try:
                ctx.run([_program("umount"), mount], cwd=where, timeout=300)
            except BenchError:  # still busy: detach it now, the kernel lets go when the last user does
                ctx.run([_program("umount"), "-l", mount], cwd=where, timeout=60)
        shutil.rmtree(where)


def _used_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _measure(ctx: Context, mount: Path, n_files: int, nbytes: int, repeats: int, driver: Path) -> dict:
    for i in range(n_files):
        fill_file(mount / f"results/{SUBSET}/r{i:02d}.bin", nbytes, seed=300 + i)
    hash_alone = (
        f"find results/{SUBSET} -type f -print0 | xargs -0 -n 1 -P {HASH_THREADS} openssl dgst -sha256 > /dev/null"
    )
    t: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        t.setdefault(name, []).append(value)

    steps = ("publish", "hash alone", "cp --reflink")
    for r in range(repeats):
        for step in steps[r % len(steps) :] + steps[: r % len(steps)]:
            settle()
            if step == "publish":
                used = _used_bytes(mount)
                args = [sys.executable, driver, ctx.repo / "workflow/vendor", SUBSET, "pub", "0"]
                seconds, proc = ctx.run(args, cwd=mount)
                info = json.loads(proc.stdout.strip().splitlines()[-1])
                if not info["result"]["created"]:
                    raise RuntimeError(f"publish did not make a new release: {info['result']}")
                add("publish", seconds)
                add("hash share", info["hash_seconds"] / info["seconds"])
                add("write share", info["write_seconds"] / info["seconds"])
                settle()
                add("disk growth", _used_bytes(mount) - used)
                _remove(mount / "pub")
            elif step == "hash alone":
                seconds, _ = ctx.run(["sh", "-c", hash_alone], cwd=mount)
                add(step, seconds)
            else:
                seconds, _ = ctx.run(["cp", "-a", "--reflink=always", f"results/{SUBSET}", "copy"], cwd=mount)
                flush, _ = ctx.run(["sync"], cwd=mount)
                add(step, seconds + flush)
                _remove(mount / "copy")
    return t


def run(ctx: Context, n_files: int, nbytes: int, repeats: int) -> Result:
    driver = ctx.tmp / "publish_driver.py"
    driver.write_text(DRIVER)
    total = n_files * nbytes
    mb = total / MB
    label = f"{n_files} files × {nbytes / MB:,.0f} MB"
    rows, checks, notes, not_run = [], [], [], []
    for kind in FILESYSTEMS:
        if reason := unavailable(kind):
            not_run.append((kind, reason))
            continue
        try:
            # room for the results and, should clones fail, one full copy beside them
            with loop_filesystem(ctx, kind, ctx.tmp / f"reflink-{kind}", 2 * total + 256 * MB) as mount:
                t = _measure(ctx, mount, n_files, nbytes, repeats, driver)
        except NoFilesystem as exc:
            not_run.append((kind, str(exc)))
            continue
        publish, hashing, copy = Stats(t["publish"]), Stats(t["hash alone"]), Stats(t["cp --reflink"])
        share = {what: Stats(t[f"{what} share"]).median for what in ("hash", "write")}
        rows += [
            [kind, "publish", *publish.cells("{:.3f} s"), f"{mb / publish.median:.0f}"]
            + [f"{share['hash']:.1%}", f"{share['write']:.1%}"],
            [kind, f"hashing alone ({HASH_THREADS} × `openssl dgst -sha256` at once)", *hashing.cells("{:.3f} s")]
            + [f"{mb / hashing.median:.0f}", "", ""],
            [kind, "`cp -a --reflink=always` + `sync`", *copy.cells("{:.3f} s"), f"{mb / copy.median:.0f}", "", ""],
        ]
        ratio = paired(t["publish"], t["hash alone"], lambda a, b: a / b)
        growth = Stats(t["disk growth"])
        checks += [
            Check(
                f"{kind}: full publish / hashing the same bytes alone",
                ratio.median,
                f"<= {TARGET}",
                ratio.median <= TARGET,
            ),
            Check(f"{kind}: disk a full publish adds (of {mb:,.0f} MB published)", growth.max / MB, unit="MB"),
        ]
        notes.append(
            f"{kind}, {label}: publish / hashing alone per repeat "
            + ", ".join(f"{v:.2f}x" for v in ratio.values)
            + f" (worst {ratio.max:.2f}x); inside publish() hashing took {share['hash']:.1%} of the time and "
            f"writing the release (reflink clones, flushes, metadata) {share['write']:.1%}; a full publish added "
            f"{growth.max / MB:,.1f} MB of used blocks at most."
        )
    return Result(
        key="reflink",
        title=f"7. Publication on reflink filesystems ({label})",
        method=(
            "Per filesystem, one made for this benchmark: a sparse image file, `mkfs.xfs -m reflink=1` or "
            "`mkfs.btrfs`, `mount -o loop`, unmounted and deleted afterwards. `results/` and the publish dir are "
            "both on it. `publish`: `publish.publish()` of the files in a fresh Python process (wall time with "
            "start-up), a new release each time. The baseline for the target is hashing the same bytes alone "
            f"with the same parallelism: `openssl dgst -sha256` once per file, {HASH_THREADS} at once (publish "
            "hashes on 4 threads per core); `cp -a --reflink=always` + `sync` is for information. Cases rotate "
            "within each repeat and each starts after `sync`; the page cache is warm for all of them (the files "
            "were just written). Disk growth: used blocks (`statvfs`) after a publish minus before, after `sync`."
        ),
        headers=["filesystem", "case", "median", "min", "max", "MB/s (median)", "hash share", "write share"],
        rows=rows,
        checks=checks,
        notes=notes,
        repeats=repeats,
        not_run=not_run,
    )
