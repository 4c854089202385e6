#!/usr/bin/env python3
"""Publish declared results as immutable, verifiable releases.

Mechanism only (stdlib). The publish set itself is meaning and is declared in
``workflow/rules/publish.smk``, whose ``publish`` rule calls ``publish()``.
Layout under ``publish/``::

    publish/
      current -> releases/<UTC time>-<id>   relative symlink, swapped atomically
      releases/<UTC time>-<id>/             read-only: the files, MANIFEST.json, SHA256SUMS
      .lock                                 serialises concurrent publishes
      .staging-*                            a release being built (never read)

A release holds its own copies of the results (a reflink clone where the
filesystem can, an in-kernel copy otherwise), so nothing done to ``results/``
changes a release and nothing done to a release blocks a rebuild.
``SHA256SUMS`` (``sha256sum -c`` format) covers every published file and
``MANIFEST.json``; ``<id>`` is the start of the sha256 of ``SHA256SUMS``, so
the manifest and its provenance are covered too. Publishing content that an
intact release already holds reuses that release; a damaged one is never
made current again.

Commands (run in the repository root)::

    python workflow/scripts/publish.py verify [RELEASE_DIR]   # default publish/current
    python workflow/scripts/publish.py list
    python workflow/scripts/publish.py prune --keep N
"""

import argparse
import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import durable

MANIFEST = "MANIFEST.json"
CHECKSUMS = "SHA256SUMS"
MANIFEST_FORMAT = 2
CHUNK = 1 << 20
READ_ONLY_FILE = 0o444
READ_ONLY_DIR = 0o555
RELEASE_NAME = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-(?P<id>[0-9a-f]{12})$")
# Snakemake writes this into every directory() output for its own bookkeeping: not a result
SNAKEMAKE_MARKER = ".snakemake_timestamp"


class PublishError(RuntimeError):
    """A refusal or failure, with a message that says what to do."""


# --------------------------------------------------------------------------
# bytes on disk
# --------------------------------------------------------------------------
def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_files(paths) -> list[str]:
    """sha256 of each path, on all cores (hashlib releases the GIL while hashing).

    More threads than cores: one file's hash cannot be split, so with five big
    files on two cores, two threads would leave a core idle for the fifth file;
    five threads share both cores to the end.
    """
    paths = list(paths)
    if len(paths) < 2:
        return [sha256_file(p) for p in paths]
    with ThreadPoolExecutor(max_workers=min(len(paths), 4 * (os.cpu_count() or 1))) as pool:
        return list(pool.map(sha256_file, paths))


