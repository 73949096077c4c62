"""The DuckDB store's schema: its tables, the statements its writes share, and the migrations that
bring an older file up to date (see :mod:`~tracehive.store.migrations`)."""

from __future__ import annotations

from tracehive.model import MODEL_EVENT_TYPE, NAMESPACES, USAGE_FIELDS
from tracehive.store.columns import SESSION_COLUMNS
from tracehive.store.duckdb_filter import DUCKDB
from tracehive.store.duckdb_privacy import MIGRATION as PRIVACY_MIGRATION
from tracehive.store.migrations import Migration
from tracehive.store.usage import usage_sql

_NS_COLUMNS = ", ".join(f"{ns} JSON" for ns in NAMESPACES)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS sessions (
    project VARCHAR NOT NULL, session_id VARCHAR NOT NULL, session_name VARCHAR, source VARCHAR,
    user_id VARCHAR, start_time TIMESTAMP, end_time TIMESTAMP, duration_ms DOUBLE,
    event_count BIGINT, error_count BIGINT, {_NS_COLUMNS},
    PRIMARY KEY (project, session_id)
);
{{events}}
CREATE INDEX IF NOT EXISTS events_by_session ON events (project, session_id);
"""
_EVENTS_TABLE = f"""
CREATE TABLE {{name}} (
    project VARCHAR NOT NULL, event_id VARCHAR NOT NULL, session_id VARCHAR NOT NULL,
    trace_id VARCHAR, parent_id VARCHAR, event_type VARCHAR, event_name VARCHAR,
    start_time TIMESTAMP, end_time TIMESTAMP, duration_ms DOUBLE, error VARCHAR, {_NS_COLUMNS},
    PRIMARY KEY ({{key}})
);"""
SCHEMA = SCHEMA.format(events=_EVENTS_TABLE.format(name="IF NOT EXISTS events", key="project, event_id"))


def key_map(ns: str) -> str:
    """The sessions column mapping each top-level key of namespace ``ns`` to its value's JSON text."""
    return f"{ns}_keys"


