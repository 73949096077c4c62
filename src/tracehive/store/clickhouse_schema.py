"""The ClickHouse schema, as numbered migrations (see docs/clickhouse.md for the why).

- ``events``: one row per span, ReplacingMergeTree so a retried batch collapses to one row;
  partitioned by month and ordered by (project, day, session, id), so time-bounded scans and a
  session's events read few granules. Namespaces are JSON text, read with the JSON* functions.
- ``session_updates``: what enrichment said about a session, append-only with a write version.
  Servers only ever insert, so no two of them race on a read-modify-write.
- ``sessions``: an AggregatingMergeTree fed by materialized views of the source tables; each
  session's time span, counts, updates and model calls merge in the background and at read time.
"""

from __future__ import annotations

from tracehive.model import MODEL_EVENT_TYPE, NAMESPACES
from tracehive.store.clickhouse_filter import CLICKHOUSE
from tracehive.store.clickhouse_privacy import MIGRATION as PRIVACY_MIGRATION
from tracehive.store.migrations import SCHEMA_TABLE, Migration
from tracehive.store.usage import usage_sql

TIME = "DateTime64(6, 'UTC')"
_NS_COLUMNS = ",\n".join(f"    {ns} String CODEC(ZSTD(3))" for ns in NAMESPACES)
_UPDATE_TUPLE = f"Tuple(UInt64, {', '.join(['String'] * len(NAMESPACES))})"

# Which server ran the migration and when, for whoever looks at the table.
VERSION_TABLE = f"""
CREATE TABLE IF NOT EXISTS {{db}}.{SCHEMA_TABLE} (
    version UInt32, description String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree ORDER BY version
"""

_EVENTS = f"""
CREATE TABLE IF NOT EXISTS {{db}}.events (
    project LowCardinality(String),
    event_id String,
    session_id String,
    trace_id String,
    parent_id Nullable(String),
    event_type LowCardinality(String),
    event_name LowCardinality(String),
    start_time {TIME},
    end_time {TIME},
    duration_ms Float64,
    error Nullable(String),
{_NS_COLUMNS},
    INDEX by_event_id event_id TYPE bloom_filter GRANULARITY 1,
    INDEX by_session_id session_id TYPE bloom_filter GRANULARITY 1
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(start_time)
ORDER BY (project, toDate(start_time), session_id, event_id)
"""

_SESSION_UPDATES = f"""
CREATE TABLE IF NOT EXISTS {{db}}.session_updates (
    project LowCardinality(String),
    session_id String,
    version UInt64,
    session_name Nullable(String),
    source Nullable(String),
    start_time Nullable({TIME}),
    end_time Nullable({TIME}),
{_NS_COLUMNS}
) ENGINE = MergeTree
PARTITION BY toYYYYMM(toDateTime(intDiv(version, 1000000000), 'UTC'))
ORDER BY (project, session_id, version)
"""

_SESSIONS = f"""
CREATE TABLE IF NOT EXISTS {{db}}.sessions (
    project LowCardinality(String),
    session_id String,
    session_name AggregateFunction(argMax, String, UInt64),
    source AggregateFunction(argMax, String, UInt64),
    start_time SimpleAggregateFunction(min, Nullable({TIME})),
    end_time SimpleAggregateFunction(max, Nullable({TIME})),
    event_ids AggregateFunction(uniqExact, String),
    error_ids AggregateFunction(uniqExactIf, String, UInt8),
    updates AggregateFunction(groupArray, {_UPDATE_TUPLE})
) ENGINE = AggregatingMergeTree
ORDER BY (project, session_id)
"""

# uniqExact over event ids counts a retried event once, however often it was inserted.
SESSIONS_OF_EVENTS = """
SELECT project, session_id, min(start_time) AS start_time, max(end_time) AS end_time,
       uniqExactState(event_id) AS event_ids, uniqExactIfState(event_id, error IS NOT NULL) AS error_ids
FROM {db}.events GROUP BY project, session_id
"""
_SESSIONS_FROM_EVENTS = (
    "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.sessions_from_events TO {db}.sessions AS" + SESSIONS_OF_EVENTS
)

