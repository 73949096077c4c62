"""The embedded default store: one DuckDB file in the data folder.

Writes come from one thread (the :mod:`~tracehive.store.writer`), each batch in one transaction,
inserted column-wise through Arrow. Events are append-only and deduplicated by id, so a client
retrying a batch whose answer it lost stores nothing twice. Sessions are one row each, kept up to
date at write time (counts, time span, merged namespaces, maps of their top-level keys) so that
listing and grouping them is cheap. The schema is in :mod:`~tracehive.store.duckdb_schema`, the
reads in :mod:`~tracehive.store.duckdb_reads`, erase and settings in
:mod:`~tracehive.store.duckdb_privacy`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from tracehive.model import MODEL_EVENT_TYPE, NAMESPACES, USAGE_FIELDS, SessionUpdate, deep_merge
from tracehive.store.base import (
    DEFAULT_BUDGET,
    EventFeedback,
    QueryBudget,
    Row,
)
from tracehive.store.columns import EVENT_COLUMNS as _EVENT_COLUMNS
from tracehive.store.columns import Rows, SessionTotals, add_usage, session_totals
from tracehive.store.duckdb_cursor import columns_of, registered, transaction
from tracehive.store.duckdb_privacy import DuckDBPrivacy, remove_rewrite_leftover
from tracehive.store.duckdb_reads import DuckDBReads
from tracehive.store.duckdb_schema import EVENT_USAGE, INSERT_SESSIONS, MIGRATIONS
from tracehive.store.gate import Gate, gated
from tracehive.store.migrations import SCHEMA_TABLE, apply
from tracehive.store.seen import SeenKeys

_TIME = pa.timestamp("us")
# The write-ahead log is folded into the file past this size. DuckDB's default (16 MB) checkpoints
# every few seconds under steady ingest; 64 MB costs about 12% less CPU per span and a little more
# memory and recovery time after a crash (bench/RESULTS.md).
_CHECKPOINT_THRESHOLD = "64MB"
# DuckDB keeps every block it wrote or read cached up to its memory limit (80% of RAM by default),
# so a server taking steady ingest grew about 15 MB per 100,000 spans. Bounded, it levels off, the
# OS's page cache still holds the file, and ten million events are queried within it
# (bench/RESULTS.md); --query-memory-mb raises it for bigger data.
DEFAULT_MEMORY_MB = 256


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _to_us(ns: int | None) -> int | None:
    return None if ns is None else ns // 1000


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


class DuckDBStore(DuckDBReads, DuckDBPrivacy):
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
        with transaction(db):
            apply(MIGRATIONS, current, self.path, db.execute, lambda m: db.execute(record, [m.version, m.description]))

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
        with registered(cursor, "incoming_events", rows.events):
            try:
                with transaction(cursor):
                    self._write(cursor, rows, fresh=True, log_position=log_position)
            except duckdb.ConstraintException:
                # Some events are stored already (a client retried): start again, skipping those.
                with transaction(cursor):
                    self._write(cursor, rows, fresh=False, log_position=log_position)
        for project, trace_id, _ in rows.claims:
            self._claimed.add((project, trace_id))

    def _write(self, cursor: duckdb.DuckDBPyConnection, rows: Rows, fresh: bool, log_position: int | None) -> None:
        strays = self._claim_traces(cursor, rows)
        self._upsert_sessions(cursor, self._insert_events(cursor, rows, fresh), rows.sessions, strays)
        if log_position is not None:
            cursor.execute("UPDATE ingest_log SET applied = ?", [log_position])

    def _join_claimed_traces(self, cursor: duckdb.DuckDBPyConnection, rows: Rows) -> Rows:
        """Spans that named no session join the session their trace named: in this write (another
        request) or stored before."""
        if not rows.orphans:
            return rows
        found, rest = rows.orphans_claimed_here()
        maybe = [key for key in rest if key in self._claimed]
        if maybe:
            with registered(cursor, "orphan_traces", columns_of(maybe, "p", "t")):
                stored = cursor.execute(
                    "SELECT project, trace_id, arg_min(session_id, trace_sessions.rowid) FROM trace_sessions "
                    "JOIN orphan_traces ON project = p AND trace_id = t GROUP BY project, trace_id"
                ).fetchall()
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
            with registered(cursor, "claims", columns_of(new, "p", "t", "s")):
                cursor.execute("INSERT INTO trace_sessions SELECT p, t, s FROM claims")
        candidates = [(p, t, s) for (p, t), s in named.items() if (p, t) in self._seen]
        if not candidates:
            return {}
        with registered(cursor, "moves", columns_of(candidates, "p", "t", "s")):
            cursor.execute(
                "UPDATE events SET session_id = moves.s FROM moves WHERE events.project = moves.p "
                "AND events.session_id = moves.t AND events.trace_id = moves.t"
            )
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
        with registered(cursor, "touched", columns_of(keys, "p", "s")):
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
        with registered(cursor, "gone", columns_of(keys, "p", "s")):
            cursor.execute("DELETE FROM sessions USING gone WHERE project = gone.p AND session_id = gone.s")

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
        with registered(cursor, "incoming_sessions", columns):
            if stored:
                cursor.execute(
                    "DELETE FROM sessions USING incoming_sessions AS i "
                    "WHERE sessions.project = i.project AND sessions.session_id = i.session_id"
                )
            cursor.execute(INSERT_SESSIONS)

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
        with transaction(cursor):
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
        return found
