#!/usr/bin/env python3
"""Publish declared results as immutable, content-addressed, verifiable releases.

Mechanism only (stdlib). The publish set itself is meaning and is declared in
``workflow/rules/publish.smk``; the ``publish`` rule runs this file as its
script. Layout under ``publish/``::

    publish/
      current -> releases/<UTC time>-<digest>   relative symlink, swapped atomically
      releases/<UTC time>-<digest>/             read-only: the files + MANIFEST.json
      .lock                                     serialises concurrent publishes
      .staging-*                                a release being built (never read)

A release is built in a staging dir, fsynced, renamed into ``releases/`` and
only then does ``current`` move (``os.replace`` of a symlink), so a reader of
``publish/current`` sees the old complete release or the new complete one.
The release name ends in a digest of its content: publishing the same content
again reuses the release that holds it and creates nothing new.

Commands (run in the repository root)::

    python workflow/scripts/publish.py verify [RELEASE_DIR]   # default publish/current
    python workflow/scripts/publish.py list
    python workflow/scripts/publish.py prune --keep N
"""

import argparse
import contextlib
import datetime as _dt
import errno
import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

MANIFEST = "MANIFEST.json"
MANIFEST_FORMAT = 1
CHUNK = 1 << 20
READ_ONLY_FILE = 0o444
READ_ONLY_DIR = 0o555


class PublishError(RuntimeError):
    """A refusal or failure, with a message that says what to do."""


# --------------------------------------------------------------------------
# hashing and small helpers
# --------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def content_digest(entries) -> str:
    """Digest of a release's content: its sorted (path, size, sha256) triples."""
    digest = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e["path"]):
        digest.update(f"{e['path']}\t{e['size']}\t{e['sha256']}\n".encode())
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # directory fsync is refused by some filesystems
    finally:
        os.close(fd)


def _copy_hashing(src: Path, dst: Path) -> str:
    """Copy src to dst while hashing the bytes copied; return sha256.

    No fsync here: publish() fsyncs every copy in one pass after the last one is
    written (one pass lets the filesystem commit them together), before the
    release is renamed into place.
    """
    digest = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        while chunk := fin.read(CHUNK):
            digest.update(chunk)
            fout.write(chunk)
    return digest.hexdigest()


def _make_writable(root: Path) -> None:
    for dirpath, dirs, _files in os.walk(root):
        os.chmod(dirpath, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        for d in dirs:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, stat.S_IRWXU)


def remove_tree(path: Path) -> None:
    """Remove a (possibly read-only) release or staging dir."""
    if not path.exists():
        return
    _make_writable(path)
    shutil.rmtree(path)


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def utc_stamp(moment: _dt.datetime) -> str:
    """ISO 8601 UTC to the second, as written in manifests."""
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------
# the publish set
# --------------------------------------------------------------------------
def check_publish_name(name: str) -> str:
    p = PurePosixPath(name)
    if not name or p.is_absolute() or ".." in p.parts or name != str(p) or name == MANIFEST:
        raise PublishError(
            f"published name {name!r} must be a plain relative path inside the release "
            f"(no '..', no leading '/', not {MANIFEST})"
        )
    return name


