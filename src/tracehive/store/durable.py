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
