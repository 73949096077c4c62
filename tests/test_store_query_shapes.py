"""The DuckDB store's faster query shapes give exactly what a full scan gives.

Filtered listings scan the newest sessions first and widen the window until a page is full; the
users view picks its page before aggregating; a session's events are looked up within its time
span. These tests use a real DuckDB file with a small first window so every widening step runs.
"""

from __future__ import annotations

import pytest

from tracehive.filters import parse
from tracehive.model import Batch, Event, SessionUpdate
from tracehive.store import duckdb as duckdb_store
from tracehive.store.base import Cursor, SessionQuery
from tracehive.store.columns import Rows
from tracehive.store.duckdb import DuckDBStore

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


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    opened = DuckDBStore(tmp_path_factory.mktemp("shapes") / "store.duckdb")
    opened.write(Rows.of(_batch()))
    yield opened
    opened.close()


@pytest.fixture(autouse=True)
def small_first_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(duckdb_store, "_FIRST_SCAN_DEPTH", 2)


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
