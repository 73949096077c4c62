"""The ClickHouse store, for many servers writing into one ClickHouse (see docs/clickhouse.md).

Every server only inserts: events into ``events``, enrichment into ``session_updates``. Sessions are
never rewritten; ClickHouse aggregates them (``clickhouse_schema``) and each read finishes the
merge: counts of distinct event ids, the widest time span, the last name set, and the namespaces
deep-merged in write order with ``JSONMergePatch``, which merges objects key by key and keeps
null as a value, as :func:`tracehive.model.deep_merge` does. The answers are the DuckDB store's.

The same code runs against a ClickHouse server (``clickhouse://``) and against chDB, the
ClickHouse engine in-process (``chdb://``), both through a clickhouse-connect client.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import orjson
import pyarrow as pa
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from tracehive.filters import EVENT_FIELDS, SESSION_FIELDS, Field
from tracehive.model import NAMESPACES, USAGE_FIELDS, SessionUpdate, deep_merge
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
    bucket_seconds,
    only_match,
)
from tracehive.store.clickhouse_filter import CLICKHOUSE, bind, json_path_sql, quote, to_clickhouse_sql
from tracehive.store.clickhouse_privacy import ClickHousePrivacy
from tracehive.store.clickhouse_schema import MIGRATIONS, VERSION_TABLE
from tracehive.store.columns import EVENT_COLUMNS as _EVENT_COLUMNS
from tracehive.store.columns import EVENT_SCHEMA, Rows, dumps
from tracehive.store.columns import SESSION_COLUMNS as _SESSION_COLUMNS
from tracehive.store.filter_sql import session_where
from tracehive.store.migrations import SCHEMA_TABLE, apply
from tracehive.store.rows import USAGE_STATS_SQL, group_value, iso, record_row, stats, unpriced_row, user_row

DEFAULT_DATABASE = "tracehive"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIME = pa.timestamp("us", tz="UTC")
_EVENT_SCHEMA = pa.schema([f.with_type(_TIME) if f.type == pa.timestamp("us") else f for f in EVENT_SCHEMA])
_KEYS = "{keys:Array(Tuple(String, String))}"  # a parameter: (project, id) pairs
_DISK_FULL_MARKERS = ("NOT_ENOUGH_SPACE", "No space left on device")


# user_id as the DuckDB store derives it in Python (str() of the value): strings as they are,
# booleans as True/False, numbers as written, null or missing as NULL.
_USER_ID = (
    "multiIf(JSONType(user_properties, 'user_id') = 'String', JSONExtractString(user_properties, 'user_id'),"
    " JSONType(user_properties, 'user_id') = 'Bool', if(JSONExtractBool(user_properties, 'user_id'), 'True', 'False'),"
    " JSONType(user_properties, 'user_id') = 'Null', NULL, JSONExtractRaw(user_properties, 'user_id'))"
)
# Per-group figures shared by the users, group-by and time-series queries (as the DuckDB store's:
# quantileExactInclusive interpolates like DuckDB's quantile_cont).
_STATS = (
    "count() AS n_sessions, avg(if(error_count > 0, 1.0, 0.0)) AS error_rate,"
    f" quantilesExactInclusive(0.5, 0.95)(duration_ms) AS quantiles, {USAGE_STATS_SQL}"
)
# The roll-ups of a session's model calls (clickhouse_schema), in the order of USAGE_FIELDS.
_USAGE_OF_CALLS = (
    "length(_calls) AS model_calls, arraySum(c -> c.2, _calls) AS prompt_tokens,"
    " arraySum(c -> c.3, _calls) AS completion_tokens, arraySum(c -> c.4, _calls) AS total_tokens,"
    " if(arrayExists(c -> isNotNull(c.5), _calls), arraySum(c -> ifNull(c.5, 0), _calls), NULL) AS cost"
)
_FOLDS = ", ".join(
    f"arrayFold((acc, u) -> JSONMergePatch(acc, u.{n}), _updates, '{{}}') AS {ns}"
    for n, ns in enumerate(NAMESPACES, start=2)
)


def _session_view(db: str, where: str) -> str:
    """One row per session, merged from the aggregate table; ``where`` picks the groups to merge."""
    return (
        f"SELECT project, session_id, nullIf(_name, '') AS session_name, nullIf(_source, '') AS source,"
        f" {_USER_ID} AS user_id, _start AS start_time, _end AS end_time,"
        " if(_start IS NULL OR _end IS NULL, NULL,"
        " (toUnixTimestamp64Micro(_end) - toUnixTimestamp64Micro(_start)) / 1000) AS duration_ms,"
        f" event_count, error_count, {_USAGE_OF_CALLS}, {_FOLDS} FROM ("
        "SELECT project, session_id, argMaxMerge(session_name) AS _name, argMaxMerge(source) AS _source,"
        " min(start_time) AS _start, max(end_time) AS _end, uniqExactMerge(event_ids) AS event_count,"
        " uniqExactIfMerge(error_ids) AS error_count, arraySort(u -> u.1, groupArrayMerge(updates)) AS _updates,"
        " groupUniqArrayMerge(model_usage) AS _calls"
        f" FROM {db}.sessions WHERE {where} GROUP BY project, session_id)"
    )


def _group_key(field: Field) -> tuple[str, dict[str, Any]]:
    """SQL giving the JSON text of ``field`` (NULL when absent), and its parameters."""
    if SESSION_FIELDS[field.column] == "json":
        raw, params = json_path_sql(field.column, field.path, "g")
        return f"nullIf({raw}, '')", params
    column = quote(field.column)
    if SESSION_FIELDS[field.column] == "string":
        return f"if({column} IS NULL, NULL, toJSONString({column}))", {}
    return f"toString({column})", {}


def _micros(value: datetime) -> int:
    return ((value.replace(tzinfo=UTC) if value.tzinfo is None else value) - _EPOCH) // timedelta(microseconds=1)


def _project_clause(projects: tuple[str, ...] | None, params: dict[str, Any]) -> str:
    if projects is None:
        return "1"
    params["projects"] = list(projects)
    return "has({projects:Array(String)}, project)"


def _time_column(ns_values: list[int | None]) -> pa.Array:
    return pa.array([None if ns is None else ns // 1000 for ns in ns_values], pa.timestamp("us")).cast(_TIME)


class ClickHouseStore(ClickHousePrivacy):
    def __init__(self, client: Client, database: str = DEFAULT_DATABASE, budget: QueryBudget = DEFAULT_BUDGET) -> None:
        self._client = client
        self.database = database
        self.budget = budget
        # Every read carries its budget; ClickHouse cancels the query past either limit.
        self._read_settings: dict[str, Any] = {"max_execution_time": budget.seconds}
        if budget.memory_mb is not None:
            self._read_settings["max_memory_usage"] = budget.memory_mb * 1024 * 1024
        self._db = quote(database)
        self._lock = threading.Lock()
        self._next_version = 0
        self._migrate()

    def _migrate(self) -> None:
        found = self._select("SELECT count() FROM system.databases WHERE name = {db:String}", {"db": self.database})
        if not found[0][0]:
            self._client.command(f"CREATE DATABASE IF NOT EXISTS {self._db}")
        self._client.command(VERSION_TABLE.format(db=self._db))
        current = self._client.query(f"SELECT max(version) FROM {self._db}.{SCHEMA_TABLE}").result_rows[0][0]
        apply(
            MIGRATIONS,
            int(current or 0),
            f"ClickHouse database {self.database!r}",
            lambda statement: self._client.command(statement.format(db=self._db)),
            lambda m: self._client.command(
                f"INSERT INTO {self._db}.{SCHEMA_TABLE} (version, description) VALUES ({{v:UInt32}}, {{d:String}})",
                {"v": m.version, "d": m.description},
            ),
        )

    def close(self) -> None:
        self._client.close()

    # --- dashboard logins: every change is a new row; the highest version is the login's state ----
    def save_login(self, token_digest: str, key_digest: str, csrf: str, expires_at: float) -> None:
        (version,) = self._versions(1)
        self._client.insert(f"{self._db}.logins", [[token_digest, key_digest, csrf, expires_at, version]],
                            column_names=["token_digest", "key_digest", "csrf", "expires_at", "version"])  # fmt: skip

    def find_login(self, token_digest: str) -> tuple[str, str, float] | None:
        found = self._select(
            f"SELECT key_digest, csrf, expires_at FROM {self._db}.logins FINAL WHERE token_digest = {{d:String}}",
            {"d": token_digest},
        )
        if not found or found[0][2] <= 0:
            return None
        return found[0][0], found[0][1], found[0][2]

    def end_login(self, token_digest: str) -> None:
        self.save_login(token_digest, "", "", 0.0)

    # --- writes ---------------------------------------------------------------------------
    def write(self, rows: Rows) -> None:
        rows = self._join_claimed_traces(rows)
        # Both tables are built before either insert, so a value that cannot be converted fails the
        # write before anything of it is stored.
        events = rows.events.cast(_EVENT_SCHEMA) if rows.events.num_rows else None
        updates = self._updates_table(rows.sessions) if rows.sessions else None
        try:
            if rows.claims:
                self._claim_traces(rows)
            if events is not None:
                self._client.insert_arrow(f"{self._db}.events", events)
            if updates is not None:
                self._client.insert_arrow(f"{self._db}.session_updates", updates)
        except ClickHouseError as exc:
            if any(marker in str(exc) for marker in _DISK_FULL_MARKERS):
                raise StoreFullError(str(exc)) from exc
            raise

    def _join_claimed_traces(self, rows: Rows) -> Rows:
        """Spans that named no session join the session their trace named, in this write or before."""
        if not rows.orphans:
            return rows
        found, rest = rows.orphans_claimed_here()
        if rest:
            stored = self._select(
                f"SELECT project, trace_id, argMin(session_id, version) FROM {self._db}.trace_sessions"
                f" WHERE (project, trace_id) IN {_KEYS} GROUP BY project, trace_id",
                {"keys": rest},
            )
            found.update({(p, t): s for p, t, s in stored})
        return rows.rejoined(found) if found else rows

    def _claim_traces(self, rows: Rows) -> None:
        """Record the session each trace names and move the trace's stored spans that named none
        (a session keyed by the trace id) into it: their rows are inserted again under the session
        and the trace-id session's rows deleted."""
        claims = rows.claims
        self._client.insert_arrow(
            f"{self._db}.trace_sessions",
            pa.table({"project": [c[0] for c in claims], "trace_id": [c[1] for c in claims],
                      "session_id": [c[2] for c in claims],
                      "version": pa.array(self._versions(len(claims)), pa.uint64())}),
        )  # fmt: skip
        target = rows.first_claims()
        # Most traces left no stray session: a look at the sessions table's key says so cheaply.
        keys = [
            (p, t)
            for p, t in self._select(
                f"SELECT DISTINCT project, session_id FROM {self._db}.sessions WHERE (project, session_id) IN {_KEYS}",
                {"keys": list(target)},
            )
        ]
        if not keys:
            return
        strays = self._client.query_arrow(
            f"SELECT * FROM {self._db}.events FINAL WHERE (project, session_id) IN {_KEYS} AND trace_id = session_id",
            {"keys": keys},
        )
        if not strays.num_rows:
            return
        moved = {(p, t): target[(p, t)] for p, t in zip(strays["project"].to_pylist(),
                                                         strays["trace_id"].to_pylist(), strict=True)}  # fmt: skip
        sessions = [moved[(p, t)] for p, t in zip(strays["project"].to_pylist(), strays["trace_id"].to_pylist(),
                                                  strict=True)]  # fmt: skip
        index = strays.schema.get_field_index("session_id")
        self._client.insert_arrow(
            f"{self._db}.events", strays.set_column(index, "session_id", pa.array(sessions, pa.string()))
        )
        updates = self._client.query_arrow(
            f"SELECT * FROM {self._db}.session_updates WHERE (project, session_id) IN {_KEYS}",
            {"keys": list(moved)},
        )
        if updates.num_rows:
            names = [moved[(p, s)] for p, s in zip(updates["project"].to_pylist(), updates["session_id"].to_pylist(),
                                                   strict=True)]  # fmt: skip
            index = updates.schema.get_field_index("session_id")
            self._client.insert_arrow(
                f"{self._db}.session_updates", updates.set_column(index, "session_id", pa.array(names, pa.string()))
            )
        params = {"keys": list(moved)}
        for table in ("events", "session_updates", "sessions"):
            self._client.command(
                f"DELETE FROM {self._db}.{table} WHERE (project, session_id) IN {_KEYS}",
                params,
            )

    def _versions(self, count: int) -> range:
        """Write versions: nanoseconds since the epoch, increasing within this process. Updates
        from different servers are ordered by their clocks (keep them synchronised)."""
        with self._lock:
            first = max(time.time_ns(), self._next_version)
            self._next_version = first + count
        return range(first, first + count)

    def _updates_table(self, updates: list[SessionUpdate]) -> pa.Table:
        columns: dict[str, Any] = {
            "project": [u.project for u in updates],
            "session_id": [u.session_id for u in updates],
            "version": pa.array(self._versions(len(updates)), pa.uint64()),
            "session_name": pa.array([u.session_name for u in updates], pa.string()),
            "source": pa.array([u.source for u in updates], pa.string()),
            "start_time": _time_column([u.start_ns for u in updates]),
            "end_time": _time_column([u.end_ns for u in updates]),
        }
        for ns in NAMESPACES:
            columns[ns] = [dumps(u.namespaces.get(ns)) for u in updates]
        return pa.table(columns)

    # --- reads ----------------------------------------------------------------------------
    def _select(self, sql: str, params: dict[str, Any]) -> list[tuple]:
        try:
            return self._client.query(sql, params, settings=self._read_settings).result_rows
        except ClickHouseError as exc:
            for code, cause in (("TIMEOUT_EXCEEDED", "time"), ("MEMORY_LIMIT_EXCEEDED", "memory")):
                if code in str(exc):
                    raise QueryTooCostly(self.budget.message(cause)) from None
            raise

    def _session_where(self, query: SessionQuery, params: dict[str, Any]) -> str:
        where, where_params = bind(session_where(query, CLICKHOUSE), "f")
        params.update(where_params)
        return where

    def list_sessions(self, query: SessionQuery) -> list[Row]:
        params: dict[str, Any] = {"limit": query.limit}
        view = _session_view(self._db, _project_clause(query.projects, params))
        where = self._session_where(query, params)
        if query.cursor is not None:
            where += (
                " AND (start_time < fromUnixTimestamp64Micro({cursor_time:Int64}, 'UTC')"
                " OR (start_time = fromUnixTimestamp64Micro({cursor_time:Int64}, 'UTC')"
                " AND session_id < {cursor_id:String}))"
            )
            params.update(cursor_time=_micros(query.cursor.start_time), cursor_id=query.cursor.session_id)
        rows = self._select(
            f"SELECT {', '.join(_SESSION_COLUMNS)} FROM ({view}) WHERE {where}"
            " ORDER BY start_time DESC NULLS LAST, session_id DESC LIMIT {limit:UInt32}",
            params,
        )
        return [record_row(_SESSION_COLUMNS, values) for values in rows]

    def get_session(
        self, session_id: str, projects: tuple[str, ...] | None, events_limit: int | None = None, events_offset: int = 0
    ) -> Row | None:
        params: dict[str, Any] = {"session_id": session_id}
        view = _session_view(self._db, f"session_id = {{session_id:String}} AND {_project_clause(projects, params)}")
        found = self._select(f"SELECT {', '.join(_SESSION_COLUMNS)} FROM ({view}) ORDER BY project LIMIT {MAX_MATCHES}",
                             params)  # fmt: skip
        session = only_match([record_row(_SESSION_COLUMNS, f) for f in found], f"session {session_id!r}", ("project",))
        if session is None:
            return None
        start, end = found[0][_SESSION_COLUMNS.index("start_time")], found[0][_SESSION_COLUMNS.index("end_time")]
        session["events"] = []
        if start is not None and end is not None:  # an event sets both: without an end there is none
            # A session's span covers all its events: the bounds let ClickHouse skip other months and days.
            rows = self._select(
                f"SELECT {', '.join(_EVENT_COLUMNS)} FROM {self._db}.events FINAL"
                " WHERE project = {project:String} AND session_id = {session_id:String}"
                " AND start_time BETWEEN fromUnixTimestamp64Micro({start:Int64}, 'UTC')"
                " AND fromUnixTimestamp64Micro({end:Int64}, 'UTC') ORDER BY start_time, event_id"
                f"{'' if events_limit is None else ' LIMIT {limit:UInt64}'} OFFSET {{offset:UInt64}}",
                {
                    "project": session["project"],
                    "session_id": session_id,
                    "start": _micros(start),
                    "end": _micros(end),
                    "limit": events_limit,
                    "offset": events_offset,
                },
            )
            session["events"] = [record_row(_EVENT_COLUMNS, values) for values in rows]
        return session

    def get_event(self, event_id: str, projects: tuple[str, ...] | None, session_id: str | None = None) -> Row | None:
        params: dict[str, Any] = {"event_id": event_id, "session_id": session_id}
        in_session = "" if session_id is None else " AND session_id = {session_id:String}"
        found = self._select(
            f"SELECT {', '.join(_EVENT_COLUMNS)} FROM {self._db}.events FINAL"
            f" WHERE event_id = {{event_id:String}} AND {_project_clause(projects, params)}{in_session}"
            f" ORDER BY project, session_id LIMIT {MAX_MATCHES}",
            params,
        )
        rows = [record_row(_EVENT_COLUMNS, values) for values in found]
        return only_match(rows, f"event {event_id!r}", ("project", "session_id"))

    def list_events(self, query: EventQuery) -> tuple[list[Row], int]:
        params: dict[str, Any] = {"limit": query.limit, "offset": query.offset}
        where = _project_clause(query.projects, params)
        if query.filter is not None:
            sql, filter_params = to_clickhouse_sql(query.filter, EVENT_FIELDS)
            where += f" AND ({sql})"
            params.update(filter_params)
        ((total,),) = self._select(f"SELECT count() FROM {self._db}.events FINAL WHERE {where}", params)
        rows = self._select(
            f"SELECT {', '.join(_EVENT_COLUMNS)} FROM {self._db}.events FINAL WHERE {where}"
            " ORDER BY start_time, event_id LIMIT {limit:UInt64} OFFSET {offset:UInt64}",
            params,
        )
        return [record_row(_EVENT_COLUMNS, values) for values in rows], total

    def trace_sessions(self, project: str, trace_ids: list[str], since: datetime | None = None) -> dict[str, str]:
        params: dict[str, Any] = {"project": project, "trace_ids": trace_ids}
        recent = ""
        if since is not None:
            recent = " AND start_time >= fromUnixTimestamp64Micro({since:Int64}, 'UTC')"
            params["since"] = _micros(since)
        rows = self._select(
            f"SELECT trace_id, any(session_id) FROM {self._db}.events WHERE project = {{project:String}}"
            f" AND has({{trace_ids:Array(String)}}, trace_id){recent} GROUP BY trace_id",
            params,
        )
        return dict(rows)

    def list_users(self, query: SessionQuery) -> list[Row]:
        params: dict[str, Any] = {"limit": query.limit}
        view = _session_view(self._db, _project_clause(query.projects, params))
        where = self._session_where(query, params)
        rows = self._select(
            f"SELECT user_id, {_STATS}, sum(event_count), sum(error_count),"
            " min(start_time) AS first_seen, max(end_time) AS last_seen, argMax(user_properties, start_time)"
            f" FROM ({view}) WHERE user_id IS NOT NULL AND {where}"
            " GROUP BY user_id ORDER BY last_seen DESC NULLS LAST, user_id LIMIT {limit:UInt32}",
            params,
        )
        return [user_row(*values) for values in rows]

    def group_sessions(self, query: SessionQuery, by: Field) -> list[Row]:
        key, params = _group_key(by)
        params["limit"] = query.limit
        view = _session_view(self._db, _project_clause(query.projects, params))
        where = self._session_where(query, params)
        rows = self._select(
            f"SELECT {key} AS g, {_STATS}, uniqExact(user_id) AS users FROM ({view}) WHERE {where}"
            " GROUP BY g ORDER BY n_sessions DESC, g ASC NULLS LAST LIMIT {limit:UInt32}",
            params,
        )
        return [
            {**group_value(g), "sessions": n, "users": users, **stats(rate, quantiles, usage)}
            for g, n, rate, quantiles, *usage, users in rows
        ]

    def session_timeseries(
        self, query: SessionQuery, bucket: int | None = None, split_by: Field | None = None, max_groups: int = 5
    ) -> Row:
        key, params = _group_key(split_by) if split_by is not None else ("NULL", {})
        view = _session_view(self._db, _project_clause(query.projects, params))
        where = self._session_where(query, params)
        ((first, last),) = self._select(f"SELECT min(start_time), max(start_time) FROM ({view}) WHERE {where}", params)
        width = bucket_seconds(first, last, bucket)
        params.update(groups=max_groups, width_us=width * 1_000_000)
        # transform_null_in: a group whose value is missing (NULL) can be one of the largest too.
        rows = self._select(
            f"WITH base AS (SELECT start_time, duration_ms, error_count, {', '.join(USAGE_FIELDS)}, {key} AS g"
            f" FROM ({view})"
            f" WHERE start_time IS NOT NULL AND {where}),"
            " top AS (SELECT g FROM base GROUP BY g ORDER BY count() DESC, g ASC NULLS LAST LIMIT {groups:UInt32})"
            " SELECT fromUnixTimestamp64Micro(intDiv(toUnixTimestamp64Micro(start_time), {width_us:Int64})"
            " * {width_us:Int64}, 'UTC') AS t, g IN (SELECT g FROM top) AS kept, if(kept, g, NULL) AS group_key,"
            f" NOT kept AS other, {_STATS} FROM base GROUP BY t, kept, group_key"
            " ORDER BY t, other, group_key NULLS LAST SETTINGS transform_null_in = 1",
            params,
        )
        points = []
        for t, _, g, other, n, rate, quantiles, *usage in rows:
            point = {"time": iso(t), "sessions": n, **stats(rate, quantiles, usage)}
            if split_by is not None:
                point.update({"value": None, "missing": False} if other else group_value(g), other=bool(other))
            points.append(point)
        return {"bucket_seconds": width, "points": points}

    # --- model prices -----------------------------------------------------------------------
    def get_prices(self) -> dict[str, dict[str, dict]]:
        rows = self._select(
            f"SELECT project, model, argMax(price, version) AS p FROM {self._db}.project_prices"
            " GROUP BY project, model HAVING p != '' ORDER BY project, model",
            {},
        )
        prices: dict[str, dict[str, dict]] = {}
        for project, model, price in rows:
            prices.setdefault(project, {})[model] = orjson.loads(price)
        return prices

    def set_price(self, project: str, model: str, price: dict | None) -> None:
        self._client.insert_arrow(
            f"{self._db}.project_prices",
            pa.table({"project": [project], "model": [model], "price": ["" if price is None else dumps(price)],
                      "version": pa.array(self._versions(1), pa.uint64())}),
        )  # fmt: skip

    def add_event_feedback(self, project: str, items: list[EventFeedback]) -> list[bool]:
        """Merge feedback into stored events' own (as :func:`deep_merge`) by inserting a newer
        version of each event's row: ``events`` is a ReplacingMergeTree whose last inserted row
        wins, and every read uses FINAL. The simplest correct way: no table or read changes, and the
        session aggregates see the same event again, which they count once (distinct ids, sets).
        The read-modify-write is safe on one server (its writer thread runs it); two servers scoring
        one event at the same instant could lose one of the two scores."""
        keys = list(dict.fromkeys((trace_id, event_id) for trace_id, event_id, _ in items))
        stored = self._client.query_arrow(
            f"SELECT * FROM {self._db}.events FINAL WHERE project = {{project:String}}"
            " AND (trace_id, event_id) IN {keys:Array(Tuple(String, String))}",
            {"project": project, "keys": keys},
        )
        if not stored.num_rows:
            return [False] * len(items)
        index = stored.schema.get_field_index("feedback")
        rows = list(zip(stored["trace_id"].to_pylist(), stored["event_id"].to_pylist(), strict=True))
        merged = [orjson.loads(text) if text else {} for text in stored["feedback"].to_pylist()]
        for trace_id, event_id, feedback in items:
            for i, key in enumerate(rows):
                if key == (trace_id, event_id):
                    merged[i] = deep_merge(merged[i], feedback)
        texts = pa.array([dumps(feedback) for feedback in merged], pa.string())
        self._client.insert_arrow(f"{self._db}.events", stored.set_column(index, "feedback", texts))
        return [(trace_id, event_id) in rows for trace_id, event_id, _ in items]

    def unpriced_models(self, projects: tuple[str, ...] | None, limit: int = 200) -> list[Row]:
        params: dict[str, Any] = {"limit": limit}
        where = _project_clause(projects, params)
        rows = self._select(
            "SELECT project, JSONExtractString(config, 'model') AS model,"
            " any(JSONExtractString(config, 'provider')) AS provider, count() AS calls, max(start_time) AS last_seen"
            f" FROM {self._db}.events FINAL WHERE event_type = 'model' AND {where}"
            " AND JSONType(metadata, 'cost') IN ('Null', '') AND model != ''"
            " AND (JSONHas(metadata, 'prompt_tokens') OR JSONHas(metadata, 'completion_tokens'))"
            " GROUP BY project, model ORDER BY calls DESC, project, model LIMIT {limit:UInt32}",
            params,
        )
        return [unpriced_row(*values) for values in rows]


def open_clickhouse(url: str, budget: QueryBudget = DEFAULT_BUDGET) -> ClickHouseStore:
    """``clickhouse://user:pass@host:8123/db`` (a server; add ``?secure=true`` for TLS) or
    ``chdb:///data/folder?database=db`` (the engine in this process; one process per folder)."""
    import clickhouse_connect

    parts = urlsplit(url)
    options = parse_qs(parts.query)
    if parts.scheme == "chdb":
        database = options.pop("database", [DEFAULT_DATABASE])[0]
        dsn = urlunsplit(parts._replace(query=urlencode(options, doseq=True)))
        return ClickHouseStore(clickhouse_connect.get_client(dsn=dsn), database, budget)
    database = parts.path.strip("/") or DEFAULT_DATABASE
    client = clickhouse_connect.get_client(dsn=urlunsplit(parts._replace(path="")), autogenerate_session_id=False)
    return ClickHouseStore(client, database, budget)
