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


def clone(src, dst, mode: int | None = None, flush: bool = False) -> None:
    """Copy the file ``src`` to the new file ``dst`` with its mode (or ``mode``): a reflink where
    the filesystem can share blocks, else an in-kernel copy, else read and write. ``flush``:
    also fsync ``dst`` before closing it (one open per file instead of a second pass)."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        device = os.fstat(fout.fileno()).st_dev
        try:
            if device in _NO_REFLINK:
                raise OSError(errno.EOPNOTSUPP, "no reflink on this filesystem")
            fcntl.ioctl(fout.fileno(), FICLONE, fin.fileno())
        except OSError:
            _NO_REFLINK.add(device)  # asked once per filesystem, not once per file
            _copy_data(fin, fout)
        if mode is not None:
            os.fchmod(fout.fileno(), mode)
        if flush:
            os.fsync(fout.fileno())
    if mode is None:
        shutil.copymode(src, dst)


def _copy_data(fin, fout) -> None:
    remaining = os.fstat(fin.fileno()).st_size
    try:
        while remaining > 0 and (n := os.copy_file_range(fin.fileno(), fout.fileno(), remaining)):
            remaining -= n
        return
    except OSError as exc:
        if exc.errno not in _NO_KERNEL_COPY:
            raise
    fin.seek(0), fout.seek(0), fout.truncate()
    shutil.copyfileobj(fin, fout, CHUNK)


def clone_tree(src, dst) -> int:
    """Copy a file or a directory tree to the new path ``dst``; return the bytes copied."""
    if not os.path.isdir(src):
        clone(src, dst)
        return os.path.getsize(dst)
    os.mkdir(dst)
    return sum(clone_tree(os.path.join(src, name), os.path.join(dst, name)) for name in sorted(os.listdir(src)))
