"""Making a file operation survive a crash: sync a file's data, or a folder's entries after a file
was created, renamed or removed in it."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

from tracehive.store.base import StoreFullError

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def fsync_path(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_synced(fd: int, data: bytes, size: int, sync: Callable[[int], None] = os.fsync) -> None:
    """Write all of ``data`` at the end of the open file ``fd``, which holds ``size`` bytes, and sync
    it. If that fails the file is cut back to ``size``, so no torn record is left; a full disk is
    raised as :class:`StoreFullError` (a 507 to a client)."""
    view = memoryview(data)
    written = 0
    try:
        while written < len(view):  # a write the disk fills part-way through returns short
            written += os.write(fd, view[written:])
        sync(fd)
    except OSError as exc:
        os.ftruncate(fd, size)
        if exc.errno in _DISK_FULL:
            raise StoreFullError(f"the disk is full: {exc.strerror}") from exc
        raise


def write_synced(path: str | Path, data: bytes, flags: int = os.O_APPEND | os.O_CREAT) -> None:
    """Write ``data`` to ``path`` (appended by default; ``os.O_CREAT | os.O_EXCL``: a new file) and
    sync it before returning, all or nothing (see :func:`append_synced`); the file is created
    readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | flags, 0o600)
    try:
        append_synced(fd, data, os.fstat(fd).st_size)
    finally:
        os.close(fd)
