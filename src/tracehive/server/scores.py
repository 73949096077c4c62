"""Scores (Langfuse's ``POST /api/public/scores``) that name a trace the server has not stored yet.

A score names a trace by its OpenTelemetry trace id, but tracehive files feedback under the
trace's session, whose id the trace's spans carry (``session.id``). The SDK sends scores and spans
on separate queues, so a score often arrives first. Such a score is kept here, in a file in the
data folder (written and synced before the score is acknowledged), and applied to the session
when the first spans of its trace are stored, through any OTLP route. A score of an observation
(an event) waits likewise for that event's span, and is then merged into the event's feedback. One
asyncio lock orders the two sides: a score either finds its trace (or event) stored or is kept
before the trace's spans look here.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import orjson

from tracehive.model import SessionUpdate, deep_merge, empty_namespaces
from tracehive.store.base import EventFeedback
from tracehive.store.columns import Rows
from tracehive.store.durable import write_synced

PENDING_FILE = "pending-scores.jsonl"
# Scores kept at most per project; past it a score for an unknown trace is refused (the client is
# told). Per project, so that one project's scores for traces that never come cannot crowd out another's.
MAX_PENDING = 10_000
# A full project's scores older than this make room: their traces are not coming (sampled out).
MAX_WAIT_SECONDS = 24 * 3600

TraceKey = tuple[str, str]  # (project, trace_id)
# When it came (epoch seconds), the feedback, and the observation (event) it scores, if any.
Waiting = tuple[float, dict[str, Any], str | None]
Score = tuple[str, dict[str, Any], str | None]  # (trace id, feedback, observation id)
Applied = tuple[TraceKey, Waiting]


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
                    waiting = (item["at"], item["feedback"], item.get("observation_id"))
                    self._add(item["project"], item["trace_id"], waiting)

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def _add(self, project: str, trace_id: str, waiting: Waiting) -> None:
        self._waiting.setdefault((project, trace_id), []).append(waiting)
        self._counts[project] = self._counts.get(project, 0) + 1

    def keep(self, project: str, items: list[Score], now: float | None = None) -> int:
        """Keep scores' feedback, as (trace id, feedback, observation id), until their traces (or
        events) come (synced to disk at once); returns how many were kept, the first ones, up to
        the project's share."""
        now = time.time() if now is None else now
        if items and self._counts.get(project, 0) + len(items) > self.limit:
            self._drop_older(project, now - MAX_WAIT_SECONDS)
        kept = items[: max(self.limit - self._counts.get(project, 0), 0)]
        if not kept:
            return 0
        lines = b"".join(self._line(project, trace, (now, feedback, event)) for trace, feedback, event in kept)
        write_synced(self.path, lines)
        for trace_id, feedback, observation in kept:
            self._add(project, trace_id, (now, feedback, observation))
        return len(kept)

    def updates_for(self, rows: Rows) -> tuple[list[SessionUpdate], dict[str, list[EventFeedback]], list[Applied]]:
        """What is kept for the traces ``rows`` store: session updates carrying their sessions'
        feedback, the feedback of the events among ``rows`` by project, and what those are (pass
        it to :meth:`forget` once stored). A score of an event not in ``rows`` waits on."""
        events = rows.events
        sessions: dict[TraceKey, str] = {}
        stored: set[tuple[str, str, str]] = set()
        for project, trace_id, session_id, event_id in zip(
            events["project"].to_pylist(), events["trace_id"].to_pylist(), events["session_id"].to_pylist(),
            events["event_id"].to_pylist(), strict=True,
        ):  # fmt: skip
            if (project, trace_id) in self._waiting:
                sessions.setdefault((project, trace_id), session_id)
                stored.add((project, trace_id, event_id))
        updates, scored, applied = [], {}, []
        for (project, trace_id), session_id in sessions.items():
            update = SessionUpdate(project=project, session_id=session_id, namespaces=empty_namespaces())
            for waiting in self._waiting[(project, trace_id)]:
                _, feedback, observation = waiting
                if observation is None:
                    update.namespaces["feedback"] = deep_merge(update.namespaces["feedback"], feedback)
                elif (project, trace_id, observation) in stored:
                    scored.setdefault(project, []).append((trace_id, observation, feedback))
                else:
                    continue
                applied.append(((project, trace_id), waiting))
            if update.namespaces["feedback"]:
                updates.append(update)
        return updates, scored, applied

    def forget(self, applied: list[Applied]) -> None:
        """Drop applied feedback and rewrite the file (synced) without it."""
        for key, waiting in applied:
            items = self._waiting.get(key, [])
            if waiting in items:
                items.remove(waiting)
                self._counts[key[0]] -= 1
            if not items:
                self._waiting.pop(key, None)
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
        at, feedback, observation = waiting
        item = {"project": project, "trace_id": trace_id, "at": at, "feedback": feedback}
        if observation is not None:
            item["observation_id"] = observation
        return orjson.dumps(item) + b"\n"

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
