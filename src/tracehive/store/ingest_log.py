"""The ingest log: batches on disk, in order, before the store has them.

A DuckDB transaction costs milliseconds however little it carries, so a server that answered each
small request only after its own transaction would spend most of every request there. Instead a
batch is appended here and synced (one ``fdatasync`` for everything waiting), the request is
answered, and the store takes what has gathered in the meantime in one transaction that also
records the last log position it holds. After a crash the records past that position are written
again, so nothing acknowledged is lost and nothing is written twice.

A record is a header (position, length, CRC-32 of the payload) and the payload, a batch as
:meth:`Rows.to_bytes <tracehive.store.columns.Rows.to_bytes>` gives it. Records live in segment files
named by their first position; a segment is deleted once the store holds all of it. The server
replays the log as it starts (:class:`~tracehive.store.writer.BulkWriter`); anything else that
opens the DuckDB file after a crash must do the same first, or it sees less than was answered.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

from tracehive.store.durable import append_synced

log = logging.getLogger(__name__)

LOG_FOLDER = "ingest-log"
_HEADER = struct.Struct("<QII")  # position, payload length, CRC-32 of the payload
_SEGMENT_BYTES = 16 << 20
_SUFFIX = ".log"


class IngestLog:
    """Append-only segments in ``folder``. One thread appends; another may call :meth:`discard`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._segments = sorted(int(p.stem) for p in folder.glob(f"*{_SUFFIX}"))
        self.last = 0  # the newest position on disk
        self._fd: int | None = None
        self._size = 0
        self._lock = threading.Lock()  # the segment list: appends open segments, the store's thread drops them

    def _path(self, first: int) -> Path:
        return self.folder / f"{first:020d}{_SUFFIX}"

    def unapplied(self, applied: int) -> Iterator[tuple[int, bytes]]:
        """The records past ``applied``, in order. A torn record at the end of the newest segment
        (a crash during an append, never acknowledged) is cut off; the log then continues there."""
        for index, first in enumerate(self._segments):
            path = self._path(first)
            data = path.read_bytes()
            offset = 0
            while offset + _HEADER.size <= len(data):
                position, length, crc = _HEADER.unpack_from(data, offset)
                payload = data[offset + _HEADER.size : offset + _HEADER.size + length]
                if len(payload) < length or zlib.crc32(payload) != crc:
                    break
                offset += _HEADER.size + length
                self.last = position
                if position > applied:
                    yield position, payload
            if offset < len(data):
                if index != len(self._segments) - 1:
                    raise RuntimeError(f"ingest log segment {path.name} is damaged at byte {offset}")
                log.warning("ingest log: cutting a torn record off the end of %s", path.name)
                with path.open("r+b") as file:
                    file.truncate(offset)
        self.last = max(self.last, applied)

    def append(self, payloads: list[bytes]) -> int:
        """Write records and sync them; returns the position of the last. A full disk raises
        :class:`~tracehive.store.base.StoreFullError` and leaves the log as it was."""
        if self._fd is None or self._size > _SEGMENT_BYTES:
            self._open_segment(self.last + 1)
        parts = []
        for number, payload in enumerate(payloads, self.last + 1):
            parts += [_HEADER.pack(number, len(payload), zlib.crc32(payload)), payload]
        data = b"".join(parts)
        append_synced(self._fd, data, self._size, os.fdatasync)
        self._size += len(data)
        self.last += len(payloads)
        return self.last

    def _open_segment(self, first: int) -> None:
        self.close()
        path = self._path(first)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size
        with self._lock:
            known = first in self._segments
            if not known:
                self._segments.append(first)
        if not known:
            dir_fd = os.open(self.folder, os.O_RDONLY)  # the new file's name must survive a crash too
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def discard(self, applied: int) -> None:
        """Delete the segments the store holds all of (never one still open for appending: after
        :meth:`close`, the last segment goes too once the store holds it)."""
        while True:
            with self._lock:
                if not self._segments:
                    return
                if len(self._segments) >= 2:
                    end = self._segments[1] - 1
                elif self._fd is None:
                    end = self.last
                else:
                    return
                if end > applied:
                    return
                first = self._segments.pop(0)
            self._path(first).unlink(missing_ok=True)

    def close(self, applied: int | None = None) -> None:
        """Stop appending; with ``applied`` at the newest position (a clean stop), delete every
        segment, as the store holds all of them."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if applied is not None and applied >= self.last:
            with self._lock:
                gone, self._segments = self._segments, []
            for first in gone:
                self._path(first).unlink(missing_ok=True)


def ingest_log_for(store: object) -> IngestLog | None:
    """The log of a DuckDB file, in a folder beside it. Only DuckDB can record the log position in
    the transaction that writes the batch; other stores commit before answering, without a log."""
    from tracehive.store.duckdb import DuckDBStore

    if not isinstance(store, DuckDBStore) or store.path == ":memory:":
        return None
    path = Path(store.path)
    return IngestLog(path.with_name(f"{path.name}.{LOG_FOLDER}"))
