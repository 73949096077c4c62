"""The DuckDB store's faster query shapes give exactly what a full scan gives.

Filtered listings scan the newest sessions first and widen the window until a page is full; the
users view picks its page before aggregating; a session's events are looked up within its time
span; group keys on a namespace's top-level key are read from the key maps kept at write time
instead of parsing each session's JSON. These tests use a real DuckDB file with a small first
window so every widening step runs, and compare group answers with ones that parse the JSON.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from tracehive.filters import Field, parse
from tracehive.model import USAGE_FIELDS, Batch, Event, SessionUpdate
from tracehive.store import duckdb_reads, duckdb_schema
from tracehive.store.base import Cursor, SessionQuery
from tracehive.store.columns import SESSION_COLUMNS, Rows
from tracehive.store.duckdb import DuckDBStore
from tracehive.store.duckdb_filter import json_pointer, quote_column
from tracehive.store.migrations import SCHEMA_TABLE

SECOND_NS = 10**9
SESSIONS = 60
ALL_PLANS = ("free", "pro")


def _batch() -> Batch:
    """Sessions 0..59, one a second; only sessions 0..3 (the oldest) are on the "rare" plan, and
    several sessions share a start time so that ties are crossed by pages."""
    batch = Batch()
    for n in range(SESSIONS):
        start = (1_767_225_600 + (n // 3) * 60) * SECOND_NS
        plan = "rare" if n < 4 else ALL_PLANS[n % 2]
        sid = f"s{n:03d}"
        batch.sessions.append(
            SessionUpdate(
                "p", sid, start_ns=start, namespaces={"user_properties": {"user_id": f"u{n % 7}", "plan": plan}}
            )
        )
        for i in range(3):
            batch.events.append(
                Event(
                    "p",
                    f"{sid}-e{i}",
                    sid,
                    "t" * 32,
                    None if i == 0 else f"{sid}-e0",
                    "tool",
                    f"step {i}",
                    start + i * SECOND_NS,
                    start + (i + 1) * SECOND_NS,
                )
            )
    return batch


def _enrichment() -> Batch:
    """A second write: sessions 10..19 change plan (so their key maps must follow), others gain
    objects, nulls, numbers, a key "0" and inputs; session 40's metadata holds the key "1" twice
    (a non-string key beside a string one), which no map can hold."""
    batch = Batch()
    for n in range(10, 40):
        values: dict[str, Any] = {"plan": "team"} if n < 20 else {"prefs": {"theme": ("dark", "light")[n % 2]}}
        if n % 5 == 0:
            values["tier"] = None
        if n >= 30:
            values.update({"0": n % 3, "tier": 1e20 if n % 2 else "gold"})
        inputs = {"question": f"q{n % 4}"}
        batch.sessions.append(SessionUpdate("p", f"s{n:03d}", namespaces={"user_properties": values, "inputs": inputs}))
    batch.sessions.append(SessionUpdate("p", "s040", namespaces={"metadata": {1: "one", "1": "uno"}}))
    return batch


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    opened = DuckDBStore(tmp_path_factory.mktemp("shapes") / "store.duckdb")
    opened.write(Rows.of(_batch()))
    opened.write(Rows.of(_enrichment()))
    yield opened
    opened.close()


@pytest.fixture(autouse=True)
def small_first_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(duckdb_reads, "_FIRST_SCAN_DEPTH", 2)


def _full_scan_ids(store: DuckDBStore, where: str) -> list[str]:
    rows = store._cursor().execute(
        f"SELECT session_id FROM sessions WHERE {where} ORDER BY start_time DESC NULLS LAST, session_id DESC"
    )
    return [r[0] for r in rows.fetchall()]


def _pages(store: DuckDBStore, text: str, limit: int) -> list[str]:
    """Every session a filter selects, read page by page through cursors."""
    seen: list[str] = []
    cursor = None
    while True:
        rows = store.list_sessions(SessionQuery(("p",), parse(text), limit=limit, cursor=cursor))
        seen += [r["session_id"] for r in rows]
        if len(rows) < limit:
            return seen
        last = store._cursor().execute("SELECT start_time FROM sessions WHERE session_id = ?",
                                       [rows[-1]["session_id"]]).fetchone()[0]  # fmt: skip
        cursor = Cursor(last, rows[-1]["session_id"])


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('user_properties.plan = "rare"', "json_extract_string(user_properties, '$.plan') = 'rare'"),
        ('user_properties.plan = "pro"', "json_extract_string(user_properties, '$.plan') = 'pro'"),
        ('user_properties.plan = "none"', "FALSE"),
    ],
)
@pytest.mark.parametrize("limit", [1, 3, 50])
def test_filtered_pages_match_a_full_scan(store: DuckDBStore, text: str, where: str, limit: int) -> None:
    expected = _full_scan_ids(store, where)
    assert _pages(store, text, limit) == expected
    first = store.list_sessions(SessionQuery(("p",), parse(text), limit=limit))
    assert [r["session_id"] for r in first] == expected[:limit]


def test_users_view_pages_and_counts(store: DuckDBStore) -> None:
    users = store.list_users(SessionQuery(("p",), None, limit=3))
    full = (
        store._cursor()
        .execute(
            "SELECT user_id, count(*), sum(event_count), max(end_time) AS last FROM sessions "
            "GROUP BY user_id ORDER BY last DESC, user_id LIMIT 3"
        )
        .fetchall()
    )
    assert [(u["user_id"], u["session_count"], u["event_count"]) for u in users] == [
        (user_id, sessions, events) for user_id, sessions, events, _ in full
    ]
    latest = (
        store._cursor()
        .execute(
            "SELECT user_properties ->> '$.plan' FROM sessions WHERE user_id = ? ORDER BY start_time DESC LIMIT 1",
            [users[0]["user_id"]],
        )
        .fetchone()[0]
    )
    assert users[0]["user_properties"]["plan"] == latest


def test_session_tree_has_all_its_events(store: DuckDBStore) -> None:
    for sid in ("s000", "s031", "s059"):
        session = store.get_session(sid, ("p",))
        assert [e["event_id"] for e in session["events"]] == [f"{sid}-e0", f"{sid}-e1", f"{sid}-e2"]
        assert session["event_count"] == 3


GROUP_FIELDS = {
    "top-level, changed by a later write": Field("user_properties", ("plan",)),
    "top-level objects": Field("user_properties", ("prefs",)),
    "null, numbers and strings": Field("user_properties", ("tier",)),
    "the key 0 (a pointer's index is a key on an object)": Field("user_properties", (0,)),
    "absent everywhere": Field("user_properties", ("nope",)),
    "nested: parsed from the JSON": Field("user_properties", ("prefs", "theme")),
    "a namespace without key maps": Field("inputs", ("question",)),
}


def _parsed_group_key(field: Field) -> tuple[str, list[Any]]:
    """The group key as parsing each session's JSON gives it: the store's answer before key maps."""
    return f"CAST(json_extract({quote_column(field.column)}, ?) AS VARCHAR)", [json_pointer(field.path)]


def _group_answers(store: DuckDBStore, field: Field) -> tuple[list, dict]:
    query = SessionQuery(("p",), None)
    return store.group_sessions(query, field), store.session_timeseries(query, 600, field, max_groups=2)


@pytest.mark.parametrize("field", GROUP_FIELDS.values(), ids=GROUP_FIELDS.keys())
def test_group_keys_match_parsing_the_json(store: DuckDBStore, monkeypatch: pytest.MonkeyPatch, field: Field) -> None:
    groups, series = _group_answers(store, field)
    assert groups and series["points"]
    monkeypatch.setattr(duckdb_reads, "_group_key", _parsed_group_key)
    assert _group_answers(store, field) == (groups, series)


def test_key_maps_hold_every_top_level_key(store: DuckDBStore) -> None:
    """Each map has its namespace's keys, and the values of the latest write; the one text with a
    key twice has none, and its keys group as missing."""
    differ = " + ".join(
        f"count(*) FILTER (list_sort(map_keys({ns}_keys)) IS DISTINCT FROM list_sort(json_keys({ns})))"
        for ns in duckdb_schema.MAPPED_NAMESPACES
    )
    assert store._cursor().execute(f"SELECT {differ} FROM sessions WHERE session_id != 's040'").fetchone() == (0,)
    found = store._cursor().execute(
        "SELECT user_properties_keys['plan'], user_properties_keys['tier'], metadata_keys "
        "FROM sessions WHERE session_id IN ('s015', 's040') ORDER BY session_id"
    )
    assert found.fetchall() == [('"team"', None, {}), ('"free"', None, None)]
    groups = store.group_sessions(SessionQuery(("p",), parse('session_id = "s040"')), Field("metadata", ("1",)))
    assert [(g["missing"], g["sessions"]) for g in groups] == [(True, 1)]


def _key_maps(store: DuckDBStore) -> list[tuple]:
    maps = ", ".join(f"{ns}_keys" for ns in duckdb_schema.MAPPED_NAMESPACES)
    return store._cursor().execute(f"SELECT session_id, {maps} FROM sessions ORDER BY session_id").fetchall()


def test_migration_fills_the_key_maps_of_an_older_file(store: DuckDBStore, tmp_path) -> None:
    """A file from before key maps (schema version 1) gets them on opening, the same as a file
    written with them, and answers alike."""
    path = tmp_path / "version1.duckdb"
    version1 = [column for column in SESSION_COLUMNS if column not in USAGE_FIELDS]
    sessions = store._cursor().sql(f"SELECT {', '.join(version1)} FROM sessions").to_arrow_table()
    with duckdb.connect(str(path)) as old:
        old.execute(duckdb_schema.SCHEMA)
        old.execute(f"CREATE TABLE {SCHEMA_TABLE} (version INTEGER NOT NULL, description VARCHAR)")
        old.execute(f"INSERT INTO {SCHEMA_TABLE} VALUES (1, 'sessions and events')")
        old.register("old_sessions", sessions)
        old.execute("INSERT INTO sessions SELECT * FROM old_sessions")
    migrated = DuckDBStore(path)
    try:
        versions = migrated._cursor().execute(f"SELECT version FROM {SCHEMA_TABLE} ORDER BY version").fetchall()
        assert versions == [(m.version,) for m in duckdb_schema.MIGRATIONS]
        assert _key_maps(migrated) == _key_maps(store)
        for field in GROUP_FIELDS.values():
            assert _group_answers(migrated, field) == _group_answers(store, field)
    finally:
        migrated.close()
