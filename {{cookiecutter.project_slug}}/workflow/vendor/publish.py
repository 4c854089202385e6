#!/usr/bin/env python3
"""Publish declared results as immutable, verifiable releases.

Mechanism only (stdlib). The publish set itself is meaning and is declared in
``workflow/rules/publish.smk``, whose ``publish`` rule calls ``publish()``.

Layout under ``publish/``::

    publish/
      current -> releases/<UTC time>-<id>   relative symlink, swapped atomically
      releases/<UTC time>-<id>/             read-only: the files, MANIFEST.json, SHA256SUMS
      .lock                                 serialises concurrent publishes
      .hashes.json                          sha256 by file identity (a cache: safe to delete)
      .staging-*                            a release being built (never read)

A release never shares a file with ``results/``: a file whose content an intact
release already holds is a hard link to that release's read-only file, any
other file a copy of its result (a reflink clone where the filesystem can, an
in-kernel copy otherwise). So nothing done to ``results/`` changes a release,
nothing done to a release blocks a rebuild, and a new release costs the space
of what changed. ``publish/.hashes.json`` remembers the sha256 of files by
identity (device, inode, size, mtime, ctime), so unchanged results are not
read again; ``verify`` reads every byte.
``SHA256SUMS`` (``sha256sum -c`` format) covers every published file and
``MANIFEST.json``; ``<id>`` is the start of the sha256 of ``SHA256SUMS``, so
the manifest and its provenance are covered too. Publishing content that an
intact release already holds reuses that release; a damaged one is never
made current again.

Commands (run in the repository root)::

    python workflow/vendor/publish.py verify [RELEASE_DIR]   # default publish/current
    python workflow/vendor/publish.py list
    python workflow/vendor/publish.py prune --keep N

From the Snakemake repository template, release {{ cookiecutter._template_version }}.
"""

import collections
import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
import stat
import sys
import threading
import time
from pathlib import Path

import durable

MANIFEST = "MANIFEST.json"
CHECKSUMS = "SHA256SUMS"
MANIFEST_FORMAT = 2
CHUNK = 1 << 20
READ_ONLY_FILE = 0o444
READ_ONLY_DIR = 0o555
HASH_CACHE = ".hashes.json"
# a result changed less than this before it was hashed may still be changing within one timestamp tick
# (git's "racily clean" entries): its identity is not remembered, so the next publish hashes it again
RACY_NS = 2_000_000_000
KEEP_FILE_BYTES, KEEP_TOTAL_BYTES = 64 << 10, 64 << 20  # files read once: up to 64 KiB each, 64 MiB in all
WRITE_THREADS = 16  # copies and fsyncs wait on the disk: overlap them
BIG_FILE = 1 << 20  # files this big on average are hashed and copied on threads from the start
PROBE_ITEMS = 32  # else this many run first, to see whether they wait (see in_chunks)
# from this many copies on, one syncfs of the release's filesystem instead of an fsync per file (each fsync
# waits for its own journal commit: 10,000 small files took seconds more than copying them)
SYNCFS_FILES = 64
RELEASE_NAME = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-(?P<id>[0-9a-f]{12})$")
# Snakemake writes this into every directory() output for its own bookkeeping: not a result
SNAKEMAKE_MARKER = ".snakemake_timestamp"
# in a published name: a control character, a backslash, or an empty, "." or ".." part (an empty part
# is a leading, doubled or trailing "/")
NOT_PLAIN = re.compile(r"[\x00-\x1f\x7f\\]|(?:^|/)\.{0,2}(?:/|$)")
SHA256_HEX = re.compile(r"(?:[0-9a-f]{64})*")
LOCK_WAIT_SECONDS = 600  # how long a publish waits for another publish or prune to finish


class PublishError(RuntimeError):
    """A refusal or failure, with a message that says what to do."""


# --------------------------------------------------------------------------
# bytes on disk
# --------------------------------------------------------------------------
def sha256_file(path, kept: dict | None = None) -> str:
    """sha256 of the file at ``path``; if ``kept`` has the key ``path``, also the bytes hashed, there."""
    keep, chunks = kept is not None and path in kept, []
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # not open(): no isatty ioctl, seek and stat per file
    try:
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
            if keep:
                chunks.append(chunk)
    finally:
        os.close(fd)
    if keep:
        kept[path] = b"".join(chunks)
    return digest.hexdigest()


