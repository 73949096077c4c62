"""Filters compiled to DuckDB SQL and run against a real DuckDB file."""

import json
from datetime import datetime

import duckdb
import pytest

from tracehive.filters import EVENT_FIELDS, SESSION_FIELDS, FilterError, parse
from tracehive.model import NAMESPACES
from tracehive.store.duckdb_filter import to_duckdb_sql

INJECTED_USER = "x'; DROP TABLE sessions; --"

SESSIONS = [
    {
        "session_id": "s1",
        "user_id": "u1",
        "start_time": datetime(2026, 1, 1, 10),
        "duration_ms": 1500,
        "user_properties": {
            "is_beta": True,
            "age": 25,
            "plan": "pro",
            "preferences": {"theme": "Dark", "langs": ["en", "fr"], "ui": {"font": {"size": 14}}},
        },
        "metadata": {
            "http.status": 200,
            "tags": ["alpha", "beta", 3, True, None],
            "flag": None,
            "score": 0.5,
            'quote"key': "q",
            "it's": 1,
            "a/b": "slash",
            "a~b": "tilde",
            "": "empty",
        },
    },
    {
        "session_id": "s2",
        "user_id": "u2",
        "start_time": datetime(2025, 12, 31, 22),
        "duration_ms": 20,
        "user_properties": {"is_beta": "true", "age": "25", "plan": "free"},
        "metadata": {"http.status": 500, "tags": ["Alpha", 3.0], "flag": False, "score": 2},
    },
    {
        "session_id": "s3",
        "user_id": None,
        "start_time": datetime(2026, 2, 1),
        "duration_ms": 300,
        "user_properties": {"is_beta": False, "age": 25.0, "preferences": {"theme": "light"}},
        "metadata": {"tags": "alpha beta", "big": 9007199254740993, "neg": -3},
    },
    {"session_id": "s4", "user_id": INJECTED_USER, "start_time": datetime(2026, 3, 1), "duration_ms": 0},
]
ALL = {"s1", "s2", "s3", "s4"}


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # booleans match only JSON booleans
        ("user_properties.is_beta = true", {"s1"}),
        ('user_properties.is_beta = "true"', {"s2"}),
        ("user_properties.is_beta = false", {"s3"}),
        ("user_properties.is_beta != true", {"s2", "s3", "s4"}),
        # numbers match numbers, whatever their JSON spelling, and never strings
        ("user_properties.age = 25", {"s1", "s3"}),
        ("user_properties.age = 25.0", {"s1", "s3"}),
        ('user_properties.age = "25"', {"s2"}),
        ("user_properties.age != 25", {"s2", "s4"}),
        ("user_properties.age > 24", {"s1", "s3"}),
        ("user_properties.age >= 25", {"s1", "s3"}),
        ("user_properties.age < 25", set()),
        ("user_properties.age <= 25.5", {"s1", "s3"}),
        ("metadata.score > 1", {"s2"}),
        ("metadata.score < 1", {"s1"}),
        ("metadata.score < 1e1", {"s1", "s2"}),
        ("metadata.neg = -3", {"s3"}),
        ("metadata.neg < -2.5", {"s3"}),
        # integers beyond 2**53 compare exactly
        ("metadata.big = 9007199254740993", {"s3"}),
        ("metadata.big = 9007199254740992", set()),
        ("metadata.big > 9007199254740992", {"s3"}),
        # strings compare lexically, case-sensitively
        ('user_properties.plan > "free"', {"s1"}),
        ('user_properties.plan <= "free"', {"s2"}),
        ("user_properties.plan > 1", set()),
        # nested paths, list indexes, quoted keys
        ('user_properties.preferences.theme = "Dark"', {"s1"}),
        ('user_properties.preferences.theme = "dark"', set()),
        ("user_properties.preferences.ui.font.size = 14", {"s1"}),
        ('user_properties.preferences.langs.1 = "fr"', {"s1"}),
        ("user_properties.preferences.langs.2 exists", set()),
        ('metadata.tags.0 = "alpha"', {"s1"}),
        ('metadata."http.status" >= 500', {"s2"}),
        ('metadata."http.status" exists', {"s1", "s2"}),
        (r'metadata."quote\"key" = "q"', {"s1"}),
        ('metadata."it\'s" = 1', {"s1"}),
        ('metadata."a/b" = "slash"', {"s1"}),
        ('metadata."a~b" = "tilde"', {"s1"}),
        ('metadata."" = "empty"', {"s1"}),
        # null, exists, and missing fields
        ("metadata.flag exists", {"s1", "s2"}),
        ("not metadata.flag exists", {"s3", "s4"}),
        ("metadata.flag = null", {"s1"}),
        ("metadata.flag != null", {"s2", "s3", "s4"}),
        ("metadata.flag = false", {"s2"}),
        ("metadata.missing = 1", set()),
        ("metadata.missing != 1", ALL),
        ("metadata.missing exists", set()),
        ("not (metadata.missing > 1)", ALL),
        ("metadata exists", ALL),
        # contains: substring on strings, typed membership on lists
        ('user_properties.preferences.theme contains "ARK"', {"s1"}),
        ('metadata.tags contains "alpha"', {"s1", "s3"}),
        ('metadata.tags contains "Alpha"', {"s2", "s3"}),
        ('metadata.tags contains "ph"', {"s3"}),
        ("metadata.tags contains 3", {"s1", "s2"}),
        ('metadata.tags contains "3"', set()),
        ("metadata.tags contains true", {"s1"}),
        ("metadata.tags contains null", {"s1"}),
        ('user_properties.preferences contains "Dark"', set()),
        ('not metadata.tags contains "beta"', {"s2", "s4"}),
        # scalar columns
        ('user_id = "u1"', {"s1"}),
        ("user_id = null", {"s3"}),
        ("user_id != null", {"s1", "s2", "s4"}),
        ('user_id != "u1"', {"s2", "s3", "s4"}),
        ('user_id contains "U"', {"s1", "s2"}),
        ("user_id = 1", set()),
        ("user_id exists", {"s1", "s2", "s4"}),
        ('user_id > "u1"', {"s2", "s4"}),
        ("duration_ms > 100", {"s1", "s3"}),
        ("duration_ms = 20", {"s2"}),
        ('duration_ms = "20"', set()),
        ("duration_ms contains 2", set()),
        ("event_count = 1 and error_count = 0", ALL),
        # time columns read ISO-8601 strings and epoch milliseconds
        ('start_time >= "2026-01-01T00:00:00Z"', {"s1", "s3", "s4"}),
        ('start_time < "2026-01-01"', {"s2"}),
        ('start_time = "2026-01-01T11:00:00+01:00"', {"s1"}),
        ('start_time < "2026-01-01T00:00:00+02:00"', set()),
        ("start_time >= 1767225600000", {"s1", "s3", "s4"}),
        ("start_time = 1767261600000.0", {"s1"}),
        ("end_time = null", ALL),
        ("end_time exists", set()),
        ("start_time = true", set()),
        # boolean combinations
        ('user_properties.plan = "pro" or user_properties.plan = "free"', {"s1", "s2"}),
        ("user_properties.age = 25 and not user_properties.is_beta = true", {"s3"}),
        ("not (user_properties.age = 25 or metadata.flag exists)", {"s4"}),
        ("(metadata.score < 1 or metadata.score > 1) and metadata.tags contains 3", {"s1", "s2"}),
        ("not not user_id = null", {"s3"}),
    ],
)
def test_filter_matches(db, text, expected):
    assert sessions(db, text) == expected


@pytest.mark.parametrize(
    ("field", "literal"),
    [
        ("user_properties.age", "25"),
        ("user_properties.is_beta", "true"),
        ("metadata.tags.0", '"alpha"'),
        ("metadata.flag", "null"),
        ("metadata.missing", "0"),
        ("user_id", '"u1"'),
        ("user_id", "null"),
        ("start_time", '"2026-01-01T10:00:00Z"'),
    ],
)
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


@pytest.mark.parametrize(
    "text",
    [
        "user_properties.plan = \"x' OR '1'='1\"",
        "user_properties.plan = 'pro\\' OR TRUE --'",
        'user_properties.plan contains "%\' OR 1=1 --"',
        'metadata."x\') OR TRUE --" exists',
        'metadata."\\") OR TRUE; DROP TABLE sessions; --" = 1',
        'metadata."$[*]" exists',
        "metadata.\"*\" contains 'a'",
        'user_id = "x\' OR user_id IS NOT NULL --"',
    ],
)
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
