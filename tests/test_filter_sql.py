"""The filter language compiled to both stores' SQL and run on real engines: DuckDB (a file) and
ClickHouse (chDB). The same rows give the same matches on both."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import clickhouse_connect
import duckdb
import pyarrow as pa
import pytest
from tests.filter_cases import ALL, INJECTED_USER, INJECTION_ATTEMPTS, MATCH_CASES, NOT_EQUAL_CASES, SESSIONS

from tracehive.filters import EVENT_FIELDS, SESSION_FIELDS, FilterError, parse
from tracehive.model import NAMESPACES
from tracehive.store.clickhouse_filter import to_clickhouse_sql
from tracehive.store.duckdb_filter import to_duckdb_sql

_CH_JSON_COLUMNS = ", ".join(f"{ns} String" for ns in NAMESPACES)
_CH_TIME = pa.timestamp("us", tz="UTC")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("filters") / "filters.duckdb"
    con = duckdb.connect(str(path))
    json_columns = ", ".join(f"{ns} JSON" for ns in NAMESPACES)
    con.execute(
        "CREATE TABLE sessions (session_id VARCHAR, session_name VARCHAR, source VARCHAR, user_id VARCHAR,"
        " start_time TIMESTAMP, end_time TIMESTAMP, duration_ms DOUBLE, event_count BIGINT,"
        f" error_count BIGINT, {json_columns})"
    )
    for row in SESSIONS:
        namespaces = [json.dumps(row.get(ns, {})) for ns in NAMESPACES]
        con.execute(
            f"INSERT INTO sessions VALUES (?, 'chat', 'test', ?, ?, NULL, ?, 1, 0, {', '.join('?' * 7)})",
            [row["session_id"], row["user_id"], row["start_time"], row["duration_ms"], *namespaces],
        )
    con.execute(
        "CREATE TABLE events (event_id VARCHAR, session_id VARCHAR, trace_id VARCHAR, parent_id VARCHAR,"
        " event_type VARCHAR, event_name VARCHAR, error VARCHAR, start_time TIMESTAMP, end_time TIMESTAMP,"
        f" duration_ms DOUBLE, {json_columns})"
    )
    empty = [json.dumps({})] * len(NAMESPACES)
    for event_id, parent_id, error in [("e1", None, None), ("e2", "e1", "Timeout"), ("e3", "e1", None)]:
        con.execute(
            f"INSERT INTO events VALUES (?, 's1', 't1', ?, 'tool', 'step', ?, NULL, NULL, 1, {', '.join('?' * 7)})",
            [event_id, parent_id, error, *empty],
        )
    yield con
    con.close()


@pytest.fixture(scope="module")
def ch(chdb_dsn):
    client = clickhouse_connect.get_client(dsn=chdb_dsn)
    client.command("CREATE DATABASE filters")
    client.command(
        "CREATE TABLE filters.sessions (session_id String, session_name Nullable(String), source Nullable(String),"
        " user_id Nullable(String), start_time Nullable(DateTime64(6, 'UTC')), end_time Nullable(DateTime64(6, 'UTC')),"
        f" duration_ms Nullable(Float64), event_count UInt64, error_count UInt64, {_CH_JSON_COLUMNS})"
        " ENGINE = MergeTree ORDER BY session_id"
    )
    columns = {
        "session_id": [r["session_id"] for r in SESSIONS],
        "session_name": ["chat"] * len(SESSIONS),
        "source": ["test"] * len(SESSIONS),
        "user_id": [r["user_id"] for r in SESSIONS],
        "start_time": pa.array([r["start_time"] for r in SESSIONS], pa.timestamp("us")).cast(_CH_TIME),
        "end_time": pa.nulls(len(SESSIONS), _CH_TIME),
        "duration_ms": [float(r["duration_ms"]) for r in SESSIONS],
        "event_count": pa.array([1] * len(SESSIONS), pa.uint64()),
        "error_count": pa.array([0] * len(SESSIONS), pa.uint64()),
        **{ns: [json.dumps(r.get(ns, {})) for r in SESSIONS] for ns in NAMESPACES},
    }
    client.insert_arrow("filters.sessions", pa.table(columns))
    client.command(
        "CREATE TABLE filters.events (event_id String, session_id String, trace_id String, parent_id Nullable(String),"
        " event_type String, event_name String, error Nullable(String), start_time Nullable(DateTime64(6, 'UTC')),"
        f" end_time Nullable(DateTime64(6, 'UTC')), duration_ms Float64, {_CH_JSON_COLUMNS})"
        " ENGINE = MergeTree ORDER BY event_id"
    )
    for event_id, parent_id, error in [("e1", None, None), ("e2", "e1", "Timeout"), ("e3", "e1", None)]:
        client.command(
            "INSERT INTO filters.events (event_id, session_id, trace_id, parent_id, event_type, event_name, error,"
            " duration_ms) VALUES ({e:String}, 's1', 't1', {p:Nullable(String)}, 'tool', 'step',"
            " {x:Nullable(String)}, 1)",
            parameters={"e": event_id, "p": parent_id, "x": error},
        )
    yield client
    client.command("DROP DATABASE filters SYNC")
    client.close()


@dataclass
class Engine:
    """One engine's way to run a compiled filter over the test tables."""

    compile: Callable
    select: Callable[[str, str, str, object], list]  # (table, key column, where, params) -> rows

    def matching(self, table: str, text: str) -> set[str]:
        fields, key = (SESSION_FIELDS, "session_id") if table == "sessions" else (EVENT_FIELDS, "event_id")
        sql, params = self.compile(parse(text), fields)
        return {row[0] for row in self.select(table, key, sql, params)}

    def sessions(self, text: str) -> set[str]:
        return self.matching("sessions", text)