# Key maps let a group key on a top-level key read one map entry instead of parsing the namespace's
# JSON in every session on every query. DuckDB fills them from the JSON text as the session is
# written, so new and migrated rows hold the same text json_extract gives; a JSON null is an SQL
# NULL under a present key. The inner cast makes the text JSON (a VARCHAR would be read as DuckDB's
# own map literal). A text with a key twice, which only Python code mixing keys like 1 and "1" can
# write, gets no map: its top-level keys group as missing (json_extract reads the first of the two,
# get_session shows the second). Building such maps key by key would take a lambda, whose binding
# costs about a millisecond per namespace on every write.
# Only the namespaces that describe a session get maps: inputs and outputs are its payload, free
# text nobody groups by, which a map would store a second time (and each map costs every write).
MAPPED_NAMESPACES = tuple(ns for ns in NAMESPACES if ns not in ("inputs", "outputs"))
KEY_MAPS = {key_map(ns): f"TRY_CAST(CAST({ns} AS JSON) AS MAP(VARCHAR, JSON))" for ns in MAPPED_NAMESPACES}
# Writes name their columns: the key maps, derived from the namespaces, come after them.
INSERT_SESSIONS = (
    f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}, {', '.join(KEY_MAPS)}) "
    f"SELECT {', '.join(SESSION_COLUMNS)}, {', '.join(KEY_MAPS.values())} FROM incoming_sessions"
)
_USAGE_COLUMNS = dict(zip(USAGE_FIELDS, ("BIGINT DEFAULT 0",) * 4 + ("DOUBLE",), strict=True))
# The usage of a stored model event, in SQL (see tracehive.store.usage).
EVENT_USAGE = ", ".join(
    f"{sql} AS {name}" for sql, name in zip(usage_sql(DUCKDB), ("prompt", "completion", "total", "cost"), strict=True)
)
# Sessions stored before the roll-ups get them from their stored model events.
_BACKFILL_USAGE = f"""
UPDATE sessions SET model_calls = u.calls, prompt_tokens = u.prompt, completion_tokens = u.completion,
    total_tokens = u.total, cost = u.cost
FROM (
    SELECT project AS p, session_id AS s, count(*) AS calls, sum(prompt) AS prompt,
        sum(completion) AS completion, sum(total) AS total, sum(cost) AS cost
    FROM (SELECT project, session_id, {EVENT_USAGE} FROM events
          WHERE event_type = '{MODEL_EVENT_TYPE}')
    GROUP BY project, session_id
) AS u
WHERE sessions.project = u.p AND sessions.session_id = u.s
"""
# The counts and model roll-ups of the sessions in the registered table ``recounted``, from their
# stored events (after an erase took some of them away); parameters: the project, twice.
RECOUNT_SESSIONS = f"""
UPDATE sessions SET event_count = c.events, error_count = c.errors, model_calls = c.calls,
    prompt_tokens = c.prompt, completion_tokens = c.completion, total_tokens = c.total, cost = c.cost
FROM (
    SELECT r.session_id AS s, count(e.session_id) AS events, count(*) FILTER (WHERE e.error IS NOT NULL) AS errors,
        count(*) FILTER (WHERE e.model) AS calls, coalesce(sum(e.prompt) FILTER (WHERE e.model), 0) AS prompt,
        coalesce(sum(e.completion) FILTER (WHERE e.model), 0) AS completion,
        coalesce(sum(e.total) FILTER (WHERE e.model), 0) AS total, sum(e.cost) FILTER (WHERE e.model) AS cost
    FROM recounted r LEFT JOIN (
        SELECT session_id, error, event_type = '{MODEL_EVENT_TYPE}' AS model, {EVENT_USAGE}
        FROM events WHERE project = ?
    ) e ON e.session_id = r.session_id
    GROUP BY r.session_id
) AS c
WHERE sessions.project = ? AND sessions.session_id = c.s
"""
# Dashboard logins (tracehive.server.logins): the token's hash, the key's hash, the logout form's
# token, and when the login expires (epoch seconds).
_LOGINS = """
CREATE TABLE IF NOT EXISTS logins (
    token_digest VARCHAR PRIMARY KEY, key_digest VARCHAR NOT NULL, csrf VARCHAR NOT NULL, expires_at DOUBLE NOT NULL
)
"""
MIGRATIONS = (
    # Version 1 is the schema files made before versioning had; IF NOT EXISTS adopts them as they are.
    Migration(1, "sessions and events", (SCHEMA,)),
    # Each map is added empty, then retyped from its namespace: DuckDB rewrites the column in about
    # a second per 100,000 sessions and keeps the table's row groups (and so the time ranges a
    # filtered listing skips by), which a rebuilt table loses.
    Migration(
        2,
        "sessions: maps of the top-level keys of each namespace but inputs and outputs",
        tuple(
            statement
            for column, sql in KEY_MAPS.items()
            for statement in (
                f"ALTER TABLE sessions ADD COLUMN {column} VARCHAR",
                f"ALTER TABLE sessions ALTER {column} TYPE MAP(VARCHAR, JSON) USING ({sql})",
            )
        ),
    ),
    Migration(3, "dashboard logins: hashed token, key hash, logout token, expiry", (_LOGINS,)),
    Migration(
        4,
        "sessions: model calls, tokens and cost of their model events",
        (
            *(f"ALTER TABLE sessions ADD COLUMN {name} {kind}" for name, kind in _USAGE_COLUMNS.items()),
            _BACKFILL_USAGE,
        ),
    ),
    # A span id is unique within its session only (ClickHouse's events were keyed so from the
    # start): a client reusing one in another session must not lose either. DuckDB cannot change a
    # primary key in place, so the table is copied (about a second per million events).
    Migration(
        5,
        "events: unique per (project, session_id, event_id)",
        (
            _EVENTS_TABLE.format(name="events_rekeyed", key="project, session_id, event_id"),
            "INSERT INTO events_rekeyed SELECT * FROM events",
            "DROP INDEX events_by_session",
            "DROP TABLE events",
            "ALTER TABLE events_rekeyed RENAME TO events",
            "CREATE INDEX events_by_session ON events (project, session_id)",
        ),
    ),
    # Sessions across requests: which session each trace named first, so that a span of the trace
    # that named none joins it, in whichever request it comes. No key: an index would cost every write
    # (a quarter of its time at 500 spans); the store's filter of claimed traces keeps it to one row
    # a trace and lets lookups, which only late spans of such traces need, skip the table mostly.
    Migration(
        6,
        "trace_sessions: the session each trace names",
        (
            "CREATE TABLE IF NOT EXISTS trace_sessions (project VARCHAR NOT NULL, trace_id VARCHAR NOT NULL, "
            "session_id VARCHAR NOT NULL)",
        ),
    ),
    Migration(
        7,
        "project_prices: each project's own model prices (USD per million tokens, JSON)",
        (
            "CREATE TABLE IF NOT EXISTS project_prices (project VARCHAR NOT NULL, model VARCHAR NOT NULL, "
            "price JSON NOT NULL, PRIMARY KEY (project, model))",
        ),
    ),
    # The last ingest log position the file holds, written in the same transaction as the batch
    # (see tracehive.store.ingest_log); a file made before the log holds none of it.
    Migration(
        8,
        "ingest log position",
        (
            "CREATE TABLE IF NOT EXISTS ingest_log (applied BIGINT NOT NULL)",
            "INSERT INTO ingest_log SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM ingest_log)",
        ),
    ),
    PRIVACY_MIGRATION,
)
