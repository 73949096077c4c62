"""Making a file operation survive a crash: sync a file's data, or a folder's entries after a file
was created, renamed or removed in it."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_path(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: str | Path, data: bytes, flags: int = os.O_APPEND | os.O_CREAT) -> None:
    """Write ``data`` to ``path`` (appended by default; ``os.O_CREAT | os.O_EXCL``: a new file) and
    sync it before returning; the file is created readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | flags, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
