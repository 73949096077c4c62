"""What the DuckDB store answers: session listings, one session or event, events, users, group by and
time series, each within the store's time and memory budget. Mixed into
:class:`~tracehive.store.duckdb.DuckDBStore`, which writes what these read."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import duckdb

from tracehive.filters import EVENT_FIELDS, SESSION_FIELDS, Field
from tracehive.model import USAGE_FIELDS
from tracehive.store.base import (
    MAX_MATCHES,
    EventQuery,
    QueryBudget,
    QueryTooCostly,
    Row,
    SessionQuery,
    bucket_seconds,
    only_match,
)
from tracehive.store.columns import EVENT_COLUMNS as _EVENT_COLUMNS
from tracehive.store.columns import SESSION_COLUMNS as _SESSION_COLUMNS
from tracehive.store.duckdb_filter import DUCKDB, json_pointer, quote_column, to_duckdb_sql
from tracehive.store.duckdb_schema import MAPPED_NAMESPACES, key_map
from tracehive.store.filter_sql import session_where
from tracehive.store.gate import Gate, gated
from tracehive.store.rows import USAGE_STATS_SQL, group_value, iso, record_row, stats, unpriced_row, user_row

# Per-group figures shared by the users, group-by and time-series queries.
_STATS = (
    "count(*) AS sessions, avg(CASE WHEN error_count > 0 THEN 1.0 ELSE 0.0 END) AS error_rate, "
    f"quantile_cont(duration_ms, [0.5, 0.95]) AS quantiles, {USAGE_STATS_SQL}"
)
_USAGE = ", ".join(USAGE_FIELDS)
# How many of the newest sessions a filtered listing looks at first (see list_sessions).
_FIRST_SCAN_DEPTH = 2000


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
    def run(self: DuckDBReads, *args: Any, **kwargs: Any) -> Any:
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


class DuckDBReads:
    """Mixed into :class:`~tracehive.store.duckdb.DuckDBStore`."""

    budget: QueryBudget
    _gate: Gate

    def _cursor(self) -> duckdb.DuckDBPyConnection: ...

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
