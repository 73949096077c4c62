"""The narrow interface between the server and a storage backend.

The server hands a store whole batches (as :class:`~tracehive.store.columns.Rows`) and asks it a few questions;
SQL dialects, schemas and merge strategies stay inside each backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tracehive.filters import Expr, Field
from tracehive.store.columns import Rows

Row = dict[str, Any]
EventFeedback = tuple[str, str, dict[str, Any]]  # (trace id, event id, feedback)


class StoreFullError(RuntimeError):
    """The store cannot take more data (for example the disk is full)."""


class StoreOutOfMemory(RuntimeError):
    """A write needed more memory than the store may use (DuckDB's ``--query-memory-mb`` bounds
    writes too); nothing of it was stored."""


class QueryTooCostly(RuntimeError):
    """A query ran past its time budget or memory bound and was cancelled; the message says which."""


@dataclass(frozen=True, slots=True)
class QueryBudget:
    """What one query may cost: ``seconds`` of running time, and ``memory_mb`` (None: the store's
    own bound; DuckDB's applies to the whole database, ClickHouse's to each query)."""

    seconds: float = 30.0
    memory_mb: int | None = None

    def message(self, cause: str) -> str:
        limit = f"the time limit of {self.seconds:g} s" if cause == "time" else "the memory limit"
        return f"the query was cancelled past {limit}; narrow the filter, the time range or the page"


DEFAULT_BUDGET = QueryBudget()


class Ambiguous(LookupError):
    """An id names records in several projects (an admin key's lookup) or, for an event id, in
    several sessions: the caller must say which; the message names them."""


# A lookup by id reads this many matches at most, to name them when there are several.
MAX_MATCHES = 5


def only_match(rows: list[Row], what: str, scope: tuple[str, ...]) -> Row | None:
    """The one row a lookup by id found, None for none; :class:`Ambiguous` when rows differ in
    ``scope`` (their project, or their project and session)."""
    places = {tuple(row[key] for key in scope) for row in rows}
    if len(places) <= 1:
        return rows[0] if rows else None
    named = ", ".join(" ".join(f"{key} {value!r}" for key, value in zip(scope, place, strict=True))
                      for place in sorted(places))  # fmt: skip
    hint = " and ".join(f"{key}=" for key in scope)
    raise Ambiguous(f"{what} is in several places ({named}); pass {hint} to choose one")


class TooManyBuckets(ValueError):
    """A time series would have more buckets than a chart can use."""


MAX_BUCKETS = 500
TARGET_BUCKETS = 60
_NICE_BUCKETS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)


def bucket_seconds(first: datetime | None, last: datetime | None, requested: int | None) -> int:
    """The bucket width for a series spanning ``first``..``last``: ``requested`` if it gives at most
    MAX_BUCKETS buckets, else (when None) a round width giving about TARGET_BUCKETS."""
    span = 0.0 if first is None or last is None else max((last - first).total_seconds(), 0.0)
    if requested is not None:
        if span / requested > MAX_BUCKETS:
            raise TooManyBuckets(f"bucket: {requested} s over {span:.0f} s makes more than {MAX_BUCKETS} buckets")
        return requested
    wanted = span / TARGET_BUCKETS
    return next((b for b in _NICE_BUCKETS if b >= wanted), max(_NICE_BUCKETS[-1], int(span / MAX_BUCKETS) + 1))


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
    def write(self, rows: Rows) -> None:
        """Store a batch atomically; when it returns, the data is durable."""

    def list_sessions(self, query: SessionQuery) -> list[Row]:
        """Sessions newest first, at most ``query.limit`` of them."""

    def get_session(
        self, session_id: str, projects: tuple[str, ...] | None, events_limit: int | None = None, events_offset: int = 0
    ) -> Row | None:
        """One session with ``"events"``: its events as a flat list ordered by start time (then id),
        at most ``events_limit`` of them (None: all) from the ``events_offset``-th on. How many it
        has in all is its ``event_count``. :class:`Ambiguous` when sessions of several projects
        have the id."""

    def get_event(self, event_id: str, projects: tuple[str, ...] | None, session_id: str | None = None) -> Row | None:
        """The event with this id; :class:`Ambiguous` when it is in several projects or sessions."""

    def list_events(self, query: EventQuery) -> tuple[list[Row], int]:
        """A page of the events the query selects, by start time, and how many it selects in all."""

    def trace_sessions(self, project: str, trace_ids: list[str], since: datetime | None = None) -> dict[str, str]:
        """The session of each of ``trace_ids`` that has an event stored in ``project`` (starting at
        or after ``since``, which lets a store skip older data), by trace id."""

    def add_event_feedback(self, project: str, items: list[EventFeedback]) -> list[bool]:
        """Merge each feedback into the feedback of the event ``(trace id, event id)`` names in
        ``project``; returns whether each event was found. Run it on the writer's thread."""

    def list_users(self, query: SessionQuery) -> list[Row]:
        """One row per ``user_properties.user_id`` over the sessions the query selects."""

    def group_sessions(self, query: SessionQuery, by: Field) -> list[Row]:
        """Per value of ``by`` (a plain column or a key inside a namespace) over the sessions the query
        selects, the ``query.limit`` largest groups: ``value`` (``missing`` when absent), ``sessions``,
        ``users``, ``error_rate`` (share of sessions with an error), ``p50_ms``, ``p95_ms``."""

    def session_timeseries(
        self, query: SessionQuery, bucket: int | None = None, split_by: Field | None = None, max_groups: int = 5
    ) -> Row:
        """Sessions per time bucket: ``{"bucket_seconds", "points"}``; each point has ``time``
        (bucket start), ``sessions``, ``p50_ms``, ``p95_ms``, and with ``split_by`` the group's
        ``value``/``missing``, the ``max_groups`` largest groups apart and the rest with ``other``."""

    def get_prices(self) -> dict[str, dict[str, dict]]:
        """Every project's own model prices: ``{project: {model: price as JSON}}``."""

    def set_price(self, project: str, model: str, price: dict | None) -> None:
        """Set (or with None, remove) a project's price for a model."""

    def unpriced_models(self, projects: tuple[str, ...] | None, limit: int = 200) -> list[Row]:
        """Models of model events with tokens but no cost, most called first: ``project``,
        ``model``, ``provider``, ``calls``, ``last_seen``."""

    # Dashboard logins (see tracehive.server.logins): kept in the store so that they survive a
    # restart and every server on one store knows them. Tokens arrive hashed; times are epoch seconds.
    def save_login(self, token_digest: str, key_digest: str, csrf: str, expires_at: float) -> None:
        """Store a login, or move its expiry; expired logins may be forgotten at the same time."""

    def find_login(self, token_digest: str) -> tuple[str, str, float] | None:
        """``(key_digest, csrf, expires_at)`` of a login that was saved and not ended (expired or not)."""

    def end_login(self, token_digest: str) -> None: ...

    # --- privacy (store/duckdb_privacy.py, store/clickhouse_privacy.py) ---------------------
    def save_project_settings(self, project: str, settings: str, secret: str, saved_by: str) -> int:
        """Store a new version of a project's settings (JSON text); returns its version."""

    def project_settings(self) -> list[Row]:
        """The newest settings of every project that has any."""

    def project_settings_history(self, project: str) -> list[Row]: ...

    def events_of_sessions(self, keys: list[tuple[str, str]]) -> list[Row]:
        """The events of these (project, session_id) sessions, by session then start time."""

    def delete_sessions(
        self, project: str, where: Expr, limit: int | None = None, events_where: Expr | None = None
    ) -> tuple[int, int]:
        """Delete the selected sessions with their events (and the events ``events_where`` selects);
        returns how many sessions and events went. Run it on the writer's thread."""

    def reclaim(self, scrub: bool) -> bool:
        """Give deleted rows' space back; ``scrub``: leave nothing deleted in the store's files."""

    def close(self) -> None: ...