def resolve_sources(entries: dict, results_root: Path) -> list[tuple[str, Path]]:
    """Check every declared source and expand directories into files.

    Refuses sources outside ``results_root``, symlinks that escape it and
    missing files, naming the entry.
    """
    root = results_root.resolve()
    # Plain strings and one realpath() per directory: pathlib and a realpath() per file
    # made this check most of the time of publishing 10,000 files (docs/performance.md).
    cwd = os.getcwd()
    lexical_root = os.path.normpath(os.path.join(cwd, results_root))
    real_dirs: dict[str, str] = {}

    def inside(path: str, top: str) -> bool:
        return path == top or path.startswith(top.rstrip(os.sep) + os.sep)

    def resolve(src: str) -> str:
        """os.path.realpath(src); a file that is not a symlink resolves via its directory."""
        head, tail = os.path.split(src)
        if tail in ("", ".", "..") or os.path.islink(src):
            return os.path.realpath(src)
        if head not in real_dirs:
            real_dirs[head] = os.path.realpath(head or ".")
        return os.path.join(real_dirs[head], tail)

    files: list[tuple[str, Path]] = []
    for name, source in sorted(entries.items()):
        check_publish_name(name)
        src = os.fspath(source)
        if not inside(os.path.normpath(os.path.join(cwd, src)), lexical_root):
            raise PublishError(f"refusing to publish {name!r}: {source} is not under {results_root}/")
        if not os.path.exists(src):
            raise PublishError(f"refusing to publish {name!r}: {source} does not exist; run the workflow first")
        real = resolve(src)
        if not inside(real, str(root)):
            raise PublishError(
                f"refusing to publish {name!r}: {source} is a symlink that leaves {results_root}/ (points at {real})"
            )
        real = Path(real)
        if real.is_dir():
            for child in sorted(real.rglob("*")):
                if child.is_symlink() and not child.resolve().is_relative_to(root):
                    raise PublishError(
                        f"refusing to publish {name!r}: {child} is a symlink that leaves {results_root}/"
                    )
                if child.is_file():
                    files.append((check_publish_name(f"{name}/{child.relative_to(real).as_posix()}"), child.resolve()))
        else:
            files.append((name, real))
    seen = set()
    for name, _ in files:
        if name in seen:
            raise PublishError(f"published name {name!r} is declared twice")
        seen.add(name)
    return files


# --------------------------------------------------------------------------
# releases
# --------------------------------------------------------------------------
def read_manifest(release: Path) -> dict:
    path = release / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PublishError(f"{path} is missing: {release} is not a complete release") from None
    except (OSError, ValueError) as exc:
        raise PublishError(f"{path} cannot be read as JSON: {exc}") from None


def releases(publish_root: Path) -> list[Path]:
    folder = publish_root / "releases"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def current_release(publish_root: Path) -> Path | None:
    link = publish_root / "current"
    if not link.is_symlink():
        return None
    target = (publish_root / os.readlink(link)).resolve()
    return target if target.is_dir() else None


def _find_by_digest(publish_root: Path, digest: str) -> Path | None:
    for release in releases(publish_root):
        if release.name.endswith("-" + digest[:12]):
            with contextlib.suppress(PublishError):
                if read_manifest(release).get("content_digest") == digest:
                    return release
    return None


def point_current(publish_root: Path, release: Path) -> None:
    """Atomically make ``publish/current`` a relative symlink to ``release``."""
    tmp = publish_root / f".current-{os.getpid()}-{os.urandom(3).hex()}"
    os.symlink(os.path.relpath(release, publish_root), tmp)
    os.replace(tmp, publish_root / "current")
    _fsync(publish_root)


@contextlib.contextmanager
def publish_lock(publish_root: Path, timeout: float = 600.0):
    """Exclusive lock on ``publish/.lock``; waits up to ``timeout`` seconds."""
    path = publish_root / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    announced = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise PublishError(
                        f"another publish holds {path} for more than {timeout:.0f} s; "
                        "wait for it to finish (a crashed publish releases the lock by itself)"
                    ) from None
                if not announced:
                    print(f"waiting for another publish to finish ({path})", file=sys.stderr, flush=True)
                    announced = True
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _place(src: Path, dst: Path, mode: str) -> tuple[str, str]:
    """Hardlink or copy one file; return (how, sha256 of what was placed)."""
    if mode in ("auto", "hardlink"):
        try:
            before = os.stat(src)
            os.link(src, dst)
            after = os.stat(dst)
            if (after.st_ino, after.st_size, after.st_mtime_ns) != (before.st_ino, before.st_size, before.st_mtime_ns):
                raise PublishError(f"{src} changed while it was being published; rerun publish")
            return "hardlink", ""
        except OSError as exc:
            if mode == "hardlink" or exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
    return "copy", _copy_hashing(src, dst)