def _identity(st: os.stat_result) -> tuple:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def utc_stamp(moment: _dt.datetime) -> str:
    """ISO 8601 UTC to the second, as written in manifests."""
    return moment.astimezone(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------
# the publish set
# --------------------------------------------------------------------------
def check_publish_name(name: str) -> str:
    p = PurePosixPath(name)
    bad = not name or p.is_absolute() or ".." in p.parts or name != str(p) or name in (MANIFEST, CHECKSUMS)
    if bad or "\\" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise PublishError(
            f"published name {name!r} must be a plain relative path inside the release "
            f"(no '..', no leading '/', no backslash or control characters, not {MANIFEST} or {CHECKSUMS})"
        )
    return name


def resolve_sources(entries: dict, results_root: Path) -> list[tuple[str, str]]:
    """(published name, real source path) for every file of the publish set.

    Refuses sources outside ``results_root``, symlinks that escape it and
    missing files, naming the entry; directories are expanded into their files
    (without Snakemake's marker file).
    """
    root = os.path.realpath(results_root)
    lexical_root = os.path.abspath(results_root)

    def inside(path: str, top: str) -> bool:
        return path == top or path.startswith(top.rstrip(os.sep) + os.sep)

    files = []
    for name, source in sorted(entries.items()):
        check_publish_name(name)
        src = os.fspath(source)
        if not inside(os.path.abspath(src), lexical_root):
            raise PublishError(f"refusing to publish {name!r}: {source} is not under {results_root}/")
        if not os.path.exists(src):
            raise PublishError(f"refusing to publish {name!r}: {source} does not exist; run the workflow first")
        real = os.path.realpath(src)
        if not inside(real, root):
            raise PublishError(f"refusing to publish {name!r}: {source} is a symlink that leaves {results_root}/")
        if not os.path.isdir(real):
            files.append((name, real))
            continue
        for dirpath, dirs, names in os.walk(real):
            for child in sorted(dirs + names):
                path = os.path.join(dirpath, child)
                if os.path.islink(path) and not inside(os.path.realpath(path), root):
                    raise PublishError(f"refusing to publish {name!r}: {path} is a symlink that leaves {results_root}/")
            for child in sorted(n for n in names if n != SNAKEMAKE_MARKER):
                rel = os.path.relpath(os.path.join(dirpath, child), real).replace(os.sep, "/")
                files.append((check_publish_name(f"{name}/{rel}"), os.path.realpath(os.path.join(dirpath, child))))
    seen = set()
    for name, _ in files:
        if name in seen:
            raise PublishError(f"published name {name!r} is declared twice")
        seen.add(name)
    return files


def content_digest(entries) -> str:
    """Digest of a release's content: its sorted (path, size, sha256) triples."""
    digest = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e["path"]):
        digest.update(f"{e['path']}\t{e['size']}\t{e['sha256']}\n".encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------
# releases
# --------------------------------------------------------------------------
def read_manifest(release: Path) -> dict:
    path = Path(release) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PublishError(f"{path} is missing: {release} is not a complete release") from None
    except (OSError, ValueError) as exc:
        raise PublishError(f"{path} cannot be read as JSON: {exc}") from None


def checksum_lines(sums: dict) -> bytes:
    """SHA256SUMS content, as ``sha256sum`` writes it: one "<hex>  <path>" line per file, sorted."""
    return "".join(f"{sha}  {path}\n" for path, sha in sorted(sums.items())).encode()


def parse_checksums(data: bytes) -> dict:
    sums = {}
    for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        sha, sep, path = line.partition("  ")
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise PublishError(f"{CHECKSUMS} line {number} is not '<sha256>  <path>'")
        sums[path] = sha
    return sums


def releases(publish_root: Path) -> list[Path]:
    folder = Path(publish_root) / "releases"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def current_release(publish_root: Path) -> Path | None:
    link = Path(publish_root) / "current"
    if not link.is_symlink():
        return None
    target = (link.parent / os.readlink(link)).resolve()
    return target if target.is_dir() else None


def point_current(publish_root: Path, release: Path) -> None:
    """Atomically make ``publish/current`` a relative symlink to ``release``."""
    tmp = publish_root / f".current-{os.getpid()}-{os.urandom(3).hex()}"
    os.symlink(os.path.relpath(release, publish_root), tmp)
    os.replace(tmp, publish_root / "current")
    durable.sync(publish_root)


@contextlib.contextmanager
def publish_lock(publish_root: Path, timeout: float = 600.0):
    """Exclusive lock on ``publish/.lock``; waits up to ``timeout`` seconds."""
    path = publish_root / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PublishError(
                        f"another publish holds {path} for more than {timeout:.0f} s; "
                        "wait for it to finish (a crashed publish releases the lock by itself)"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def verify(release: Path) -> list[str]:
    """Every problem of ``release``: missing, altered or extra files, directories and symlinks,
    and a manifest that does not match its checksums, its files or the release name. Empty: intact."""
    release = Path(release)
    try:
        raw = (release / CHECKSUMS).read_bytes()
        sums = parse_checksums(raw)
        manifest = read_manifest(release)
    except (OSError, PublishError) as exc:
        return [f"{CHECKSUMS} or {MANIFEST} unreadable: {exc}"]
    problems = []
    match = RELEASE_NAME.match(release.resolve().name)
    if match and hashlib.sha256(raw).hexdigest()[:12] != match["id"]:
        problems.append(f"{CHECKSUMS}: does not match the release name {release.resolve().name} (edited)")
    listed = {e["path"]: e for e in manifest.get("files", [])}
    if not set(listed) | {MANIFEST} <= set(sums):  # SHA256SUMS may also cover metadata files (describe=)
        problems.append(f"{MANIFEST}: lists files that {CHECKSUMS} does not cover (edited)")
    if content_digest(listed.values()) != manifest.get("content_digest"):
        problems.append(f"{MANIFEST}: content_digest does not match its file list (edited)")
    present = [rel for rel in sorted(sums) if (release / rel).is_file() and not (release / rel).is_symlink()]
    problems += [f"missing: {rel}" for rel in sorted(set(sums) - set(present))]
    # a copy has no release name to pin SHA256SUMS, so a file and its line can be rewritten together:
    # the manifest (pinned by its own line) must then disagree
    on_disk = set(present)
    for rel, entry in sorted(listed.items()):
        if rel in sums and entry.get("sha256") != sums[rel]:
            problems.append(f"altered: {rel} (sha256 in {MANIFEST} differs from {CHECKSUMS})")
        if rel in on_disk and entry.get("size") != (release / rel).stat().st_size:
            problems.append(f"altered: {rel} (size in {MANIFEST} differs from the file)")
    for rel, sha in zip(present, sha256_files(release / rel for rel in present), strict=True):
        if sha != sums[rel]:
            what = f"{MANIFEST} (provenance edited)" if rel == MANIFEST else rel
            problems.append(f"altered: {what} (sha256 differs from {CHECKSUMS})")
    expected_dirs = {str(PurePosixPath(rel).parent) for rel in sums} - {"."}
    expected_dirs |= {str(p) for d in expected_dirs for p in PurePosixPath(d).parents} - {"."}
    for dirpath, dirs, names in os.walk(release):
        for name in dirs + names:
            rel = Path(dirpath, name).relative_to(release).as_posix()
            if os.path.islink(os.path.join(dirpath, name)):
                problems.append(f"extra: {rel} (a symlink; releases hold only files)")
            elif name in dirs and rel not in expected_dirs:
                problems.append(f"extra: {rel}/ (directory not in {CHECKSUMS})")
            elif name in names and rel not in sums and rel != CHECKSUMS:
                problems.append(f"extra: {rel} (not in {CHECKSUMS})")
    return problems


def _reusable_release(publish_root: Path, digest: str) -> tuple[Path | None, list[str]]:
    """The newest intact release holding exactly this content, and the damaged ones that did."""
    damaged = []
    for release in reversed(releases(publish_root)):
        with contextlib.suppress(PublishError):
            if read_manifest(release).get("content_digest") != digest:
                continue
            problems = verify(release)
            if not problems:
                return release, damaged
            damaged.append(f"{release.name}: {problems[0]}")
    return None, damaged


def _write_release(staging: Path, files, entries: list[dict], provenance: dict, now, describe=None) -> str:
    """Fill ``staging`` with the files, MANIFEST.json, ``describe``'s metadata files and SHA256SUMS,
    all on disk; return the release id."""
    dirs = {staging}
    for (name, src), entry in zip(files, entries, strict=True):
        dst = staging / name
        if dst.parent not in dirs:
            dst.parent.mkdir(parents=True, exist_ok=True)
            dirs.update([dst.parent, *dst.parent.parents])
        durable.clone(src, dst)
        if _identity(os.stat(src)) != entry.pop("_identity") or os.stat(dst).st_size != entry["size"]:
            raise PublishError(f"{src} changed while it was being published; rerun publish")
    manifest = {
        "format": MANIFEST_FORMAT,
        "created": utc_stamp(now),
        "content_digest": content_digest(entries),
        "files": entries,
        "provenance": provenance,
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    before = {p for p in staging.rglob("*") if p.is_file()}
    if describe is not None:  # metadata in other formats (e.g. an RO-Crate), covered by SHA256SUMS too
        describe(staging, manifest)
    metadata = sorted({p for p in staging.rglob("*") if p.is_file()} - before) + [staging / MANIFEST]
    sums = {e["path"]: e["sha256"] for e in entries}
    sums |= {p.relative_to(staging).as_posix(): sha for p, sha in zip(metadata, sha256_files(metadata), strict=True)}
    checksums = checksum_lines(sums)
    (staging / CHECKSUMS).write_bytes(checksums)
    durable.sync(staging)
    for dirpath, subdirs, names in os.walk(staging):
        for name in names:
            os.chmod(os.path.join(dirpath, name), READ_ONLY_FILE)
        for name in subdirs:
            os.chmod(os.path.join(dirpath, name), READ_ONLY_DIR)
    return hashlib.sha256(checksums).hexdigest()[:12]


def _record_of(name: str, records: dict) -> dict:
    for key in (name, *map(str, PurePosixPath(name).parents)):
        if key in records:
            return records[key]
    return {}


def publish(
    entries: dict, results_root="results", publish_root="publish", provenance=None, lock_timeout=600.0, describe=None
):
    """Publish ``entries`` (published name -> source under results_root) as a release.

    ``describe(staging_dir, manifest)``, if given, writes further metadata files into the release
    before it is sealed; SHA256SUMS and ``verify`` cover them like every other file.

    Returns {"release", "created", "moved", "files", "damaged"}: the release now
    current, whether it is new, whether ``current`` changed, the number of files,
    and the damaged releases that held the same content (never reused).
    """
    results_root, publish_root = Path(results_root), Path(publish_root)
    files = resolve_sources(entries, results_root)
    if not files:
        raise PublishError("the publish set is empty; declare files in workflow/rules/publish.smk")
    identities = [_identity(os.stat(src)) for _, src in files]
    hashes = sha256_files(src for _, src in files)
    records = (provenance or {}).get("made_by", {})  # per declared entry; a directory's files share its record
    file_entries = [
        {"path": name, "size": ident[1], "sha256": sha, "_identity": ident, **_record_of(name, records)}
        for (name, _), ident, sha in zip(files, identities, hashes, strict=True)
    ]
    provenance = {k: v for k, v in (provenance or {}).items() if k != "made_by"}
    digest = content_digest(file_entries)
    (publish_root / "releases").mkdir(parents=True, exist_ok=True)
    with publish_lock(publish_root, lock_timeout):
        for leftover in [*publish_root.glob(".staging-*"), *publish_root.glob(".current-*")]:
            durable.rollback(leftover)
        current = current_release(publish_root)
        release, damaged = _reusable_release(publish_root, digest)
        created = release is None
        if created:
            now = _dt.datetime.now(_dt.UTC)
            staging = publish_root / f".staging-{os.getpid()}-{os.urandom(3).hex()}"
            staging.mkdir()
            try:
                release_id = _write_release(staging, files, file_entries, provenance, now, describe)
                release = publish_root / "releases" / f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{release_id}"
                os.rename(staging, release)
            except BaseException:
                durable.rollback(staging)
                raise
            os.chmod(release, READ_ONLY_DIR)
            durable.sync(release.parent)
        moved = current is None or current != release.resolve()
        if moved:
            point_current(publish_root, release)
        return {"release": str(release), "created": created, "moved": moved, "files": len(files), "damaged": damaged}


def prune(publish_root: Path, keep: int) -> list[Path]:
    """Remove all but the ``keep`` newest releases; never the current one."""
    if keep < 1:
        raise PublishError("prune --keep must be at least 1")
    removed = []
    with publish_lock(publish_root):
        current = current_release(publish_root)
        for release in sorted(releases(publish_root), key=lambda p: p.name, reverse=True)[keep:]:
            if release.resolve() != current:
                durable.rollback(release)
                removed.append(release)
    return removed


# --------------------------------------------------------------------------
# provenance
# --------------------------------------------------------------------------
def git_output(cwd, *args) -> str | None:
    """The output of a git command run in ``cwd``, or None when it fails (no git, not a repository)."""
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state(cwd) -> dict:
    """{"git_commit": sha or None, "git_dirty": bool or None} of the repository holding ``cwd``."""
    commit = git_output(cwd, "rev-parse", "HEAD")
    dirty = git_output(cwd, "status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": None if commit is None else bool(dirty)}


def git_toplevel(cwd) -> str | None:
    """The top folder of the git work tree holding ``cwd``, or None."""
    return git_output(cwd, "rev-parse", "--show-toplevel")


def git_commit_of(repository, ref) -> str | None:
    """The commit that ``ref`` (tag, branch or commit) names in ``repository`` (bare or not), or None."""
    return git_output(repository, "rev-parse", "--verify", "--quiet", ref + "^{commit}")  # the commit a tag points at


def report(result: dict) -> str:
    """One line for the user about what publish() did."""
    rel = os.path.relpath(result["release"])
    if result["created"]:
        line = f"published new release {rel} ({result['files']} files); publish/current -> {rel}"
    elif result["moved"]:
        line = f"content matches existing release {rel}; publish/current moved back to it (no new release)"
    else:
        line = f"results unchanged: publish/current is already {rel} (no new release)"
    for damaged in result["damaged"]:
        line += f"\nWARNING: damaged release not reused: {damaged}"
    return line


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------
def _cmd_verify(root: Path, release: Path | None) -> int:
    release = release or root / "current"
    if not release.exists():
        print(f"FAILED: {release} does not exist (nothing published yet?)", file=sys.stderr)
        return 2
    label = f"{release} -> {release.resolve().name}" if release.is_symlink() else str(release)
    problems = verify(release)
    for problem in problems:
        print(f"FAILED: {label}: {problem}", file=sys.stderr)
    if problems:
        return 1
    note = "" if RELEASE_NAME.match(release.resolve().name) else f" (renamed copy: {CHECKSUMS} itself is not checked)"
    print(f"OK: {label}: {len(read_manifest(release)['files'])} files match {MANIFEST} and {CHECKSUMS}{note}")
    return 0


def _cmd_list(root: Path) -> int:
    current = current_release(root)
    for release in releases(root):
        try:
            m = read_manifest(release)
            info = f"{m['created']}\t{len(m['files'])} files\t{sum(f['size'] for f in m['files'])} bytes"
        except PublishError as exc:
            info = f"unreadable: {exc}"
        print(f"{'*' if release.resolve() == current else ' '} {release.name}\t{info}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Verify, list and prune published releases.")
    parser.add_argument("--publish-root", default="publish", type=Path, help="default: publish")
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="check a release against its SHA256SUMS and MANIFEST.json")
    v.add_argument("release", nargs="?", type=Path, help="default: <publish-root>/current")
    sub.add_parser("list", help="list releases, newest last; * marks current")
    p = sub.add_parser("prune", help="remove old releases, never the current one")
    p.add_argument("--keep", type=int, required=True, help="how many of the newest releases to keep")
    args = parser.parse_args(argv)
    try:
        if args.command == "verify":
            return _cmd_verify(args.publish_root, args.release)
        if args.command == "list":
            return _cmd_list(args.publish_root)
        for release in prune(args.publish_root, args.keep):
            print(f"removed {release}")
        print(f"kept {len(releases(args.publish_root))} release(s)")
        return 0
    except PublishError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
