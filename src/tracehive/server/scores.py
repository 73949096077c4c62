"""Scores (Langfuse's ``POST /api/public/scores``) that name a trace the server has not stored yet.

A score names a trace by its OpenTelemetry trace id, but tracehive files feedback under the
trace's session, whose id the trace's spans carry (``session.id``). The SDK sends scores and spans
on separate queues, so a score often arrives first. Such a score is kept here, in a file in the
data folder (written and synced before the score is acknowledged), and applied to the session
when the first spans of its trace are stored, through any OTLP route. One asyncio lock orders the
two sides: a score either finds its trace stored or is kept before the trace's spans look here.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import orjson

from tracehive.model import SessionUpdate, deep_merge, empty_namespaces
from tracehive.store.columns import Rows
from tracehive.store.durable import write_synced

PENDING_FILE = "pending-scores.jsonl"
# Scores kept at most per project; past it a score for an unknown trace is refused (the client is
# told). Per project, so that one project's scores for traces that never come cannot crowd out another's.
MAX_PENDING = 10_000
# A full project's scores older than this make room: their traces are not coming (sampled out).
MAX_WAIT_SECONDS = 24 * 3600

TraceKey = tuple[str, str]  # (project, trace_id)
Waiting = tuple[float, dict[str, Any]]  # (when it came, in epoch seconds; the feedback)


class PendingScores:
    """Feedback waiting for its trace, by (project, trace id); kept in memory and in a file."""

    def __init__(self, path: Path, limit: int = MAX_PENDING) -> None:
        self.path = path
        self.limit = limit
        self.lock = asyncio.Lock()
        self._waiting: dict[TraceKey, list[Waiting]] = {}
        self._counts: dict[str, int] = {}  # per project
        if path.exists():
            for line in path.read_bytes().splitlines():
                if line.strip():
                    item = orjson.loads(line)
                    self._add(item["project"], item["trace_id"], (item["at"], item["feedback"]))

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def _add(self, project: str, trace_id: str, waiting: Waiting) -> None:
        self._waiting.setdefault((project, trace_id), []).append(waiting)
        self._counts[project] = self._counts.get(project, 0) + 1

    def keep(self, project: str, items: list[tuple[str, dict[str, Any]]], now: float | None = None) -> int:
        """Keep scores' feedback, as (trace id, feedback), until their traces come (synced to disk
        at once); returns how many were kept, the first ones, up to the project's share."""
        now = time.time() if now is None else now
        if items and self._counts.get(project, 0) + len(items) > self.limit:
            self._drop_older(project, now - MAX_WAIT_SECONDS)
        kept = items[: max(self.limit - self._counts.get(project, 0), 0)]
        if not kept:
            return 0
        lines = b"".join(self._line(project, trace_id, (now, feedback)) for trace_id, feedback in kept)
        write_synced(self.path, lines)
        for trace_id, feedback in kept:
            self._add(project, trace_id, (now, feedback))
        return len(kept)

    def updates_for(self, rows: Rows) -> tuple[list[SessionUpdate], list[TraceKey]]:
        """Session updates carrying the feedback kept for the traces ``rows`` store, and their keys
        (pass them to :meth:`forget` once the updates are stored)."""
        events = rows.events
        sessions: dict[TraceKey, str] = {}
        for project, trace_id, session_id in zip(
            events["project"].to_pylist(), events["trace_id"].to_pylist(), events["session_id"].to_pylist(),
            strict=True,
        ):  # fmt: skip
            if (project, trace_id) in self._waiting:
                sessions.setdefault((project, trace_id), session_id)
        updates = []
        for (project, trace_id), session_id in sessions.items():
            update = SessionUpdate(project=project, session_id=session_id, namespaces=empty_namespaces())
            for _, feedback in self._waiting[(project, trace_id)]:
                update.namespaces["feedback"] = deep_merge(update.namespaces["feedback"], feedback)
            updates.append(update)
        return updates, list(sessions)

    def forget(self, keys: list[TraceKey]) -> None:
        """Drop applied feedback and rewrite the file (synced) without it."""
        for key in keys:
            self._counts[key[0]] -= len(self._waiting.pop(key, ()))
        self._rewrite()

    def _drop_older(self, project: str, before: float) -> None:
        for key in [key for key in self._waiting if key[0] == project]:
            fresh = [waiting for waiting in self._waiting[key] if waiting[0] >= before]
            self._counts[project] -= len(self._waiting[key]) - len(fresh)
            if fresh:
                self._waiting[key] = fresh
            else:
                del self._waiting[key]
        self._rewrite()

    @staticmethod
    def _line(project: str, trace_id: str, waiting: Waiting) -> bytes:
        at, feedback = waiting
        return orjson.dumps({"project": project, "trace_id": trace_id, "at": at, "feedback": feedback}) + b"\n"

    def _rewrite(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for (project, trace_id), items in self._waiting.items():
                os.write(fd, b"".join(self._line(project, trace_id, waiting) for waiting in items))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
