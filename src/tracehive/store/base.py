"""The narrow interface between the server and a storage backend.

The server hands a store whole :class:`~tracehive.model.Batch` es and asks it a few questions;
SQL dialects, schemas and merge strategies stay inside each backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tracehive.filters import Expr
from tracehive.model import Batch

Row = dict[str, Any]


class StoreFullError(RuntimeError):
    """The store cannot take more data (for example the disk is full)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page of newest-first sessions ended."""

    start_time: datetime
    session_id: str


@dataclass(frozen=True, slots=True)
class SessionQuery:
    projects: tuple[str, ...] | None  # None: every project (an admin key)
    filter: Expr | None = None
    start_from: datetime | None = None
    start_to: datetime | None = None
    limit: int = 50
    cursor: Cursor | None = None


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Events across sessions, oldest first, one page at a time (for exports)."""

    projects: tuple[str, ...] | None  # None: every project (an admin key)
    filter: Expr | None = None
    limit: int = 1000
    offset: int = 0


class Store(Protocol):
    def write(self, batch: Batch) -> None:
        """Store a batch atomically; when it returns, the data is durable."""

    def list_sessions(self, query: SessionQuery) -> list[Row]:
        """Sessions newest first, at most ``query.limit`` of them."""

    def get_session(self, session_id: str, projects: tuple[str, ...] | None) -> Row | None:
        """One session with ``"events"``: its events as a flat list ordered by start time."""

    def get_event(self, event_id: str, projects: tuple[str, ...] | None) -> Row | None: ...

    def list_events(self, query: EventQuery) -> tuple[list[Row], int]:
        """A page of the events the query selects, by start time, and how many it selects in all."""

    def list_users(self, query: SessionQuery) -> list[Row]:
        """One row per ``user_properties.user_id`` over the sessions the query selects."""

    def close(self) -> None: ...
