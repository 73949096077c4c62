"""Filters compiled to DuckDB SQL and run against a real DuckDB file."""

import json

import duckdb
import pytest
from tests.filter_cases import ALL, INJECTED_USER, INJECTION_ATTEMPTS, MATCH_CASES, NOT_EQUAL_CASES, SESSIONS

from tracehive.filters import EVENT_FIELDS, SESSION_FIELDS, FilterError, parse
from tracehive.model import NAMESPACES
from tracehive.store.duckdb_filter import to_duckdb_sql


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


def sessions(db, text: str) -> set[str]:
    sql, params = to_duckdb_sql(parse(text), SESSION_FIELDS)
    return {row[0] for row in db.execute(f"SELECT session_id FROM sessions WHERE {sql}", params).fetchall()}


def events(db, text: str) -> set[str]:
    sql, params = to_duckdb_sql(parse(text), EVENT_FIELDS)
    return {row[0] for row in db.execute(f"SELECT event_id FROM events WHERE {sql}", params).fetchall()}


@pytest.mark.parametrize(("text", "expected"), MATCH_CASES)
def test_filter_matches(db, text, expected):
    assert sessions(db, text) == expected


@pytest.mark.parametrize(("field", "literal"), NOT_EQUAL_CASES)
def test_not_equal_is_the_exact_complement_of_equal(db, field, literal):
    equal = sessions(db, f"{field} = {literal}")
    assert sessions(db, f"{field} != {literal}") == ALL - equal
    assert sessions(db, f"not {field} = {literal}") == ALL - equal


def test_event_fields(db):
    assert events(db, "parent_id = null") == {"e1"}
    assert events(db, "error exists") == {"e2"}
    assert events(db, 'error contains "timeout" and parent_id = "e1"') == {"e2"}
    assert events(db, 'not error exists and session_id = "s1"') == {"e1", "e3"}


def test_no_filter_matches_everything(db):
    assert to_duckdb_sql(None, SESSION_FIELDS) == ("TRUE", [])
    assert to_duckdb_sql(parse("  "), SESSION_FIELDS) == ("TRUE", [])


@pytest.mark.parametrize("text", INJECTION_ATTEMPTS)
def test_injection_attempts_match_nothing_and_change_nothing(db, text):
    sql, _ = to_duckdb_sql(parse(text), SESSION_FIELDS)
    assert "OR TRUE" not in sql and "DROP" not in sql and "1=1" not in sql
    assert sessions(db, text) == set()
    assert db.execute("SELECT count(*) FROM sessions").fetchone()[0] == len(SESSIONS)


def test_stored_injection_text_is_just_a_value(db):
    assert sessions(db, f"user_id = {json.dumps(INJECTED_USER)}") == {"s4"}


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
