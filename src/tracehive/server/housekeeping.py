"""Background work of a server: picking up settings other servers saved, and retention.

Retention removes the sessions of a project that started longer ago than its ``retention_days``,
with their events, ``RETENTION_STEP`` sessions at a time. Each step is one short delete run on the
writer's thread between ingest writes, so ingest goes on (a step delays the next write by its
own few milliseconds) and queries keep reading their snapshot. Once a project's expired sessions
are gone the store gives the space back (DuckDB reuses the freed blocks, ClickHouse merges parts).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from tracehive.filters import Compare, Field
from tracehive.server.audit import AuditLog
from tracehive.server.policies import PolicyBook
from tracehive.store.writer import BulkWriter

log = logging.getLogger("tracehive.server")

RETENTION_STEP = 500
RETENTION_WHO = "retention"


class Housekeeping:
    def __init__(self, store: Any, writer: BulkWriter, policies: PolicyBook, audit: AuditLog, interval: float) -> None:
        self.store = store
        self.writer = writer
        self.policies = policies
        self.audit = audit
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tracehive-housekeeping", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.policies.refresh()
                self.expire_all()
            except Exception:
                log.exception("housekeeping failed; trying again in %s s", self.interval)

    def expire_all(self) -> None:
        for policy in self.policies.all():
            if policy.retention_days is not None and not self._stop.is_set():
                self.expire(policy.project, policy.retention_days)

    def expire(self, project: str, days: float) -> tuple[int, int]:
        """Remove the project's sessions that started more than ``days`` ago, in bounded steps."""
        cutoff = datetime.now(UTC) - timedelta(days=days)
        where = Compare(Field("start_time"), "<", cutoff.isoformat().replace("+00:00", "Z"))
        total_sessions = total_events = 0
        while not self._stop.is_set():
            sessions, events = self.writer.run(
                lambda: self.store.delete_sessions(project, where, limit=RETENTION_STEP)
            ).result()
            total_sessions += sessions
            total_events += events
            if sessions < RETENTION_STEP:
                break
        if total_sessions:
            self.writer.run(lambda: self.store.reclaim(scrub=False)).result()
            self.audit.record("retention", project, RETENTION_WHO, retention_days=days,
                              cutoff=cutoff.isoformat(), sessions=total_sessions, events=total_events)  # fmt: skip
        return total_sessions, total_events