def in_chunks(function, items, threads: int, big: bool = False) -> list:
    """``[function(item) for item in items]``, on up to ``threads`` threads where that pays: for ``big``
    files (hashing and in-kernel copies run without the GIL) from the start; else only if the first
    items, run on this thread, mostly waited (a network filesystem, a cold disk) instead of computing.
    Small files in the page cache gain nothing from threads but GIL handoffs (10,000 files of 1 KB:
    a fifth more CPU on 16 threads than on one). Each thread takes a run of items at a time (about
    four runs per thread), so 10,000 files cost a few dozen tasks."""
    items = list(items)
    threads = min(threads, len(items))
    done = []
    if threads >= 2 and not big:
        wall, cpu = time.perf_counter(), time.thread_time()
        done = [function(item) for item in items[:PROBE_ITEMS]]
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        if wall - cpu < wall / 2:  # computing, not waiting
            threads = 1
    rest = items[len(done) :]
    if threads < 2 or not rest:
        return done + [function(item) for item in rest]
    from concurrent.futures import ThreadPoolExecutor  # imported only when used: most of the module's start-up

    size = -(-len(rest) // (4 * threads))
    runs = [rest[i : i + size] for i in range(0, len(rest), size)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return done + [result for run in pool.map(lambda run: [function(item) for item in run], runs) for result in run]


def sha256_files(paths, sizes=None, progress=None, kept=None) -> list[str]:
    """sha256 of each path, on all cores (hashlib releases the GIL while hashing).

    More threads than cores: one file's hash cannot be split, so with five big
    files on two cores, two threads would leave a core idle for the fifth file;
    five threads share both cores to the end.
    """
    paths = list(paths)
    sizes = list(sizes) if sizes is not None else [os.stat(path).st_size for path in paths]

    def one(item):
        digest = sha256_file(item[0], kept) if kept else sha256_file(item[0])
        if progress is not None:
            progress.add(1, item[1])
        return digest

    big = sum(sizes) >= BIG_FILE * len(paths)
    return in_chunks(one, zip(paths, sizes, strict=True), 4 * (os.cpu_count() or 1), big)


# what publish keeps of a source's stat (a fraction of its memory), named as in os.stat_result so either serves
Identity = collections.namedtuple("Identity", "st_dev st_ino st_size st_mtime_ns st_ctime_ns")


def _identity(st) -> Identity:
    return Identity(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _key(st) -> str:
    """A stat's or an Identity's key in the hash cache."""
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def load_hashes(publish_root: Path) -> dict:
    """{identity key: sha256} remembered by the last publish; empty if missing or unreadable."""
    try:
        data = json.loads((Path(publish_root) / HASH_CACHE).read_text(encoding="utf-8"))
        hashes = data["sha256"] if data.get("format") == 1 else {}
        # a sha256 goes into manifests as it is: anything but 64 hex digits makes the whole cache unreadable
        if not all(len(v) == 64 for v in hashes.values()) or not SHA256_HEX.fullmatch("".join(hashes.values())):
            return {}
        return {str(k): v for k, v in hashes.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def save_hashes(publish_root: Path, hashes: dict) -> None:
    """Replace the cache in one rename. Not fsynced: after a crash it is old, new or unreadable
    (then empty), and a lost cache only costs hashing again."""
    tmp = Path(publish_root) / f".hashes-{os.getpid()}-{os.urandom(3).hex()}"
    tmp.write_text(json.dumps({"format": 1, "sha256": hashes}, separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, Path(publish_root) / HASH_CACHE)


def _syncfs():
    """Linux's syncfs(fd) (flush every file of one filesystem, report its write errors), or None."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.syncfs
    except (OSError, AttributeError, ImportError):
        return None

    def syncfs(path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            if function(fd) != 0:
                raise OSError(ctypes.get_errno(), f"syncfs of {path} failed")
        finally:
            os.close(fd)

    return syncfs


def _fsync_dir(path) -> None:
    with contextlib.suppress(OSError):  # some filesystems refuse to flush a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Progress:
    """Files and bytes done, rate and time left: on a terminal one line updated at most four times a
    second (after the first second); otherwise nothing until ``done()`` prints one summary line."""

    def __init__(self, label: str, stream=None):
        self.label, self.stream = label, stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = self.shown = self.phase_start = time.monotonic()
        self.files = self.bytes = self.total_files = self.total_bytes = 0
        self.step = ""
        self._lock = threading.Lock()

    def phase(self, step: str, files: int, nbytes: int) -> None:
        with self._lock:
            self.step, self.files, self.bytes, self.total_files, self.total_bytes = step, 0, 0, files, nbytes
            self.phase_start = time.monotonic()

    def add(self, files: int, nbytes: int) -> None:
        if not self.live:
            return
        with self._lock:
            self.files += files
            self.bytes += nbytes
            now = time.monotonic()
            if now - self.shown < 0.25 or now - self.start < 1.0:
                return
            self.shown = now
            spent = max(now - self.phase_start, 1e-6)
            rate = self.bytes / spent
            frac = self.bytes / self.total_bytes if self.total_bytes else self.files / max(self.total_files, 1)
            left = spent * (1 - frac) / frac if frac > 0 else 0.0
            line = (
                f"{self.label}: {self.step} {self.files:,}/{self.total_files:,} files, "
                f"{_size(self.bytes)}/{_size(self.total_bytes)}, {_size(rate)}/s, {left:.0f} s left"
            )
            self.stream.write(f"\r{line[:150]}\033[K")
            self.stream.flush()

    def done(self, summary: str) -> None:
        seconds = time.monotonic() - self.start
        line = f"{self.label}: {summary} in {seconds:.1f} s"
        self.stream.write(f"\r{line}\033[K\n" if self.live else f"{line}\n")
        self.stream.flush()


def _size(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return ""


def utc_stamp(moment: _dt.datetime) -> str:
    """ISO 8601 UTC to the second, as written in manifests."""
    return moment.astimezone(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------
# the publish set
# --------------------------------------------------------------------------
def check_publish_name(name: str) -> str:
    if NOT_PLAIN.search(name) or name in (MANIFEST, CHECKSUMS):
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
    return [(name, real) for name, real, _ in _resolve_sources(entries, results_root)]


def _resolve_sources(entries: dict, results_root: Path) -> list[tuple[str, str, Identity]]:
    """``resolve_sources`` with the ``Identity`` of each real source, from its stat taken while resolving it."""
    root = os.path.realpath(results_root)
    lexical_root = os.path.abspath(results_root)
    cwd = os.getcwd()

    def inside(path: str, top: str) -> bool:
        return path == top or path.startswith(top.rstrip(os.sep) + os.sep)

    # per folder as declared: its absolute and its real path, each ending in "/", and whether each is
    # inside results/ (then so is every file in it). Once per folder: realpath costs a lstat per component
    folders: dict[str, tuple[str, str, bool, bool]] = {}
    files = []
    for name, source in sorted(entries.items()):
        check_publish_name(name)
        head, slash, leaf = os.fspath(source).rpartition("/")
        folder = head or slash  # "x": the working directory; "/x": the root
        if leaf in ("", ".", ".."):  # not a plain name: resolved as a whole
            folder, leaf = os.path.split(os.path.abspath(source))
        if folder not in folders:
            absolute = os.path.normpath(os.path.join(cwd, folder))
            real_folder = os.path.realpath(absolute)
            folders[folder] = (
                absolute.rstrip("/") + "/",
                real_folder.rstrip("/") + "/",
                inside(absolute, lexical_root),
                inside(real_folder, root),
            )
        absolute, real_folder, absolute_inside, real_inside = folders[folder]
        src = absolute + leaf
        if not (absolute_inside or inside(src, lexical_root)):
            raise PublishError(f"refusing to publish {name!r}: {source} is not under {results_root}/")
        try:
            st = os.lstat(src)
            if stat.S_ISLNK(st.st_mode):
                real, real_inside = os.path.realpath(src), None
                st = os.stat(real)
            else:
                real = real_folder + leaf
        except OSError:
            raise PublishError(
                f"refusing to publish {name!r}: {source} does not exist; run the workflow first"
            ) from None
        if not (real_inside or inside(real, root)):
            raise PublishError(f"refusing to publish {name!r}: {source} is a symlink that leaves {results_root}/")
        if not stat.S_ISDIR(st.st_mode):
            files.append((name, real, _identity(st)))
            continue
        files += sorted(_directory_files(name, real, lambda path: inside(path, root), results_root))
    seen = set()
    for name, _, _ in files:
        if name in seen:
            raise PublishError(f"published name {name!r} is declared twice")
        seen.add(name)
    return files


def _scan(top: str, under: str = ""):
    """(relative path, its os.DirEntry list) of the directory ``top`` and of every folder below it, each
    scanned once; a symlink is listed, never followed. ``under`` is the relative path of ``top``."""
    folders = [(top, under)]
    while folders:
        folder, rel = folders.pop()
        with os.scandir(folder) as scanned:
            entries = list(scanned)
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                folders.append((entry.path, f"{rel}/{entry.name}" if rel else entry.name))
        yield rel, entries


def _directory_files(name: str, top: str, in_results, results_root) -> list[tuple[str, str, Identity]]:
    """(published name, source, identity) of every file under the real directory ``top`` published as
    ``name``: without Snakemake's marker, a symlinked file resolved (refused if it leaves results/), a
    symlinked folder neither followed nor published."""
    files = []
    for folder, entries in _scan(top, name):
        for entry in entries:
            if entry.is_symlink():
                source = os.path.realpath(entry.path)
                if not in_results(source):
                    raise PublishError(
                        f"refusing to publish {name!r}: {entry.path} is a symlink that leaves {results_root}/"
                    )
                if os.path.isdir(source):
                    continue
                try:
                    st = os.stat(source)
                except OSError:
                    raise PublishError(f"refusing to publish {name!r}: {entry.path} is a broken symlink") from None
            elif entry.is_dir(follow_symlinks=False) or entry.name == SNAKEMAKE_MARKER:
                continue
            else:
                source, st = entry.path, entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise PublishError(f"refusing to publish {name!r}: {entry.path} is not a regular file")
            files.append((check_publish_name(f"{folder}/{entry.name}"), source, _identity(st)))
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
    lines = data.decode("utf-8").splitlines()
    # every line well formed: checked in two passes over all lines, not a regex per line
    if all(line[64:66] == "  " for line in lines) and SHA256_HEX.fullmatch("".join(line[:64] for line in lines)):
        return {line[66:]: line[:64] for line in lines}
    sums = {}
    for number, line in enumerate(lines, start=1):
        sha, sep, path = line.partition("  ")
        if not sep or len(sha) != 64 or not SHA256_HEX.fullmatch(sha):
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
    _fsync_dir(publish_root)  # the directory entry only: the releases were flushed when made


@contextlib.contextmanager
def publish_lock(publish_root: Path):
    """Exclusive lock on ``publish/.lock``; waits up to LOCK_WAIT_SECONDS for another publish or prune."""
    path = publish_root / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PublishError(
                        f"another publish holds {path} for more than {LOCK_WAIT_SECONDS} s; "
                        "wait for it to finish (a crashed publish releases the lock by itself)"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def verify(release: Path, known: dict | None = None, progress: Progress | None = None) -> list[str]:
    """Every problem of ``release``: missing, altered or extra files, directories and symlinks,
    and a manifest that does not match its checksums, its files or the release name. Empty: intact.

    Every file is read and hashed, unless ``known`` ({identity key: sha256}, see ``load_hashes``)
    holds its identity with the sha256 it must have; files hashed and found intact are added to it.
    """
    return _verify(release, known, progress)[0]


def _verify(release, known, progress) -> tuple[list[str], int]:
    """``verify``'s problems and the number of files the manifest lists."""
    release = Path(release)
    try:
        raw = (release / CHECKSUMS).read_bytes()
        sums = parse_checksums(raw)
        manifest = read_manifest(release)
    except (OSError, PublishError) as exc:
        return [f"{CHECKSUMS} or {MANIFEST} unreadable: {exc}"], 0
    problems = []
    match = RELEASE_NAME.match(release.resolve().name)
    if match and hashlib.sha256(raw).hexdigest()[:12] != match["id"]:
        problems.append(f"{CHECKSUMS}: does not match the release name {release.resolve().name} (edited)")
    listed = {e["path"]: e for e in manifest.get("files", [])}
    if not set(listed) | {MANIFEST} <= set(sums):  # SHA256SUMS may also cover metadata files (describe=)
        problems.append(f"{MANIFEST}: lists files that {CHECKSUMS} does not cover (edited)")
    if content_digest(listed.values()) != manifest.get("content_digest"):
        problems.append(f"{MANIFEST}: content_digest does not match its file list (edited)")
    top = os.fspath(release)
    files, links, dirs, others = _release_tree(top, keys=known is not None)
    present = [rel for rel in sorted(sums) if rel in files]
    problems += [f"missing: {rel}" for rel in sorted(set(sums) - set(files))]
    # a copy has no release name to pin SHA256SUMS, so a file and its line can be rewritten together:
    # the manifest (pinned by its own line) must then disagree
    for rel, entry in sorted(listed.items()):
        if rel in sums and entry.get("sha256") != sums[rel]:
            problems.append(f"altered: {rel} (sha256 in {MANIFEST} differs from {CHECKSUMS})")
        if rel in files and entry.get("size") != files[rel][0]:
            problems.append(f"altered: {rel} (size in {MANIFEST} differs from the file)")
    to_hash = [rel for rel in present if known is None or known.get(files[rel][1]) != sums[rel]]
    if progress is not None:
        progress.phase("hashing", len(to_hash), sum(files[rel][0] for rel in to_hash))
    hashed = sha256_files([f"{top}/{rel}" for rel in to_hash], [files[rel][0] for rel in to_hash], progress)
    for rel, sha in zip(to_hash, hashed, strict=True):
        if sha != sums[rel]:
            what = f"{MANIFEST} (provenance edited)" if rel == MANIFEST else rel
            problems.append(f"altered: {what} (sha256 differs from {CHECKSUMS})")
        elif known is not None:
            known[files[rel][1]] = sha
    expected_dirs = _folders(sums)
    problems += [f"extra: {rel} (a symlink; releases hold only files)" for rel in sorted(links)]
    problems += [f"extra: {rel}/ (directory not in {CHECKSUMS})" for rel in sorted(dirs) if rel not in expected_dirs]
    problems += [
        f"extra: {rel} (not in {CHECKSUMS})"
        for rel in sorted([*files, *others])
        if rel not in sums and rel != CHECKSUMS
    ]
    return problems, len(listed)


def _release_tree(top: str, keys: bool) -> tuple[dict, list, list, list]:
    """What is under ``top``, as relative paths: {regular file: (size, identity key if ``keys`` else None)},
    symlinks, directories, and anything else."""
    files, links, dirs, others = {}, [], [], []
    for folder, entries in _scan(top):
        for entry in entries:
            rel = f"{folder}/{entry.name}" if folder else entry.name
            if entry.is_symlink():
                links.append(rel)
            elif entry.is_dir(follow_symlinks=False):
                dirs.append(rel)
            elif stat.S_ISREG((st := entry.stat(follow_symlinks=False)).st_mode):
                files[rel] = (st.st_size, _key(st) if keys else None)
            else:  # a fifo, socket or device
                others.append(rel)
    return files, links, dirs, others


def _reusable_release(publish_root: Path, digest: str, known: dict) -> tuple[Path | None, list[str]]:
    """The newest intact release holding exactly this content, and the damaged ones that did."""
    damaged = []
    for release in reversed(releases(publish_root)):
        with contextlib.suppress(PublishError):
            if read_manifest(release).get("content_digest") != digest:
                continue
            problems = verify(release, known)
            if not problems:
                return release, damaged
            damaged.append(f"{release.name}: {problems[0]}")
    return None, damaged


def _sealed_sums(release: Path) -> dict:
    """The SHA256SUMS of ``release`` if the release name pins it (its id starts its sha256), else {}."""
    match = RELEASE_NAME.match(release.name)
    try:
        raw = (release / CHECKSUMS).read_bytes()
        if not match or hashlib.sha256(raw).hexdigest()[:12] != match["id"]:
            return {}
        return parse_checksums(raw)
    except (OSError, UnicodeDecodeError, PublishError):
        return {}


def _shared_files(publish_root: Path, wanted: set, known: dict, sources: set) -> dict:
    """{sha256: a file of an existing release with exactly those bytes}, for the sha256s in ``wanted``.

    A file qualifies when its release's name pins its SHA256SUMS, it is a read-only regular file
    inside that release (not through a symlink, not a hard link to a source in ``results/``), and its
    bytes are the recorded ones: ``known`` holds its identity with that sha256, or hashing it gives
    that sha256 (then remembered in ``known``). A damaged copy is never shared.
    """
    found, unknown = {}, {}
    for release in reversed(releases(publish_root)):
        if len(found) + len(unknown) == len(wanted):
            break
        top, inside = os.path.realpath(release) + os.sep, {}  # per directory: no symlink leads out
        here = os.fspath(release)  # plain strings: a Path per file costs more than its lstat
        for rel, sha in _sealed_sums(release).items():
            if sha not in wanted or sha in found or sha in unknown or rel in (MANIFEST, CHECKSUMS):
                continue
            path = f"{here}/{rel}"
            folder = path.rpartition("/")[0]
            if folder not in inside:
                inside[folder] = (os.path.realpath(folder) + os.sep).startswith(top)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if (
                not stat.S_ISREG(st.st_mode)
                or st.st_mode & 0o222
                or (st.st_dev, st.st_ino) in sources
                or not inside[folder]
            ):
                continue
            if known.get(_key(st)) == sha:
                found[sha] = path
            else:
                unknown[sha] = (path, st)
    checked = sha256_files([path for path, _ in unknown.values()], [st.st_size for _, st in unknown.values()])
    for (sha, (path, st)), actual in zip(unknown.items(), checked, strict=True):
        with contextlib.suppress(OSError):
            if actual == sha and _key(os.lstat(path)) == _key(st):
                known[_key(st)] = sha
                found[sha] = path
    return found


def _folders(names) -> set[str]:
    """Every folder holding one of the relative paths ``names`` (not "")."""
    folders = set()
    for name in names:
        folder = name.rpartition("/")[0]
        while folder and folder not in folders:
            folders.add(folder)
            folder = folder.rpartition("/")[0]
    return folders


def manifest_bytes(manifest: dict) -> bytes:
    """``json.dumps(manifest, indent=2, sort_keys=True)`` with each file on one line: the same JSON,
    the file lines made by ``_file_lines`` (the indenting encoder is pure Python: about 0.1 s per
    10,000 files)."""
    head = json.dumps({**manifest, "files": []}, indent=2, sort_keys=True)
    files = ",\n    ".join(_file_lines(manifest["files"]))
    # the top-level key is the only one indented by two spaces
    return head.replace('\n  "files": []', f'\n  "files": [\n    {files}\n  ]', 1).encode() + b"\n"


FILE_KEYS = ("path", "sha256", "size")  # in every file entry; sorted, as the encoder sorts keys


def _file_lines(files: list[dict]) -> list[str]:
    """``json.dumps(entry, sort_keys=True)`` of each file entry, with one encoder call for all paths
    instead of one per entry: an encoded string never holds '", "' (its every '"' is escaped), so the
    encoded list of paths splits at its separators only. An entry's other keys (what made it: shared
    by the files of a declared entry) are encoded once per distinct set."""
    paths = json.dumps([entry["path"] for entry in files])[2:-2].split('", "') if files else []
    shapes: dict = {}
    lines = []
    for entry, path in zip(files, paths, strict=True):
        others = tuple((k, v) for k, v in entry.items() if k not in FILE_KEYS)
        try:
            parts = shapes.get(others)
        except TypeError:  # a value that cannot be a dict key (a list, ...): the encoder's own way
            lines.append(json.dumps(entry, sort_keys=True))
            continue
        if parts is None:  # the other keys' "key": value pieces before path, after it, after sha256, after size
            pieces = [[], [], [], []]
            for k, v in sorted(others):
                pieces[sum(k > fixed for fixed in FILE_KEYS)].append(
                    f"{json.dumps(k)}: {json.dumps(v, sort_keys=True)}"
                )
            parts = shapes[others] = (
                "".join(p + ", " for p in pieces[0]),
                *("".join(", " + p for p in pieces[i]) for i in (1, 2, 3)),
            )
        before, after_path, after_sha, after_size = parts
        sha, size = entry["sha256"], entry["size"]
        lines.append(
            "{"
            + f'{before}"path": "{path}"{after_path}, "sha256": "{sha}"{after_sha}, "size": {size:d}{after_size}'
            + "}"
        )
    return lines


def _write_release(
    staging: Path,
    files,
    entries: list[dict],
    provenance: dict,
    now,
    describe=None,
    shared=None,
    progress=None,
    digest=None,
    kept=None,
) -> tuple[str, dict, int]:
    """Fill ``staging`` with the files ((published name, source, its Identity when hashed) each),
    MANIFEST.json, ``describe``'s metadata files and SHA256SUMS, all on disk and read-only; return the release id, {identity key: sha256} of its published files
    and how many of them are hard links to ``shared`` ({sha256: file of an earlier release}).
    ``digest``: the entries' ``content_digest`` if already known; ``kept``: {source: its bytes as
    hashed}, written from memory instead of copied."""
    shared, kept = shared or {}, kept or {}
    top = os.fspath(staging)
    for folder in sorted(_folders(name for name, _, _ in files), key=len):
        os.mkdir(os.path.join(top, folder))
    if progress is not None:
        progress.phase("writing", len(files), sum(e["size"] for e in entries))

    copies = sum(1 for e in entries if e["sha256"] not in shared)
    syncfs = _syncfs() if copies >= SYNCFS_FILES else None
    flush = syncfs is None  # else one syncfs at the end flushes the whole release

    def link(entry: dict, dst: str) -> bool:
        if entry["sha256"] not in shared:
            return False
        try:
            os.link(shared[entry["sha256"]], dst)
            return True
        except OSError:  # too many links, another owner, ...: copy instead
            return False

    def place(item) -> str | None:
        """Link the file to an intact earlier release holding its bytes (None), else copy it (its key)."""
        (name, src, hashed), entry = item
        dst, copied = f"{top}/{name}", None
        if not link(entry, dst):
            data = kept.get(src)
            if data is not None:  # the very bytes hashed
                copied = durable.write_new(dst, data, READ_ONLY_FILE, flush)
            else:  # the copy must hold the bytes hashed (a link holds an earlier release's: _shared_files)
                copied = durable.clone(src, dst, mode=READ_ONLY_FILE, flush=flush)
                if _identity(os.stat(src)) != hashed or copied.st_size != entry["size"]:
                    raise PublishError(f"{src} changed while it was being published; rerun publish")
        if progress is not None:
            progress.add(1, entry["size"])
        return None if copied is None else _key(copied)

    big = sum(e["size"] for e in entries) >= BIG_FILE * len(entries)
    placed = in_chunks(place, zip(files, entries, strict=True), WRITE_THREADS, big)
    keys = {}
    for (name, src, _), entry, key in zip(files, entries, placed, strict=True):
        if key is None:  # linked: stat after every link (a new link changes the shared file's ctime)
            st = os.stat(f"{top}/{name}")
            if st.st_size != entry["size"]:
                raise PublishError(f"{src} changed while it was being published; rerun publish")
            key = _key(st)
        keys[key] = entry["sha256"]
    manifest = {
        "format": MANIFEST_FORMAT,
        "created": utc_stamp(now),
        "content_digest": digest or content_digest(entries),
        "files": entries,
        "provenance": provenance,
    }
    data = manifest_bytes(manifest)
    sums = {e["path"]: e["sha256"] for e in entries}
    sums[MANIFEST] = hashlib.sha256(data).hexdigest()
    keys[_key(durable.write_new(staging / MANIFEST, data, READ_ONLY_FILE, flush))] = sums[MANIFEST]
    if describe is not None:  # metadata in other formats (e.g. an RO-Crate), covered by SHA256SUMS too
        describe(staging, manifest)
        described = sorted(
            rel
            for dirpath, _, names in os.walk(staging)
            for rel in (Path(dirpath, n).relative_to(staging).as_posix() for n in names)
            if rel not in sums
        )
        for rel, sha in zip(described, sha256_files([staging / rel for rel in described]), strict=True):
            os.chmod(staging / rel, READ_ONLY_FILE)
            if flush:
                durable.sync(staging / rel)
            keys[_key(os.stat(staging / rel))] = sums[rel] = sha
    checksums = checksum_lines(sums)
    durable.write_new(staging / CHECKSUMS, checksums, READ_ONLY_FILE, flush)
    folders = sorted(_folders(sums), key=len, reverse=True)  # describe may have made some
    for folder in folders:
        os.chmod(os.path.join(top, folder), READ_ONLY_DIR)
    if syncfs is not None:
        syncfs(staging)  # every copy, link, metadata file and folder of the release, in one flush
    else:
        for folder in [*folders, ""]:
            _fsync_dir(os.path.join(top, folder))
    linked = placed.count(None)
    return hashlib.sha256(checksums).hexdigest()[:12], keys, linked


def _record_of(name: str, records: dict) -> dict:
    """The record of ``name`` or of the nearest declared directory holding it."""
    while records:
        if name in records:
            return records[name]
        if "/" not in name:
            break
        name = name.rsplit("/", 1)[0]
    return {}


def publish(
    entries: dict,
    results_root="results",
    publish_root="publish",
    provenance=None,
    describe=None,
    progress=True,
):
    """Publish ``entries`` (published name -> source under results_root) as a release.

    ``describe(staging_dir, manifest)``, if given, writes further metadata files into the release
    before it is sealed; SHA256SUMS and ``verify`` cover them like every other file. ``progress``:
    show progress on a terminal and print one summary line to stderr.

    Returns {"release", "created", "moved", "files", "damaged", "hashed", "linked"}: the release now
    current, whether it is new, whether ``current`` changed, the number of files, the damaged
    releases that held the same content (never reused), and how many results were read to hash
    them and how many files are hard links to earlier releases.
    """
    results_root, publish_root = Path(results_root), Path(publish_root)
    shown = Progress("publish") if progress else None
    started = time.time_ns()  # before the first stat (see RACY_NS)
    resolved = _resolve_sources(entries, results_root)
    if not resolved:
        raise PublishError("the publish set is empty; declare files in workflow/rules/publish.smk")
    stats = [st for _, _, st in resolved]
    (publish_root / "releases").mkdir(parents=True, exist_ok=True)
    known = load_hashes(publish_root)
    keys = [_key(st) for st in stats]
    hashes = [known.get(key) for key in keys]
    todo = [i for i, sha in enumerate(hashes) if sha is None]  # new or changed since last remembered
    if shown is not None:
        shown.phase("hashing", len(todo), sum(stats[i].st_size for i in todo))
    # small files are kept in memory while hashed and written from there: each is read once
    kept, budget = {}, KEEP_TOTAL_BYTES
    for i in todo:
        if stats[i].st_size <= min(KEEP_FILE_BYTES, budget):
            kept[resolved[i][1]] = None
            budget -= stats[i].st_size
    fresh = sha256_files([resolved[i][1] for i in todo], [stats[i].st_size for i in todo], shown, kept)
    for i, sha in zip(todo, fresh, strict=True):
        hashes[i] = sha
    # only identities that had settled before hashing began are remembered (see RACY_NS)
    settled = started - RACY_NS
    remember = {
        key: sha
        for key, st, sha in zip(keys, stats, hashes, strict=True)
        if st.st_mtime_ns < settled and st.st_ctime_ns < settled
    }
    records = (provenance or {}).get("made_by", {})  # per declared entry; a directory's files share its record
    file_entries = [
        {"path": name, "size": st.st_size, "sha256": sha, **_record_of(name, records)}
        for (name, _, st), sha in zip(resolved, hashes, strict=True)
    ]
    provenance = {k: v for k, v in (provenance or {}).items() if k != "made_by"}
    digest = content_digest(file_entries)
    linked = 0
    with publish_lock(publish_root):
        for leftover in [*publish_root.glob(".staging-*"), *publish_root.glob(".current-*")]:
            durable.rollback(leftover)
        for leftover in publish_root.glob(".hashes-*"):
            durable.rollback(leftover)
        current = current_release(publish_root)
        release, damaged = _reusable_release(publish_root, digest, known)
        created = release is None
        if created:
            sources = {(st.st_dev, st.st_ino) for st in stats}
            shared = _shared_files(publish_root, {e["sha256"] for e in file_entries}, known, sources)
            now = _dt.datetime.now(_dt.UTC)
            staging = publish_root / f".staging-{os.getpid()}-{os.urandom(3).hex()}"
            staging.mkdir()
            try:
                release_id, release_keys, linked = _write_release(
                    staging, resolved, file_entries, provenance, now, describe, shared, shown, digest, kept
                )
                release = publish_root / "releases" / f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{release_id}"
                os.rename(staging, release)
            except BaseException:
                durable.rollback(staging)
                raise
            os.chmod(release, READ_ONLY_DIR)
            _fsync_dir(release.parent)
        else:  # verified above: every file's identity is now in known
            release_keys = {}
            for rel, sha in _sealed_sums(release).items():
                with contextlib.suppress(OSError):
                    if known.get(key := _key(os.stat(release / rel))) == sha:
                        release_keys[key] = sha
        moved = current is None or current != release.resolve()
        if moved:
            point_current(publish_root, release)
        with contextlib.suppress(OSError):  # a cache that cannot be written only costs hashing next time
            save_hashes(publish_root, remember | release_keys)
    if shown is not None:
        total = sum(st.st_size for st in stats)
        what = f"linked {linked:,} unchanged, copied {len(resolved) - linked:,}" if created else "no new release"
        shown.done(f"{len(resolved):,} files ({_size(total)}): hashed {len(todo):,}, {what}")
    return {
        "release": str(release),
        "created": created,
        "moved": moved,
        "files": len(resolved),
        "damaged": damaged,
        "hashed": len(todo),
        "linked": linked,
    }


def prune(publish_root: Path, keep: int) -> list[Path]:
    """Remove all but the ``keep`` newest releases; never the current one.

    A kept release's files hard-linked from a removed one lose only a link, never data. Removing a
    link changes a file's ctime, so the remembered identities of kept files are updated."""
    if keep < 1:
        raise PublishError("prune --keep must be at least 1")
    publish_root = Path(publish_root)
    removed = []
    with publish_lock(publish_root):
        current = current_release(publish_root)
        doomed = [
            r
            for r in sorted(releases(publish_root), key=lambda p: p.name, reverse=True)[keep:]
            if r.resolve() != current
        ]
        if not doomed:
            return removed
        known = load_hashes(publish_root)
        kept = {}  # path -> its identity key before the removal, for the files known intact
        for release in releases(publish_root):
            if release in doomed:
                continue
            for rel in _sealed_sums(release):
                with contextlib.suppress(OSError):
                    if (key := _key(os.stat(release / rel))) in known:
                        kept[release / rel] = key
        for release in doomed:
            durable.rollback(release)
            removed.append(release)
        if kept:
            rekeyed = {k: v for k, v in known.items() if k not in set(kept.values())}
            for path, key in kept.items():
                with contextlib.suppress(OSError):
                    rekeyed[_key(os.stat(path))] = known[key]
            with contextlib.suppress(OSError):
                save_hashes(publish_root, rekeyed)
    return removed


# --------------------------------------------------------------------------
# provenance
# --------------------------------------------------------------------------
def git_output(cwd, *args) -> str | None:
    """The output of a git command run in ``cwd``, or None when it fails (no git, not a repository)."""
    import subprocess  # only for provenance: the CLI's verify and list start without it

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
    progress = Progress("verify")
    problems, files = _verify(release, None, progress)
    progress.done(f"hashed {progress.total_files:,} files ({_size(progress.total_bytes)})")
    for problem in problems:
        print(f"FAILED: {label}: {problem}", file=sys.stderr)
    if problems:
        return 1
    note = "" if RELEASE_NAME.match(release.resolve().name) else f" (renamed copy: {CHECKSUMS} itself is not checked)"
    print(f"OK: {label}: {files} files match {MANIFEST} and {CHECKSUMS}{note}")
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
    import argparse

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
