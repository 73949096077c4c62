"""The DuckDB filter cases, compiled to ClickHouse SQL and run in chDB: same rows, same matches."""

from __future__ import annotations

import json

import clickhouse_connect
import pyarrow as pa
import pytest
from tests.filter_cases import ALL, INJECTED_USER, INJECTION_ATTEMPTS, MATCH_CASES, NOT_EQUAL_CASES, SESSIONS

from tracehive.filters import EVENT_FIELDS, SESSION_FIELDS, parse
from tracehive.model import NAMESPACES
from tracehive.store.clickhouse_filter import to_clickhouse_sql

_JSON_COLUMNS = ", ".join(f"{ns} String" for ns in NAMESPACES)
_TIME = pa.timestamp("us", tz="UTC")


@pytest.fixture(scope="module")
def ch(chdb_dsn):
    client = clickhouse_connect.get_client(dsn=chdb_dsn)
    client.command("CREATE DATABASE filters")
    client.command(
        "CREATE TABLE filters.sessions (session_id String, session_name Nullable(String), source Nullable(String),"
        " user_id Nullable(String), start_time Nullable(DateTime64(6, 'UTC')), end_time Nullable(DateTime64(6, 'UTC')),"
        f" duration_ms Nullable(Float64), event_count UInt64, error_count UInt64, {_JSON_COLUMNS})"
        " ENGINE = MergeTree ORDER BY session_id"
    )
    columns = {
        "session_id": [r["session_id"] for r in SESSIONS],
        "session_name": ["chat"] * len(SESSIONS),
        "source": ["test"] * len(SESSIONS),
        "user_id": [r["user_id"] for r in SESSIONS],
        "start_time": pa.array([r["start_time"] for r in SESSIONS], pa.timestamp("us")).cast(_TIME),
        "end_time": pa.nulls(len(SESSIONS), _TIME),
        "duration_ms": [float(r["duration_ms"]) for r in SESSIONS],
        "event_count": pa.array([1] * len(SESSIONS), pa.uint64()),
        "error_count": pa.array([0] * len(SESSIONS), pa.uint64()),
        **{ns: [json.dumps(r.get(ns, {})) for r in SESSIONS] for ns in NAMESPACES},
    }
    client.insert_arrow("filters.sessions", pa.table(columns))
    client.command(
        "CREATE TABLE filters.events (event_id String, session_id String, trace_id String, parent_id Nullable(String),"
        " event_type String, event_name String, error Nullable(String), start_time Nullable(DateTime64(6, 'UTC')),"
        f" end_time Nullable(DateTime64(6, 'UTC')), duration_ms Float64, {_JSON_COLUMNS})"
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


def matching(ch, table: str, text: str) -> set[str]:
    fields, key = (SESSION_FIELDS, "session_id") if table == "sessions" else (EVENT_FIELDS, "event_id")
    sql, params = to_clickhouse_sql(parse(text), fields)
    return {r[0] for r in ch.query(f"SELECT {key} FROM filters.{table} WHERE {sql}", parameters=params).result_rows}


def sessions(ch, text: str) -> set[str]:
    return matching(ch, "sessions", text)


def events(ch, text: str) -> set[str]:
    return matching(ch, "events", text)


@pytest.mark.parametrize(("text", "expected"), MATCH_CASES)
def test_filter_matches_as_on_duckdb(ch, text, expected):
    assert sessions(ch, text) == expected


@pytest.mark.parametrize(("field", "literal"), NOT_EQUAL_CASES)
def test_not_equal_is_the_exact_complement_of_equal(ch, field, literal):
    equal = sessions(ch, f"{field} = {literal}")
    assert sessions(ch, f"{field} != {literal}") == ALL - equal
    assert sessions(ch, f"not {field} = {literal}") == ALL - equal


def test_event_fields(ch):
    assert events(ch, "parent_id = null") == {"e1"}
    assert events(ch, "error exists") == {"e2"}
    assert events(ch, 'error contains "timeout" and parent_id = "e1"') == {"e2"}
    assert events(ch, 'not error exists and session_id = "s1"') == {"e1", "e3"}


@pytest.mark.parametrize("text", INJECTION_ATTEMPTS)
def test_injection_attempts_match_nothing_and_change_nothing(ch, text):
    sql, params = to_clickhouse_sql(parse(text), SESSION_FIELDS)
    assert "OR TRUE" not in sql and "DROP" not in sql and "1=1" not in sql
    assert all(f"{{{name}:" in sql for name in params)
    assert sessions(ch, text) == set()
    assert ch.query("SELECT count() FROM filters.sessions").result_rows[0][0] == len(SESSIONS)


def test_stored_injection_text_is_just_a_value(ch):
    assert sessions(ch, f"user_id = {json.dumps(INJECTED_USER)}") == {"s4"}


def test_a_value_used_twice_is_bound_once():
    sql, params = to_clickhouse_sql(parse('metadata.a = "x" or metadata.b = "x"'), SESSION_FIELDS)
    assert params == {"f0": "a", "f1": "x", "f2": "b"}
    assert sql.count("{f1:String}") == 2
