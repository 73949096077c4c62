"""The data folder holds the store and the hashes of the API keys: only the server's user may read it.

DuckDB creates its file and its write-ahead log with the process's umask (0644 under the usual
022) and takes no mode of its own, so the server narrows its umask before anything is created:
every folder it makes is 0700 and every file 0600, whatever umask it was started with.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
FILE_MODE = 0o600


def make_private(folder: Path) -> None:
    """Create ``folder`` (0700) if missing, create files private from now on, and narrow the files
    an earlier version left readable by others (only those this user owns)."""
    os.umask(PRIVATE_UMASK)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in folder.iterdir():
        info = path.lstat()
        if stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid() and info.st_mode & PRIVATE_UMASK:
            path.chmod(FILE_MODE)
