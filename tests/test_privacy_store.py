"""The stores' privacy operations on both backends: versioned project settings, deleting a user's
sessions with their events (and nothing else), exporting a page of sessions' events, and a scrub
after which a byte scan of the store's files finds no deleted value."""

from __future__ import annotations

import uuid
from pathlib import Path

import clickhouse_connect
import pytest
from tests.conftest import files_holding
from tests.store_scenario import SECOND, T0, event, model_call, update

from tracehive.filters import Compare, Field, parse
from tracehive.model import Batch
from tracehive.store.base import SessionQuery
from tracehive.store.clickhouse import ClickHouseStore
from tracehive.store.columns import Rows
from tracehive.store.duckdb import DuckDBStore


def batches(marker: str) -> list[Batch]:
    """``marker``: a value only the erased user's rows hold, new in every test (chDB's folder is shared)."""
    doomed = {"user_id": "gone", "email": f"{marker}@example.com"}
    return [
        Batch(
            events=[
                event("a1", "a1-e1", T0, inputs={"q": f"question from {marker}"}),
                event("a1", "a1-e2", T0 + SECOND, parent="a1-e1"),
                event("k1", "k1-e1", T0 + 2 * SECOND, inputs={"q": "kept"}),
                # an event of someone else's session that names the erased user
                event("k1", "k1-e2", T0 + 3 * SECOND, user_properties={"user_id": "gone"}),
            ],
            sessions=[update("a1", user_properties=doomed), update("k1", user_properties={"user_id": "kept"})],
        ),
        Batch(events=[event("a2", "a2-e1", T0 + 10 * SECOND)], sessions=[update("a2", user_properties=doomed)]),
    ]


@pytest.fixture(params=["duckdb", "clickhouse"])
def opened(request, tmp_path, chdb_dsn):
    if request.param == "duckdb":
        folder = tmp_path / "data"
        folder.mkdir()
        store = DuckDBStore(folder / "t.duckdb")
    else:
        name = f"privacy_{request.node.name.replace('[', '_').replace(']', '')}"
        store = ClickHouseStore(clickhouse_connect.get_client(dsn=chdb_dsn), database=name)
        folder = Path(chdb_dsn.removeprefix("chdb://")) / "store"  # shared; only this test writes its marker
    marker = f"erase-me-{uuid.uuid4().hex}"
    for batch in batches(marker):
        store.write(Rows.of(batch))
    yield request.param, store, folder, marker
    store.close()


def test_settings_are_versioned(opened):
    _, store, _, _ = opened
    assert store.project_settings() == []
    assert store.save_project_settings("web", '{"redact": []}', "aa", "admin") == 1
    assert store.save_project_settings("web", '{"redact": [1]}', "aa", "admin") == 2
    assert store.save_project_settings("other", "{}", "bb", "key") == 1
    latest = {row["project"]: (row["version"], row["settings"]) for row in store.project_settings()}
    assert latest == {"web": (2, '{"redact": [1]}'), "other": (1, "{}")}
    assert [row["version"] for row in store.project_settings_history("web")] == [2, 1]


def test_delete_a_users_sessions_and_events_only(opened):
    _, store, _, _ = opened
    gone = Compare(Field("user_properties", ("user_id",)), "=", "gone")
    assert store.delete_sessions("web", gone, events_where=gone) == (2, 4)
    left = store.list_sessions(SessionQuery(projects=("web",)))
    assert [s["session_id"] for s in left] == ["k1"]
    kept = store.get_session("k1", ("web",))
    assert [e["event_id"] for e in kept["events"]] == ["k1-e1"]
    assert store.list_sessions(SessionQuery(projects=("web",), filter=parse('user_id = "gone"'))) == []


def test_an_erased_users_events_leave_the_others_session_counted_again(opened):
    """k2 is the kept user's session; one of its model calls, which failed, names the erased user."""
    _, store, _, _ = opened
    theirs = model_call("k2", "k2-e2", T0 + 2 * SECOND, prompt_tokens=100, completion_tokens=50, cost=2.5)
    theirs.error, theirs.namespaces["user_properties"] = "rate limited", {"user_id": "gone"}
    kept_calls = [
        event("k2", "k2-e0", T0, project="llm"),
        model_call("k2", "k2-e1", T0 + SECOND, prompt_tokens=10, completion_tokens=5, cost=0.25),
    ]
    store.write(
        Rows.of(
            Batch(events=[*kept_calls, theirs], sessions=[update("k2", "llm", user_properties={"user_id": "kept"})])
        )
    )
    totals = ("event_count", "error_count", "model_calls", "prompt_tokens", "completion_tokens", "total_tokens", "cost")
    assert [store.get_session("k2", ("llm",))[k] for k in totals] == [3, 1, 2, 110, 55, 165, 2.75]
    gone = Compare(Field("user_properties", ("user_id",)), "=", "gone")
    assert store.delete_sessions("llm", gone, events_where=gone) == (0, 1)
    (listed,) = store.list_sessions(SessionQuery(projects=("llm",)))
    shown = store.get_session("k2", ("llm",))
    assert [shown[k] for k in totals] == [listed[k] for k in totals] == [2, 0, 1, 10, 5, 15, 0.25]
    assert (shown["user_properties"], shown["start_time"]) == ({"user_id": "kept"}, listed["start_time"])


def test_delete_in_bounded_steps_oldest_first(opened):
    _, store, _, _ = opened
    everything = parse("session_id exists")
    assert store.delete_sessions("web", everything, limit=1) == (1, 2)  # a1, the oldest
    assert {s["session_id"] for s in store.list_sessions(SessionQuery(projects=("web",)))} == {"k1", "a2"}


def test_events_of_sessions_for_export(opened):
    _, store, _, marker = opened
    found = store.events_of_sessions([("web", "a1"), ("web", "k1"), ("other", "a1")])
    assert [(e["session_id"], e["event_id"]) for e in found] == [
        ("a1", "a1-e1"), ("a1", "a1-e2"), ("k1", "k1-e1"), ("k1", "k1-e2")
    ]  # fmt: skip
    assert found[0]["inputs"] == {"q": f"question from {marker}"}


def test_scrub_leaves_no_deleted_value_on_disk(opened):
    backend, store, folder, marker = opened
    if backend == "duckdb":
        store.reclaim(scrub=False)  # fold the log into the file, as a running server does
    assert files_holding(folder, marker.encode()), "the marker must be on disk before, or the scan proves nothing"
    gone = Compare(Field("user_properties", ("user_id",)), "=", "gone")
    store.delete_sessions("web", gone, events_where=gone)
    assert store.reclaim(scrub=True)
    assert files_holding(folder, marker.encode()) == []
    assert files_holding(folder, b"kept"), "the other user's data is still there"
    assert [s["session_id"] for s in store.list_sessions(SessionQuery(projects=("web",)))] == ["k1"]
