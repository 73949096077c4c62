"""The embedded default store: one DuckDB file in the data folder.

Writes come from one thread (the :mod:`~tracehive.store.writer`), each batch in one transaction,
inserted column-wise through Arrow. Events are append-only and deduplicated by id, so a client
retrying a batch whose answer it lost stores nothing twice. Sessions are one row each, kept up to
date at write time (counts, time span, merged namespaces, maps of their top-level keys) so that
listing and grouping them is cheap.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from tracehive.filters import EVENT_FIELDS, SESSION_FIELDS, Field
from tracehive.model import MODEL_EVENT_TYPE, NAMESPACES, USAGE_FIELDS, SessionUpdate, deep_merge
from tracehive.store.base import (
    DEFAULT_BUDGET,
    MAX_MATCHES,
    EventFeedback,
    EventQuery,
    QueryBudget,
    QueryTooCostly,
    Row,
    SessionQuery,
    StoreFullError,
    StoreOutOfMemory,
    bucket_seconds,
    only_match,
)
from tracehive.store.columns import EVENT_COLUMNS as _EVENT_COLUMNS
from tracehive.store.columns import SESSION_COLUMNS as _SESSION_COLUMNS
from tracehive.store.columns import Rows, SessionTotals, add_usage, session_totals
from tracehive.store.duckdb_filter import DUCKDB, json_pointer, quote_column, to_duckdb_sql
from tracehive.store.duckdb_privacy import DuckDBPrivacy, remove_rewrite_leftover
from tracehive.store.duckdb_schema import EVENT_USAGE, INSERT_SESSIONS, MAPPED_NAMESPACES, MIGRATIONS, key_map
from tracehive.store.filter_sql import session_where
from tracehive.store.gate import Gate, gated
from tracehive.store.migrations import SCHEMA_TABLE, apply
from tracehive.store.rows import USAGE_STATS_SQL, group_value, iso, record_row, stats, unpriced_row, user_row
from tracehive.store.seen import SeenKeys

_TIME = pa.timestamp("us")
# Per-group figures shared by the users, group-by and time-series queries.
_STATS = (
    "count(*) AS sessions, avg(CASE WHEN error_count > 0 THEN 1.0 ELSE 0.0 END) AS error_rate, "
    f"quantile_cont(duration_ms, [0.5, 0.95]) AS quantiles, {USAGE_STATS_SQL}"
)
_USAGE = ", ".join(USAGE_FIELDS)
# How many of the newest sessions a filtered listing looks at first (see list_sessions).
_FIRST_SCAN_DEPTH = 2000
# The write-ahead log is folded into the file past this size. DuckDB's default (16 MB) checkpoints
# every few seconds under steady ingest; 64 MB costs about 12% less CPU per span and a little more
# memory and recovery time after a crash (bench/RESULTS.md).
_CHECKPOINT_THRESHOLD = "64MB"
# DuckDB keeps every block it wrote or read cached up to its memory limit (80% of RAM by default),
# so a server taking steady ingest grew about 15 MB per 100,000 spans. Bounded, it levels off, the
# OS's page cache still holds the file, and ten million events are queried within it
# (bench/RESULTS.md); --query-memory-mb raises it for bigger data.
DEFAULT_MEMORY_MB = 256
_DISK_FULL_MARKERS = ("No space left on device", "disk is full", "Disk quota exceeded")


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _to_us(ns: int | None) -> int | None:
    return None if ns is None else ns // 1000


def _project_clause(projects: tuple[str, ...] | None, params: list[Any], alias: str = "") -> str:
    if projects is None:
        return "TRUE"
    params.append(list(projects))
    return f"{alias}project IN (SELECT unnest(?))"


def _group_key(field: Field) -> tuple[str, list[Any]]:
    """SQL giving the JSON text of ``field`` (NULL when absent), and its parameters. A top-level
    key of a namespace is read from the namespace's key map: an expression that names the JSON
    column at all makes the scan read it, which costs as much as the lookup saves."""
    column = quote_column(field.column)
    if SESSION_FIELDS[field.column] != "json":
        return f"CAST(to_json({column}) AS VARCHAR)", []
    if len(field.path) > 1 or field.column not in MAPPED_NAMESPACES:
        return f"CAST(json_extract({column}, ?) AS VARCHAR)", [json_pointer(field.path)]
    # A JSON pointer names an object's key by its text, so an index 0 is the key "0" here too.
    key, keys = str(field.path[0]), quote_column(key_map(field.column))
    return f"CAST(coalesce({keys}[?], CASE WHEN map_contains({keys}, ?) THEN 'null' END) AS VARCHAR)", [key, key]


def _budgeted(method: Callable) -> Callable:
    """Run a read within the store's time budget: past it, DuckDB is told to stop the query
    (``interrupt``), and the caller gets :class:`QueryTooCostly`, as when memory runs out."""

    @functools.wraps(method)
    def run(self: DuckDBStore, *args: Any, **kwargs: Any) -> Any:
        timer = threading.Timer(self.budget.seconds, self._cursor().interrupt)
        timer.start()
        try:
            return method(self, *args, **kwargs)
        except duckdb.InterruptException:
            raise QueryTooCostly(self.budget.message("time")) from None
        except duckdb.OutOfMemoryException:
            raise QueryTooCostly(self.budget.message("memory")) from None
        finally:
            timer.cancel()

    return run


class _SessionState:
    """A session row being brought up to date in Python during one write."""

    __slots__ = ("end_us", "error_count", "event_count", "name", "namespaces", "source", "start_us", "usage")

    def __init__(self, existing: Row | None) -> None:
        existing = existing or {}
        self.name = existing.get("session_name")
        self.source = existing.get("source")
        self.start_us = existing.get("start_us")
        self.end_us = existing.get("end_us")
        self.event_count = existing.get("event_count") or 0
        self.error_count = existing.get("error_count") or 0
        # model_calls, prompt, completion and total tokens, cost (see columns.add_usage)
        self.usage = [existing.get(name) or 0 for name in USAGE_FIELDS[:4]] + [existing.get("cost")]
        self.namespaces = {ns: existing.get(ns) or {} for ns in NAMESPACES}

    def widen(self, start_us: int | None, end_us: int | None) -> None:
        if start_us is not None:
            self.start_us = start_us if self.start_us is None else min(self.start_us, start_us)
        if end_us is not None:
            self.end_us = end_us if self.end_us is None else max(self.end_us, end_us)

    def fold(self, other: _SessionState) -> None:
        """Take in a session whose events moved into this one (what this one says wins)."""
        self.event_count += other.event_count
        self.error_count += other.error_count
        add_usage(self.usage, 0, tuple(other.usage))
        self.widen(other.start_us, other.end_us)
        self.name = self.name or other.name
        self.source = self.source or other.source
        for ns in NAMESPACES:
            if other.namespaces[ns]:
                self.namespaces[ns] = deep_merge(other.namespaces[ns], self.namespaces[ns])

    def apply(self, update: SessionUpdate) -> None:
        self.name = update.session_name or self.name
        self.source = update.source or self.source
        self.widen(_to_us(update.start_ns), _to_us(update.end_ns))
        for ns in NAMESPACES:
            if update.namespaces.get(ns):
                self.namespaces[ns] = deep_merge(self.namespaces[ns], update.namespaces[ns])


class DuckDBStore(DuckDBPrivacy):
    def __init__(self, path: str | Path, budget: QueryBudget = DEFAULT_BUDGET) -> None:
        self.path = str(path)
        self.budget = budget
        self._gate = Gate()
        remove_rewrite_leftover(self.path)
        self._db = self._connect()
        try:
            self._migrate()
        except BaseException:
            self._db.close()
            raise
        self._local = threading.local()
        # Login writes from concurrent requests would conflict on the same rows (DuckDB refuses the
        # second writer of a row): one at a time. Nothing else writes the logins table.
        self._logins_lock = threading.Lock()
        self._seen = SeenKeys(self._db.execute("SELECT project, session_id FROM sessions").fetchall())
        self._claimed = SeenKeys(self._db.execute("SELECT project, trace_id FROM trace_sessions").fetchall())

    def _connect(self) -> duckdb.DuckDBPyConnection:
        # Replaying a write-ahead log whose statements use JSON functions (the key maps' migration)
        # loads DuckDB's built-in json extension; with autoinstall on, DuckDB tries to download it
        # first and fails to open the file offline.
        config = {
            "checkpoint_threshold": _CHECKPOINT_THRESHOLD,
            "autoinstall_known_extensions": False,
            "memory_limit": f"{self.budget.memory_mb or DEFAULT_MEMORY_MB}MB",
        }
        return duckdb.connect(self.path, config=config)

    def _migrate(self) -> None:
        """Bring the file's schema up to date in one transaction (see :mod:`~tracehive.store.migrations`)."""
        db = self._db
        db.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} (version INTEGER NOT NULL, description VARCHAR)")
        current = db.execute(f"SELECT coalesce(max(version), 0) FROM {SCHEMA_TABLE}").fetchone()[0]
        record = f"INSERT INTO {SCHEMA_TABLE} VALUES (?, ?)"
        db.execute("BEGIN TRANSACTION")
        try:
            apply(MIGRATIONS, current, self.path, db.execute, lambda m: db.execute(record, [m.version, m.description]))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # --- connections: DuckDB wants one cursor per thread -----------------------------------
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self._db.cursor()
        return cursor

    def close(self) -> None:
        self._db.close()

    # --- dashboard logins: a few small statements of their own, outside the ingest writer's batches --
    @gated
    def save_login(self, token_digest: str, key_digest: str, csrf: str, expires_at: float) -> None:
        cursor = self._cursor()
        with self._logins_lock:
            cursor.execute("DELETE FROM logins WHERE expires_at < epoch(now())")
            cursor.execute(
                "INSERT OR REPLACE INTO logins VALUES (?, ?, ?, ?)", [token_digest, key_digest, csrf, expires_at]
            )

    @gated
    def find_login(self, token_digest: str) -> tuple[str, str, float] | None:
        found = (
            self._cursor()
            .execute("SELECT key_digest, csrf, expires_at FROM logins WHERE token_digest = ?", [token_digest])
            .fetchone()
        )
        return None if found is None else (found[0], found[1], found[2])

    @gated
    def end_login(self, token_digest: str) -> None:
        with self._logins_lock:
            self._cursor().execute("DELETE FROM logins WHERE token_digest = ?", [token_digest])

    # --- writes ---------------------------------------------------------------------------
    @gated
    def log_position(self) -> int:
        """The last ingest log position this file holds (0: none)."""
        return self._cursor().execute("SELECT applied FROM ingest_log").fetchall()[0][0]

    @gated
    def write(self, rows: Rows, log_position: int | None = None) -> None:
        """Write a batch in one transaction; ``log_position``: the ingest log's position it ends
        at, recorded in the same transaction."""
        cursor = self._cursor()
        rows = self._join_claimed_traces(cursor, rows)
        cursor.register("incoming_events", rows.events)
        try:
            try:
                self._write(cursor, rows, fresh=True, log_position=log_position)
            except duckdb.ConstraintException:
                # Some events are stored already (a client retried): start again, skipping those.
                cursor.execute("ROLLBACK")
                self._write(cursor, rows, fresh=False, log_position=log_position)
        except BaseException as exc:
            # Whatever failed (SQL, a value Arrow or JSON cannot take, an interrupt), the transaction
            # must not stay open: the next write, maybe another tenant's, would fail on it. A failed
            # COMMIT has already ended the transaction; only roll back one still open.
            with contextlib.suppress(duckdb.Error):
                cursor.execute("ROLLBACK")
            if isinstance(exc, duckdb.Error) and any(marker in str(exc) for marker in _DISK_FULL_MARKERS):
                raise StoreFullError(str(exc)) from exc
            if isinstance(exc, duckdb.OutOfMemoryException) or isinstance(exc.__context__, duckdb.OutOfMemoryException):
                raise StoreOutOfMemory(str(exc.__context__ or exc)) from exc
            raise
        finally:
            cursor.unregister("incoming_events")

    def _write(self, cursor: duckdb.DuckDBPyConnection, rows: Rows, fresh: bool, log_position: int | None) -> None:
        cursor.execute("BEGIN TRANSACTION")
        strays = self._claim_traces(cursor, rows)
        self._upsert_sessions(cursor, self._insert_events(cursor, rows, fresh), rows.sessions, strays)
        if log_position is not None:
            cursor.execute("UPDATE ingest_log SET applied = ?", [log_position])
        cursor.execute("COMMIT")
        for project, trace_id, _ in rows.claims:
            self._claimed.add((project, trace_id))

    def _join_claimed_traces(self, cursor: duckdb.DuckDBPyConnection, rows: Rows) -> Rows:
        """Spans that named no session join the session their trace named: in this write (another
        request) or stored before."""
        if not rows.orphans:
            return rows
        found, rest = rows.orphans_claimed_here()
        maybe = [key for key in rest if key in self._claimed]
        if maybe:
            cursor.register("orphan_traces", pa.table({"p": [k[0] for k in maybe], "t": [k[1] for k in maybe]}))
            try:
                stored = cursor.execute(
                    "SELECT project, trace_id, arg_min(session_id, trace_sessions.rowid) FROM trace_sessions "
                    "JOIN orphan_traces ON project = p AND trace_id = t GROUP BY project, trace_id"
                ).fetchall()
            finally:
                cursor.unregister("orphan_traces")
            found.update({(p, t): s for p, t, s in stored})
        return rows.rejoined(found) if found else rows

    def _claim_traces(self, cursor: duckdb.DuckDBPyConnection, rows: Rows) -> dict:
        """Record the session each trace names (the first named stays) and move the trace's stored
        spans that named none (a session keyed by the trace id) into it. Returns the sessions so
        emptied: (project, trace_id) -> (project, session_id) they fold into."""
        named = rows.first_claims()
        # A trace the filter has seen is claimed already (or, rarely, a false "maybe": then a late
        # span of it stays in a session of its own). A trace claimed twice keeps its first row.
        new = [(p, t, s) for (p, t), s in named.items() if (p, t) not in self._claimed]
        if new:
            cursor.register("claims", pa.table({"p": [c[0] for c in new], "t": [c[1] for c in new],
                                                "s": [c[2] for c in new]}))  # fmt: skip
            try:
                cursor.execute("INSERT INTO trace_sessions SELECT p, t, s FROM claims")
            finally:
                cursor.unregister("claims")
        candidates = [(p, t, s) for (p, t), s in named.items() if (p, t) in self._seen]
        if not candidates:
            return {}
        cursor.register("moves", pa.table({"p": [c[0] for c in candidates], "t": [c[1] for c in candidates],
                                           "s": [c[2] for c in candidates]}))  # fmt: skip
        try:
            cursor.execute(
                "UPDATE events SET session_id = moves.s FROM moves WHERE events.project = moves.p "
                "AND events.session_id = moves.t AND events.trace_id = moves.t"
            )
        finally:
            cursor.unregister("moves")
        return {(p, t): (p, s) for p, t, s in candidates}

    def _insert_events(self, cursor: duckdb.DuckDBPyConnection, rows: Rows, fresh: bool) -> list[SessionTotals]:
        """Insert the registered ``incoming_events`` not stored yet; returns what they add to their
        sessions. ``fresh``: expect every event to be new (the usual case), a plain insert that costs
        about half of one skipping stored events, and fails if one is stored already."""
        if not rows.events.num_rows:  # a batch of session records only
            return []
        columns = ", ".join(_EVENT_COLUMNS)
        if fresh:
            cursor.execute(f"INSERT INTO events SELECT {columns} FROM incoming_events")
            return rows.totals
        inserted = cursor.execute(
            f"INSERT OR IGNORE INTO events SELECT {columns} FROM incoming_events "
            "RETURNING project, session_id, epoch_us(start_time), epoch_us(end_time), error IS NOT NULL, "
            f"event_type = '{MODEL_EVENT_TYPE}', {EVENT_USAGE}"
        ).fetchall()
        return session_totals((*row[:5], row[6:] if row[5] else None) for row in inserted)

    def _load_sessions(self, cursor: duckdb.DuckDBPyConnection, keys: list[tuple[str, str]]) -> dict:
        cursor.register("touched", pa.table({"p": [k[0] for k in keys], "s": [k[1] for k in keys]}))
        try:
            rows = cursor.execute(
                "SELECT project, session_id, session_name, source, epoch_us(start_time) AS start_us, "
                f"epoch_us(end_time) AS end_us, event_count, error_count, {', '.join(USAGE_FIELDS)}, "
                f"{', '.join(NAMESPACES)} "
                "FROM sessions JOIN touched ON project = p AND session_id = s"
            )
            names = [d[0] for d in rows.description]
            found = {}
            for values in rows.fetchall():
                row = dict(zip(names, values, strict=True))
                for ns in NAMESPACES:
                    row[ns] = orjson.loads(row[ns]) if row[ns] else {}
                found[(row["project"], row["session_id"])] = row
            return found
        finally:
            cursor.unregister("touched")

    def _upsert_sessions(
        self,
        cursor: duckdb.DuckDBPyConnection,
        touched: list[tuple],
        updates: list[SessionUpdate],
        strays: dict[tuple[str, str], tuple[str, str]] | None = None,
    ) -> None:
        keys = list(dict.fromkeys([(t[0], t[1]) for t in touched] + [(u.project, u.session_id) for u in updates]))
        strays = strays or {}
        keys += [target for target in strays.values() if target not in keys]
        if not keys:
            return
        seen = self._seen
        maybe_stored = [key for key in keys if key in seen]
        existing = self._load_sessions(cursor, maybe_stored + list(strays)) if maybe_stored or strays else {}
        states = {key: _SessionState(existing.get(key)) for key in keys}
        folded = [stray for stray in strays if stray in existing and stray not in states]
        for stray in folded:
            states[strays[stray]].fold(_SessionState(existing[stray]))
        if folded:
            self._delete_sessions(cursor, folded)
        for project, session_id, start_us, end_us, events, errors, *usage in touched:
            state = states[(project, session_id)]
            state.event_count += events
            state.error_count += errors
            state.widen(start_us, end_us)
            add_usage(state.usage, 0, usage)
        for update in updates:
            states[(update.project, update.session_id)].apply(update)
        stored = {key: state for key, state in states.items() if key in existing}
        new = {key: state for key, state in states.items() if key not in existing}
        if stored:
            self._replace_sessions(cursor, stored, stored=True)
        if new:
            self._replace_sessions(cursor, new, stored=False)
            for key in new:
                seen.add(key)

    def _delete_sessions(self, cursor: duckdb.DuckDBPyConnection, keys: list[tuple[str, str]]) -> None:
        cursor.register("gone", pa.table({"p": [k[0] for k in keys], "s": [k[1] for k in keys]}))
        try:
            cursor.execute("DELETE FROM sessions USING gone WHERE project = gone.p AND session_id = gone.s")
        finally:
            cursor.unregister("gone")

    def _replace_sessions(self, cursor: duckdb.DuckDBPyConnection, states: dict, stored: bool) -> None:
        """Write whole session rows; ``stored`` ones are deleted first. DuckDB's INSERT OR REPLACE
        of rows with map columns costs milliseconds a row (635 ms per 100 rows of a table of 20,000);
        a delete and a plain insert cost about what the replace did before the maps."""
        items = list(states.items())
        user_ids = [s.namespaces["user_properties"].get("user_id") for _, s in items]
        columns: dict[str, Any] = {
            "project": [k[0] for k, _ in items],
            "session_id": [k[1] for k, _ in items],
            "session_name": [s.name for _, s in items],
            "source": [s.source for _, s in items],
            "user_id": [None if u is None else str(u) for u in user_ids],
            "start_time": pa.array([s.start_us for _, s in items], _TIME),
            "end_time": pa.array([s.end_us for _, s in items], _TIME),
            "duration_ms": [
                None if s.start_us is None or s.end_us is None else (s.end_us - s.start_us) / 1000 for _, s in items
            ],
            "event_count": pa.array([s.event_count for _, s in items], pa.int64()),
            "error_count": pa.array([s.error_count for _, s in items], pa.int64()),
            **{name: pa.array([s.usage[n] for _, s in items], pa.int64()) for n, name in enumerate(USAGE_FIELDS[:4])},
            "cost": pa.array([s.usage[4] for _, s in items], pa.float64()),
        }
        for ns in NAMESPACES:
            columns[ns] = [_dumps(s.namespaces[ns]) for _, s in items]
        cursor.register("incoming_sessions", pa.table(columns))
        try:
            if stored:
                cursor.execute(
                    "DELETE FROM sessions USING incoming_sessions AS i "
                    "WHERE sessions.project = i.project AND sessions.session_id = i.session_id"
                )
            cursor.execute(INSERT_SESSIONS)
        finally:
            cursor.unregister("incoming_sessions")

    # --- reads ----------------------------------------------------------------------------
    def _session_where(self, query: SessionQuery, params: list[Any]) -> str:
        projects = _project_clause(query.projects, params)
        where = session_where(query, DUCKDB)
        params.extend(where.params)
        return f"{projects} AND {where.text}"

    @gated
    @_budgeted
    def list_sessions(self, query: SessionQuery) -> list[Row]:
        """Newest first. A filter is evaluated only over the newest sessions first: the scan is
        bounded below by the start time of the N-th newest session (N growing 8x per round) and
        stops as soon as a page is full. Rows older than that bound are older than every row kept,
        so the page is the same as one full scan would give, at a fraction of the JSON parsing."""
        params: list[Any] = []
        where = self._session_where(query, params)
        if query.cursor is not None:
            where += " AND (start_time < ? OR (start_time = ? AND session_id < ?))"
            params += [query.cursor.start_time, query.cursor.start_time, query.cursor.session_id]
        cursor = self._cursor()
        depth = _FIRST_SCAN_DEPTH if query.filter is not None else None
        while True:
            bound = self._nth_newest_start(cursor, query, depth) if depth is not None else None
            sql = f"SELECT {', '.join(_SESSION_COLUMNS)} FROM sessions WHERE {where}"
            if bound is not None:
                sql += " AND start_time >= ?"
            sql += " ORDER BY start_time DESC NULLS LAST, session_id DESC LIMIT ?"
            rows = cursor.execute(sql, [*params, *([bound] if bound is not None else []), query.limit]).fetchall()
            if bound is None or len(rows) >= query.limit:
                return [record_row(_SESSION_COLUMNS, values) for values in rows]
            depth *= 8

    def _nth_newest_start(self, cursor: duckdb.DuckDBPyConnection, query: SessionQuery, depth: int) -> Any:
        """The start time of the ``depth``-th newest session the query may see, ignoring its
        filter; None when there are not that many (then the whole table is scanned)."""
        params: list[Any] = []
        where = self._session_where(replace(query, filter=None), params)
        if query.cursor is not None:
            where += " AND start_time <= ?"
            params.append(query.cursor.start_time)
        found = cursor.execute(
            f"SELECT start_time FROM sessions WHERE {where} AND start_time IS NOT NULL "
            "ORDER BY start_time DESC LIMIT 1 OFFSET ?",
            [*params, depth - 1],
        ).fetchone()
        return None if found is None else found[0]

    @gated
    @_budgeted
    def get_session(
        self, session_id: str, projects: tuple[str, ...] | None, events_limit: int | None = None, events_offset: int = 0
    ) -> Row | None:
        cursor = self._cursor()
        params: list[Any] = [session_id]
        where = _project_clause(projects, params)
        matches = cursor.execute(
            f"SELECT {', '.join(_SESSION_COLUMNS)} FROM sessions WHERE session_id = ? AND {where} "
            f"ORDER BY project LIMIT {MAX_MATCHES}",
            params,
        ).fetchall()
        rows = [record_row(_SESSION_COLUMNS, values) for values in matches]
        session = only_match(rows, f"session {session_id!r}", ("project",))
        if session is None:
            return None
        found = matches[0]
        # Every event of a session lies within the session's time span (kept at write time), and
        # events are stored roughly in time order, so the span lets the scan skip most row groups.
        params = [session["project"], session_id]
        start, end = found[_SESSION_COLUMNS.index("start_time")], found[_SESSION_COLUMNS.index("end_time")]
        span = ""
        if start is not None and end is not None:
            span = " AND start_time BETWEEN ? AND ?"
            params += [start, end]
        events = cursor.execute(
            f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events WHERE project = ? AND session_id = ?{span} "
            "ORDER BY start_time, event_id LIMIT ? OFFSET ?",
            [*params, events_limit, events_offset],
        ).fetchall()
        session["events"] = [record_row(_EVENT_COLUMNS, values) for values in events]
        return session

    @gated
    @_budgeted
    def get_event(self, event_id: str, projects: tuple[str, ...] | None, session_id: str | None = None) -> Row | None:
        params: list[Any] = [event_id]
        where = _project_clause(projects, params)
        if session_id is not None:
            where += " AND session_id = ?"
            params.append(session_id)
        found = (
            self._cursor()
            .execute(
                f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events WHERE event_id = ? AND {where} "
                f"ORDER BY project, session_id LIMIT {MAX_MATCHES}",
                params,
            )
            .fetchall()
        )
        rows = [record_row(_EVENT_COLUMNS, values) for values in found]
        return only_match(rows, f"event {event_id!r}", ("project", "session_id"))

    @gated
    @_budgeted
    def list_events(self, query: EventQuery) -> tuple[list[Row], int]:
        params: list[Any] = []
        where = _project_clause(query.projects, params)
        if query.filter is not None:
            sql, filter_params = to_duckdb_sql(query.filter, EVENT_FIELDS)
            where += f" AND ({sql})"
            params.extend(filter_params)
        cursor = self._cursor()
        (total,) = cursor.execute(f"SELECT count(*) FROM events WHERE {where}", params).fetchone()
        rows = cursor.execute(
            f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events WHERE {where} "
            "ORDER BY start_time, event_id LIMIT ? OFFSET ?",
            [*params, query.limit, query.offset],
        ).fetchall()
        return [record_row(_EVENT_COLUMNS, values) for values in rows], total

    @gated
    def trace_sessions(self, project: str, trace_ids: list[str], since: datetime | None = None) -> dict[str, str]:
        params: list[Any] = [project, trace_ids]
        recent = ""
        if since is not None:
            recent = " AND start_time >= ?"
            params.append(since.astimezone(UTC).replace(tzinfo=None) if since.tzinfo else since)
        found = self._cursor().execute(
            "SELECT trace_id, any_value(session_id) FROM events WHERE project = ? "
            f"AND trace_id IN (SELECT unnest(?)){recent} GROUP BY trace_id",
            params,
        )
        return dict(found.fetchall())

    @gated
    @_budgeted
    def list_users(self, query: SessionQuery) -> list[Row]:
        params: list[Any] = []
        where = self._session_where(query, params)
        params.append(query.limit)
        # Three steps: pick the page of users by when they were last seen (a cheap aggregate), then
        # the counts for those users only, and last their newest properties, read for one row per
        # user (by rowid) instead of for every session of theirs.
        result = self._cursor().execute(
            "WITH page AS (SELECT user_id, max(end_time) AS last_seen "
            f"FROM sessions WHERE user_id IS NOT NULL AND {where} "
            "GROUP BY user_id ORDER BY last_seen DESC NULLS LAST, user_id LIMIT ?), "
            f"stats AS (SELECT user_id, {_STATS}, sum(event_count) AS event_count, "
            "sum(error_count) AS error_count, min(start_time) AS first_seen, max(end_time) AS last_seen, "
            "arg_max(rowid, start_time) AS newest "
            f"FROM sessions WHERE user_id IN (SELECT user_id FROM page) AND {where} GROUP BY user_id) "
            "SELECT stats.* EXCLUDE (newest), sessions.user_properties "
            "FROM stats JOIN sessions ON sessions.rowid = stats.newest "
            "ORDER BY stats.last_seen DESC NULLS LAST, stats.user_id",
            params + params[:-1],
        )
        return [user_row(*values) for values in result.fetchall()]

    @gated
    @_budgeted
    def group_sessions(self, query: SessionQuery, by: Field) -> list[Row]:
        key, params = _group_key(by)
        where = self._session_where(query, params)
        params.append(query.limit)
        # MATERIALIZED: the key (a JSON parse per session) is computed once, not once per aggregate.
        result = self._cursor().execute(
            f"WITH base AS MATERIALIZED (SELECT {key} AS g, user_id, duration_ms, error_count, {_USAGE} FROM sessions "
            f"WHERE {where}) SELECT g, {_STATS}, count(DISTINCT user_id) AS users FROM base "
            "GROUP BY g ORDER BY sessions DESC, g NULLS LAST LIMIT ?",
            params,
        )
        return [
            {**group_value(g), "sessions": n, "users": users, **stats(rate, quantiles, usage)}
            for g, n, rate, quantiles, *usage, users in result.fetchall()
        ]

    @gated
    @_budgeted
    def session_timeseries(
        self, query: SessionQuery, bucket: int | None = None, split_by: Field | None = None, max_groups: int = 5
    ) -> Row:
        cursor = self._cursor()
        span_params: list[Any] = []
        where = self._session_where(query, span_params)
        first, last = cursor.execute(f"SELECT min(start_time), max(start_time) FROM sessions WHERE {where}",
                                     span_params).fetchone()  # fmt: skip
        width = bucket_seconds(first, last, bucket)
        key, params = _group_key(split_by) if split_by is not None else ("NULL", [])
        where = self._session_where(query, params)
        bucketed = "time_bucket(to_seconds(?), start_time, TIMESTAMP '1970-01-01') AS t"
        if split_by is None:  # one series: no group key to compute, rank or join
            result = cursor.execute(
                f"SELECT {bucketed}, NULL AS group_key, FALSE AS other, {_STATS} FROM sessions "
                f"WHERE start_time IS NOT NULL AND {where} GROUP BY t ORDER BY t",
                [width, *params],
            )
        else:  # MATERIALIZED: each session's key (a JSON parse) is computed once for both uses
            result = cursor.execute(
                f"WITH base AS MATERIALIZED (SELECT start_time, duration_ms, error_count, {_USAGE}, {key} AS g "
                f"FROM sessions WHERE start_time IS NOT NULL AND {where}), "
                "top AS (SELECT g, TRUE AS kept FROM base GROUP BY g ORDER BY count(*) DESC, g NULLS LAST LIMIT ?) "
                f"SELECT {bucketed}, CASE WHEN top.kept THEN base.g END AS group_key, top.kept IS NULL AS other, "
                f"{_STATS} FROM base LEFT JOIN top ON base.g IS NOT DISTINCT FROM top.g "
                "GROUP BY ALL ORDER BY t, other, group_key NULLS LAST",
                [*params, max_groups, width],
            )
        points = []
        for t, g, other, n, rate, quantiles, *usage in result.fetchall():
            point = {"time": iso(t), "sessions": n, **stats(rate, quantiles, usage)}
            if split_by is not None:
                point.update({"value": None, "missing": False} if other else group_value(g), other=other)
            points.append(point)
        return {"bucket_seconds": width, "points": points}

    # --- model prices -----------------------------------------------------------------------
    @gated
    def get_prices(self) -> dict[str, dict[str, dict]]:
        rows = self._cursor().execute("SELECT project, model, price FROM project_prices ORDER BY project, model")
        prices: dict[str, dict[str, dict]] = {}
        for project, model, price in rows.fetchall():
            prices.setdefault(project, {})[model] = orjson.loads(price)
        return prices

    @gated
    def set_price(self, project: str, model: str, price: dict | None) -> None:
        cursor = self._cursor()
        cursor.execute("DELETE FROM project_prices WHERE project = ? AND model = ?", [project, model])
        if price is not None:
            cursor.execute("INSERT INTO project_prices VALUES (?, ?, ?)", [project, model, _dumps(price)])

    @gated
    def add_event_feedback(self, project: str, items: list[EventFeedback]) -> list[bool]:
        """Merge feedback into stored events' own (as :func:`deep_merge`), in one transaction: an
        update of the row's ``feedback`` column, which is no key, so DuckDB changes it in place."""
        cursor = self._cursor()
        found = []
        cursor.execute("BEGIN TRANSACTION")
        try:
            for trace_id, event_id, feedback in items:
                rows = cursor.execute(
                    "SELECT session_id, feedback FROM events WHERE project = ? AND trace_id = ? AND event_id = ?",
                    [project, trace_id, event_id],
                ).fetchall()
                for session_id, stored in rows:
                    merged = deep_merge(orjson.loads(stored) if stored else {}, feedback)
                    cursor.execute(
                        "UPDATE events SET feedback = ? WHERE project = ? AND session_id = ? AND event_id = ?",
                        [_dumps(merged), project, session_id, event_id],
                    )
                found.append(bool(rows))
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        return found

    @gated
    def unpriced_models(self, projects: tuple[str, ...] | None, limit: int = 200) -> list[Row]:
        params: list[Any] = []
        where = _project_clause(projects, params)
        rows = self._cursor().execute(
            "SELECT project, json_extract_string(config, '$.model') AS model, "
            "any_value(json_extract_string(config, '$.provider')) AS provider, count(*) AS calls, "
            "max(start_time) AS last_seen FROM events WHERE event_type = 'model' AND "
            f"{where} AND json_extract_string(metadata, '$.cost') IS NULL AND "
            "(json_extract(metadata, '$.prompt_tokens') IS NOT NULL OR "
            "json_extract(metadata, '$.completion_tokens') IS NOT NULL) AND model IS NOT NULL "
            "GROUP BY ALL ORDER BY calls DESC, project, model LIMIT ?",
            [*params, limit],
        )
        return [unpriced_row(*values) for values in rows.fetchall()]
