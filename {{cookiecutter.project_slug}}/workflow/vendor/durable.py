"""Durable file operations shared by scratch.py and publish.py (stdlib only).

A file or tree is written under a temporary name, flushed to disk (``sync``),
then moved into place with one rename (``commit``), or removed if anything
went wrong (``rollback``). A reader never sees it half-written.

From the Snakemake repository template, release {{ cookiecutter._template_version }}.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat

CHUNK = 1 << 20
FICLONE = 0x40049409  # Linux ioctl: share the source's blocks (btrfs, XFS, ...)
_NO_REFLINK: set[int] = set()  # filesystems (st_dev) that refused a reflink
_NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTTY, errno.EBADF)


def sync(path) -> None:
    """Flush a file, or every file and directory of a tree, to disk.

    Directories are flushed where the filesystem allows it (some refuse).
    """
    if not os.path.isdir(path) or os.path.islink(path):
        _fsync(path)
        return
    files, dirs = [], []
    for dirpath, _dirs, names in os.walk(path, topdown=False):
        files += [os.path.join(dirpath, n) for n in names if not os.path.islink(os.path.join(dirpath, n))]
        dirs.append(dirpath)
    if len(files) > 16:  # many small files: flushes wait on the disk, so overlap them (errors still raise)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(_fsync, files))
    else:
        for name in files:
            _fsync(name)
    for dirpath in dirs:
        with contextlib.suppress(OSError):
            _fsync(dirpath)


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# a file made here is new: created exclusively, never through an existing name
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def commit(tmp, final) -> None:
    """Make the synced ``tmp`` appear as ``final`` atomically, and the rename durable."""
    os.replace(tmp, final)
    with contextlib.suppress(OSError):
        _fsync(os.path.dirname(os.path.abspath(final)))


def rollback(tmp) -> None:
    """Remove a temporary file or tree (read-only ones too); nothing if it is gone."""
    if os.path.isdir(tmp) and not os.path.islink(tmp):
        for dirpath, _dirs, _files in os.walk(tmp):
            with contextlib.suppress(OSError):
                os.chmod(dirpath, 0o700)
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def clone(src, dst, mode: int | None = None, flush: bool = False) -> os.stat_result:
    """Copy the file ``src`` to the new file ``dst`` with its mode (or ``mode``): a reflink where
    the filesystem can share blocks, else an in-kernel copy, else read and write. ``flush``:
    also fsync ``dst`` before closing it (one open per file instead of a second pass).
    Returns the stat of ``dst`` as left (its identity, without a second lookup by path).

    Plain file descriptors, not ``open()``: Python's file objects cost an ``isatty`` ioctl, a seek
    and a stat each, which for 10,000 small files is most of the work."""
    fin = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        source = os.fstat(fin)
        wanted = stat.S_IMODE(source.st_mode) if mode is None else mode
        # created with its final mode (a chmod only where the umask took bits away)
        fout = os.open(dst, _NEW_FILE, wanted)
        try:
            device = os.fstat(fout).st_dev
            try:
                if device in _NO_REFLINK:
                    raise OSError(errno.EOPNOTSUPP, "no reflink on this filesystem")
                fcntl.ioctl(fout, FICLONE, fin)
            except OSError:
                _NO_REFLINK.add(device)  # asked once per filesystem, not once per file
                _copy_data(fin, fout, source.st_size)
            return _finish(fout, wanted, os.fstat(fout), flush)
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def write_new(path, data: bytes, mode: int, flush: bool = False) -> os.stat_result:
    """Create the new file ``path`` with ``mode``, holding ``data`` (fsynced if ``flush``); return
    its stat as left."""
    fd = os.open(path, _NEW_FILE, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        return _finish(fd, mode, os.fstat(fd), flush)
    finally:
        os.close(fd)


def _finish(fd: int, mode: int, written: os.stat_result, flush: bool) -> os.stat_result:
    """The end of writing a new file whose stat after the last write is ``written``: ``mode`` where the
    umask took bits away, fsync if ``flush``; returns its stat as left (taken again only after a chmod,
    which changes its ctime)."""
    changed = stat.S_IMODE(written.st_mode) != mode
    if changed:
        os.fchmod(fd, mode)
    if flush:
        os.fsync(fd)
    return os.fstat(fd) if changed else written


def _copy_data(fin: int, fout: int, size: int) -> None:
    remaining = size
    try:
        while remaining > 0 and (n := os.copy_file_range(fin, fout, remaining)):
            remaining -= n
        return
    except OSError as exc:
        if exc.errno not in _NO_KERNEL_COPY:
            raise
    os.lseek(fin, 0, os.SEEK_SET)
    os.lseek(fout, 0, os.SEEK_SET)
    os.ftruncate(fout, 0)
    while chunk := os.read(fin, CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fout, view) :]


def clone_tree(src, dst) -> int:
    """Copy a file or a directory tree to the new path ``dst``; return the bytes copied."""
    if not os.path.isdir(src):
        clone(src, dst)
        return os.path.getsize(dst)
    os.mkdir(dst)
    return sum(clone_tree(os.path.join(src, name), os.path.join(dst, name)) for name in sorted(os.listdir(src)))