@pytest.fixture(scope="module", params=["duckdb", "chdb"])
def engine(request) -> Engine:
    if request.param == "duckdb":
        db = request.getfixturevalue("db")
        return Engine(to_duckdb_sql, lambda t, k, sql, p: db.execute(f"SELECT {k} FROM {t} WHERE {sql}", p).fetchall())
    ch = request.getfixturevalue("ch")
    return Engine(
        to_clickhouse_sql,
        lambda t, k, sql, p: ch.query(f"SELECT {k} FROM filters.{t} WHERE {sql}", parameters=p).result_rows,
    )


@pytest.mark.parametrize(("text", "expected"), MATCH_CASES)
def test_filter_matches(engine, text, expected):
    assert engine.sessions(text) == expected


@pytest.mark.parametrize(("field", "literal"), NOT_EQUAL_CASES)
def test_not_equal_is_the_exact_complement_of_equal(engine, field, literal):
    equal = engine.sessions(f"{field} = {literal}")
    assert engine.sessions(f"{field} != {literal}") == ALL - equal
    assert engine.sessions(f"not {field} = {literal}") == ALL - equal


def test_event_fields(engine):
    assert engine.matching("events", "parent_id = null") == {"e1"}
    assert engine.matching("events", "error exists") == {"e2"}
    assert engine.matching("events", 'error contains "timeout" and parent_id = "e1"') == {"e2"}
    assert engine.matching("events", 'not error exists and session_id = "s1"') == {"e1", "e3"}


@pytest.mark.parametrize("text", INJECTION_ATTEMPTS)
def test_injection_attempts_match_nothing_and_change_nothing(engine, text):
    sql, _ = engine.compile(parse(text), SESSION_FIELDS)
    assert "OR TRUE" not in sql and "DROP" not in sql and "1=1" not in sql
    assert engine.sessions(text) == set()
    assert len(engine.sessions("session_id exists")) == len(SESSIONS)


def test_stored_injection_text_is_just_a_value(engine):
    assert engine.sessions(f"user_id = {json.dumps(INJECTED_USER)}") == {"s4"}


@pytest.mark.parametrize("text", INJECTION_ATTEMPTS)
def test_clickhouse_binds_every_value(text):
    sql, params = to_clickhouse_sql(parse(text), SESSION_FIELDS)
    assert all(f"{{{name}:" in sql for name in params)


def test_no_filter_matches_everything():
    assert to_duckdb_sql(None, SESSION_FIELDS) == ("TRUE", [])
    assert to_duckdb_sql(parse("  "), SESSION_FIELDS) == ("TRUE", [])


def test_unknown_field_lists_the_known_ones():
    with pytest.raises(FilterError) as info:
        to_duckdb_sql(parse('metadata.x = 1 and foo.bar = "x"'), SESSION_FIELDS)
    assert info.value.message.startswith("unknown field 'foo' (known: session_id, session_name,")
    assert info.value.position == 19


def test_event_only_fields_are_unknown_on_sessions():
    with pytest.raises(FilterError, match="unknown field 'parent_id'"):
        to_duckdb_sql(parse("parent_id = null"), SESSION_FIELDS)


def test_scalar_columns_have_no_sub_fields():
    with pytest.raises(FilterError, match="'user_id' is a string and has no sub-fields") as info:
        to_duckdb_sql(parse("not user_id.name exists"), SESSION_FIELDS)
    assert info.value.position == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('a = 1 or start_time > "yesterday"', "'yesterday' is not an ISO-8601 time"),
        ("a = 1 or start_time > 1e300", "out of range for a time"),
    ],
)
def test_bad_times_are_filter_errors(text, message):
    with pytest.raises(FilterError, match=message) as info:
        to_duckdb_sql(parse(text), {"a": "number", "start_time": "time"})
    assert info.value.position == 9


def test_field_mappings_cover_the_model():
    for ns in NAMESPACES:
        assert SESSION_FIELDS[ns] == EVENT_FIELDS[ns] == "json"
    assert SESSION_FIELDS["start_time"] == EVENT_FIELDS["end_time"] == "time"
    assert set(SESSION_FIELDS.values()) | set(EVENT_FIELDS.values()) == {"string", "number", "time", "json"}


def test_a_value_used_twice_is_bound_once():
    sql, params = to_clickhouse_sql(parse('metadata.a = "x" or metadata.b = "x"'), SESSION_FIELDS)
    assert params == {"f0": "a", "f1": "x", "f2": "b"}
    assert sql.count("{f1:String}") == 2