# A name or source counts only when set: an empty one keeps version 0 and never wins argMax.
SESSIONS_OF_UPDATES = f"""
SELECT project, session_id,
       argMaxState(ifNull(session_name, ''), if(ifNull(session_name, '') != '', version, 0)) AS session_name,
       argMaxState(ifNull(source, ''), if(ifNull(source, '') != '', version, 0)) AS source,
       min(start_time) AS start_time, max(end_time) AS end_time,
       groupArrayState(tuple(version, {", ".join(NAMESPACES)})) AS updates
FROM {{db}}.session_updates GROUP BY project, session_id
"""
_SESSIONS_FROM_UPDATES = (
    "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.sessions_from_updates TO {db}.sessions AS" + SESSIONS_OF_UPDATES
)

# Sessions across requests: the session each trace names; the earliest claim (lowest version) wins.
_TRACE_SESSIONS = """
CREATE TABLE IF NOT EXISTS {db}.trace_sessions (
    project LowCardinality(String), trace_id String, session_id String, version UInt64
) ENGINE = ReplacingMergeTree ORDER BY (project, trace_id)
"""

# Each project's own model prices; a later write (higher version) replaces, an empty price deletes.
_PROJECT_PRICES = """
CREATE TABLE IF NOT EXISTS {db}.project_prices (
    project String, model String, price String, version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY (project, model)
"""

# Dashboard logins, shared by every server: the row with the highest version wins (an ended login
# is a row with expires_at 0). Rows are dropped two days after they were written (the version is
# the write time in nanoseconds), by when every login has expired (12 hours after its last write):
# an ended login's row may go before an older row of the same login, which is then expired too.
_LOGINS = """
CREATE TABLE IF NOT EXISTS {db}.logins (
    token_digest String, key_digest String, csrf String, expires_at Float64, version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY token_digest
TTL toDateTime(intDiv(version, 1000000000), 'UTC') + INTERVAL 2 DAY
"""

# A session's model calls, each as (event id, prompt, completion and total tokens, cost): a set, so
# a retried event (or the backfill meeting the view) counts once. The view fills it from new
# events; the INSERT fills it for the events stored before (both may see an event; the set keeps one).
_MODEL_CALL = "Tuple(String, Int64, Int64, Int64, Nullable(Float64))"
MODEL_CALLS_OF_EVENTS = (
    f"SELECT project, session_id, groupUniqArrayState(CAST(tuple(event_id, {', '.join(usage_sql(CLICKHOUSE))})"
    f" AS {_MODEL_CALL})) AS model_usage FROM {{db}}.events WHERE event_type = '{MODEL_EVENT_TYPE}'"
    " GROUP BY project, session_id"
)
_USAGE = (
    "ALTER TABLE {db}.sessions ADD COLUMN IF NOT EXISTS model_usage "
    f"AggregateFunction(groupUniqArray, {_MODEL_CALL})",
    "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.model_usage_from_events TO {db}.sessions AS " + MODEL_CALLS_OF_EVENTS,
    f"INSERT INTO {{db}}.sessions (project, session_id, model_usage) {MODEL_CALLS_OF_EVENTS}",
)

MIGRATIONS = (
    Migration(
        1,
        "events, session updates, sessions aggregated from both",
        (_EVENTS, _SESSION_UPDATES, _SESSIONS, _SESSIONS_FROM_EVENTS, _SESSIONS_FROM_UPDATES),
    ),
    Migration(2, "dashboard logins: hashed token, key hash, logout token, expiry", (_LOGINS,)),
    Migration(3, "sessions: their model calls, for model calls, tokens and cost", _USAGE),
    Migration(4, "trace_sessions: the session each trace names", (_TRACE_SESSIONS,)),
    Migration(5, "project_prices: each project's own model prices", (_PROJECT_PRICES,)),
    PRIVACY_MIGRATION,
)