def publish(
    entries: dict,
    results_root: Path | str = "results",
    publish_root: Path | str = "publish",
    provenance: dict | None = None,
    mode: str = "auto",
    lock_timeout: float = 600.0,
) -> dict:
    """Publish ``entries`` (published name -> source under results_root).

    Returns a summary dict: ``release`` (path), ``created`` (bool),
    ``moved`` (whether ``current`` changed) and ``files``.
    """
    if mode not in ("auto", "hardlink", "copy"):
        raise PublishError(f"publish mode {mode!r} is not one of auto, hardlink, copy")
    results_root, publish_root = Path(results_root), Path(publish_root)
    files = resolve_sources(entries, results_root)
    if not files:
        raise PublishError("the publish set is empty; declare files in workflow/rules/publish.smk")
    publish_root.mkdir(parents=True, exist_ok=True)
    (publish_root / "releases").mkdir(exist_ok=True)
    with publish_lock(publish_root, lock_timeout):
        for leftover in publish_root.glob(".staging-*"):  # an interrupted publish
            print(f"removing leftover staging dir from an interrupted publish: {leftover}", file=sys.stderr)
            remove_tree(leftover)
        for leftover in publish_root.glob(".current-*"):
            leftover.unlink()
        manifest_files = [{"path": name, "size": src.stat().st_size, "sha256": sha256_file(src)} for name, src in files]
        digest = content_digest(manifest_files)
        current = current_release(publish_root)
        existing = _find_by_digest(publish_root, digest)
        if existing is not None:
            moved = current is None or current.resolve() != existing.resolve()
            if moved:
                point_current(publish_root, existing)
            return {"release": str(existing), "created": False, "moved": moved, "files": len(files), "digest": digest}

        now = utc_now()
        # microseconds keep names in publish order even within one second
        name = f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{digest[:12]}"
        staging = publish_root / f".staging-{name}-{os.getpid()}"
        staging.mkdir()
        placed = {"hardlink": 0, "copy": 0}
        made_dirs, copies = set(), []
        for (rel, src), entry in zip(files, manifest_files, strict=True):
            dst = staging / rel
            if dst.parent not in made_dirs:
                dst.parent.mkdir(parents=True, exist_ok=True)
                made_dirs.add(dst.parent)
            how, sha = _place(src, dst, mode)
            placed[how] += 1
            if how == "copy":
                copies.append(dst)
                if sha != entry["sha256"]:
                    raise PublishError(f"{src} changed while it was being published; rerun publish")
        for dst in copies:  # every copied byte is on disk before the release becomes visible
            fd = os.open(dst, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        manifest = {
            "format": MANIFEST_FORMAT,
            "release": name,
            "created": utc_stamp(now),
            "content_digest": digest,
            "files": manifest_files,
            "provenance": provenance or {},
        }
        manifest_path = staging / MANIFEST
        with open(manifest_path, "x", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        for dirpath, dirs, names in os.walk(staging, topdown=False):
            for n in names:
                os.chmod(os.path.join(dirpath, n), READ_ONLY_FILE)
            for d in dirs:
                p = os.path.join(dirpath, d)
                _fsync(Path(p))
                os.chmod(p, READ_ONLY_DIR)
        _fsync(staging)
        final = publish_root / "releases" / name
        os.rename(staging, final)
        os.chmod(final, READ_ONLY_DIR)
        _fsync(publish_root / "releases")
        point_current(publish_root, final)
        return {
            "release": str(final),
            "created": True,
            "moved": True,
            "files": len(files),
            "digest": digest,
            "hardlinked": placed["hardlink"],
            "copied": placed["copy"],
        }


def verify(release: Path) -> list[str]:
    """Return the problems found in ``release`` (empty list: intact)."""
    problems = []
    manifest = read_manifest(release)
    listed = {}
    for entry in manifest.get("files", []):
        listed[entry["path"]] = entry
    if content_digest(manifest.get("files", [])) != manifest.get("content_digest"):
        problems.append(f"{MANIFEST}: content_digest does not match the listed files (manifest edited)")
    elif not release.resolve().name.endswith("-" + manifest["content_digest"][:12]):
        problems.append(f"{MANIFEST}: content_digest does not match the release name {release.resolve().name}")
    for rel, entry in sorted(listed.items()):
        path = release / rel
        if path.is_symlink() or not path.is_file():
            problems.append(f"missing: {rel}")
            continue
        size = path.stat().st_size
        if size != entry["size"]:
            problems.append(f"altered: {rel} (size {size}, manifest says {entry['size']})")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"altered: {rel} (sha256 differs from the manifest)")
    for dirpath, _dirs, names in os.walk(release):
        for n in names:
            rel = Path(dirpath, n).relative_to(release).as_posix()
            if rel != MANIFEST and rel not in listed:
                problems.append(f"extra: {rel} (not in {MANIFEST})")
    return problems


def prune(publish_root: Path, keep: int) -> list[Path]:
    """Remove all but the ``keep`` newest releases; never the current one."""
    if keep < 1:
        raise PublishError("prune --keep must be at least 1")
    removed = []
    with publish_lock(publish_root):
        current = current_release(publish_root)
        ordered = sorted(releases(publish_root), key=lambda p: p.name, reverse=True)
        for release in ordered[keep:]:
            if current is not None and release.resolve() == current:
                continue
            remove_tree(release)
            removed.append(release)
    return removed


# --------------------------------------------------------------------------
# provenance
# --------------------------------------------------------------------------
def git_commit(cwd: Path | str = ".") -> str | None:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def config_checksum(config) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


# --------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------
def _run_from_snakemake(smk) -> int:
    params = smk.params
    provenance = {
        "workflow_version": params.workflow_version,
        "git_commit": git_commit(),
        "config_sha256": params.config_checksum,
        "snakemake_version": params.snakemake_version,
        "context": params.context,
        "published_at": utc_stamp(utc_now()),
        "host": os.uname().nodename,
    }
    log = Path(smk.log[0])
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = publish(dict(params.entries), "results", "publish", provenance, mode=params.mode)
    except PublishError as exc:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"ERROR: {exc}\n")
        print(f"ERROR: publish refused: {exc}", file=sys.stderr)
        return 1
    rel = os.path.relpath(result["release"])
    if result["created"]:
        message = f"published new release {rel} ({result['files']} files); publish/current -> {rel}"
    elif result["moved"]:
        message = f"content matches existing release {rel}; publish/current moved back to it (no new release)"
    else:
        message = f"results unchanged: publish/current is already {rel} (no new release)"
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({**result, "provenance": provenance}, sort_keys=True) + "\n")
    print(message, flush=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Verify, list and prune published releases.")
    parser.add_argument("--publish-root", default="publish", type=Path, help="default: publish")
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="check a release against its MANIFEST.json")
    v.add_argument("release", nargs="?", type=Path, help="default: <publish-root>/current")
    sub.add_parser("list", help="list releases, newest last; * marks current")
    p = sub.add_parser("prune", help="remove old releases, never the current one")
    p.add_argument("--keep", type=int, required=True, help="how many of the newest releases to keep")
    args = parser.parse_args(argv)
    root = args.publish_root
    try:
        if args.command == "verify":
            release = args.release or root / "current"
            if not release.exists():
                print(f"FAILED: {release} does not exist (nothing published yet?)", file=sys.stderr)
                return 2
            problems = verify(release)
            label = f"{release} -> {release.resolve().name}" if release.is_symlink() else str(release)
            if problems:
                for problem in problems:
                    print(f"FAILED: {label}: {problem}", file=sys.stderr)
                return 1
            n = len(read_manifest(release)["files"])
            print(f"OK: {label}: {n} files match {MANIFEST}")
            return 0
        if args.command == "list":
            current = current_release(root)
            for release in releases(root):
                try:
                    m = read_manifest(release)
                    info = f"{m['created']}\t{len(m['files'])} files\t{sum(f['size'] for f in m['files'])} bytes"
                except PublishError as exc:
                    info = f"unreadable: {exc}"
                mark = "*" if current is not None and release.resolve() == current else " "
                print(f"{mark} {release.name}\t{info}")
            return 0
        if args.command == "prune":
            removed = prune(root, args.keep)
            for release in removed:
                print(f"removed {release}")
            print(f"kept {len(releases(root))} release(s)")
            return 0
    except PublishError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    if "snakemake" in globals():
        sys.exit(_run_from_snakemake(snakemake))  # noqa: F821 - injected by Snakemake's script:
    sys.exit(main())
