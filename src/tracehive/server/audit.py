"""The audit log: who changed privacy settings, erased a user or had data expire, when, and how
many rows it touched. One JSON object per line in ``audit.jsonl`` in the data folder, appended and
synced before the action is reported done. It never holds the erased data: an erased user is
recorded by a keyed fingerprint (the project's HMAC), which proves a later request was the same
user without naming them."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from tracehive.store.durable import write_synced

AUDIT_FILE = "audit.jsonl"
MAX_ENTRIES_SHOWN = 1000


class AuditLog:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / AUDIT_FILE
        self._lock = threading.Lock()

    def record(self, action: str, project: str, who: str, **details: Any) -> dict[str, Any]:
        entry = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "action": action,
                 "project": project, "who": who, **details}  # fmt: skip
        line = orjson.dumps(entry) + b"\n"
        with self._lock:
            write_synced(self.path, line)
        return entry

    def entries(self, projects: tuple[str, ...] | None, limit: int = MAX_ENTRIES_SHOWN) -> list[dict[str, Any]]:
        """The newest ``limit`` entries about ``projects`` (None: all), newest first."""
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        found = []
        for line in reversed(lines):
            entry = orjson.loads(line)
            if projects is None or entry.get("project") in projects:
                found.append(entry)
                if len(found) >= limit:
                    break
        return found
