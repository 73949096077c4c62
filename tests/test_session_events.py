"""A session's events: paged in the store, the API and the dashboard (a 20,000-event session was a
10.6 MB answer), and events whose parent links form a cycle shown at the top level, marked."""

from __future__ import annotations

import re
from collections.abc import Iterator

import clickhouse_connect
import httpx
import pytest
from tests.browser import follow, log_in, needs_chromium
from tests.conftest import Server, start_server
from tests.otlp_payloads import new_span_id, new_trace_id, protobuf_request
from tests.store_scenario import SECOND, T0, event

from tracehive import attributes as A
from tracehive.model import Batch
from tracehive.server.api import DEFAULT_EVENTS_LIMIT, event_tree
from tracehive.store.clickhouse import ClickHouseStore
from tracehive.store.columns import Rows
from tracehive.store.duckdb import DuckDBStore

BACKENDS = ("duckdb", "clickhouse")
BIG = 20_000
PROTOBUF = {"Content-Type": "application/x-protobuf"}


def flatten(nodes: list[dict]) -> list[dict]:
    found = []
    for node in nodes:
        found.append(node)
        found += flatten(node["children"])
    return found


# --- the store pages a session's events, on both backends -------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, tmp_path_factory, chdb_dsn):
    if request.param == "duckdb":
        opened = DuckDBStore(tmp_path_factory.mktemp("events") / "events.duckdb")
    else:
        opened = ClickHouseStore(clickhouse_connect.get_client(dsn=chdb_dsn), database="session_events")
    many = [event("many", f"m{i:04d}", T0 + i * SECOND // 10) for i in range(250)]
    # a is its own parent; b and c are each other's; d hangs under b; e is a plain root with child f
    cycles = [
        event("cyc", "a", T0, parent="a"),
        event("cyc", "b", T0 + SECOND, parent="c"),
        event("cyc", "c", T0 + 2 * SECOND, parent="b"),
        event("cyc", "d", T0 + 3 * SECOND, parent="b"),
        event("cyc", "e", T0 + 4 * SECOND),
        event("cyc", "f", T0 + 5 * SECOND, parent="e"),
    ]
    opened.write(Rows.of(Batch(events=many + cycles)))
    yield opened
    opened.close()


def test_the_store_gives_a_session_events_a_page_at_a_time(store):
    everything = store.get_session("many", ("web",))
    assert everything["event_count"] == 250 and len(everything["events"]) == 250
    pages = [store.get_session("many", ("web",), 100, offset)["events"] for offset in (0, 100, 200, 300)]
    assert [len(p) for p in pages] == [100, 100, 50, 0]
    assert [e["event_id"] for p in pages for e in p] == [f"m{i:04d}" for i in range(250)]


def test_events_in_a_parent_cycle_are_roots_marked_and_all_counted(store):
    session = store.get_session("cyc", ("web",))
    tree = event_tree(session["events"])
    roots = {node["event_id"]: node for node in tree}
    assert set(roots) == {"a", "b", "c", "e"}
    assert {name for name, node in roots.items() if node["parent_cycle"]} == {"a", "b", "c"}
    assert [child["event_id"] for child in roots["b"]["children"]] == ["d"]
    assert [child["event_id"] for child in roots["e"]["children"]] == ["f"]
    assert len(flatten(tree)) == session["event_count"] == 6


def test_a_long_parent_chain_ending_in_a_cycle():
    chain = [{"event_id": str(i), "parent_id": str(i - 1)} for i in range(1, 3000)]
    chain.append({"event_id": "0", "parent_id": "2999"})  # one cycle through all 3,000 events
    chain.append({"event_id": "x", "parent_id": "1500"})
    tree = event_tree(chain)
    assert len(tree) == 3000 and all(node["parent_cycle"] for node in tree)
    assert len(flatten(tree)) == 3001


# --- the API and the dashboard ------------------------------------------------------------------------------------


# The API's part is the same code on either store, whose paging the tests above check on both: one
# server (on DuckDB) is enough here, and a chDB server's first inserts cost it 20 s more.
@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("paged"), "--ingest-workers", "0")
    trace_id = new_trace_id()
    span_ids = [new_span_id() for _ in range(BIG)]
    base = 1_780_000_000 * SECOND
    spans = [
        {
            "trace_id": trace_id,
            "span_id": span_ids[i],
            "parent_id": span_ids[i - 1] if i % 50 else (span_ids[0] if i else None),
            "name": f"step {i}",
            "start_ns": base + i * 1_000_000,
            "end_ns": base + i * 1_000_000 + 500_000,
            "attributes": {A.SESSION_ID: "big", A.NAMESPACE_PREFIX + "inputs.text": "x" * 300},
        }
        for i in range(BIG)
    ]
    cycle = [  # a span parented to itself, and two parented to each other
        {"trace_id": trace_id, "span_id": "a" * 16, "parent_id": "a" * 16, "name": "self"},
        {"trace_id": trace_id, "span_id": "b" * 16, "parent_id": "c" * 16, "name": "ping"},
        {"trace_id": trace_id, "span_id": "c" * 16, "parent_id": "b" * 16, "name": "pong"},
    ]
    with running.client() as client:
        for first in range(0, BIG, 5000):
            body = protobuf_request(spans[first : first + 5000])
            assert client.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200
        for span in cycle:
            span["attributes"] = {A.SESSION_ID: "cyc", A.PROJECT: "loops"}
        assert client.post("/v1/traces", content=protobuf_request(cycle), headers=PROTOBUF).status_code == 200
    yield running
    running.stop()


def test_a_session_of_20000_events_is_answered_a_page_at_a_time(served):
    with served.client() as client:
        first = client.get("/api/v1/sessions/big")
    assert first.status_code == 200
    answer = first.json()
    assert answer["event_count"] == BIG
    assert answer["events_shown"] == len(flatten(answer["events"])) == DEFAULT_EVENTS_LIMIT
    assert answer["events_truncated"] is True and answer["next_events_offset"] == DEFAULT_EVENTS_LIMIT
    assert len(first.content) < 1_000_000, f"{len(first.content)} bytes"
    seen: list[str] = []
    offset = 0
    while offset is not None:
        page = served.get("/api/v1/sessions/big", events_limit=5000, events_offset=offset)
        seen += [e["event_id"] for e in flatten(page["events"])]
        offset = page["next_events_offset"]
    assert len(seen) == len(set(seen)) == BIG
    with served.client() as client:
        too_many = client.get("/api/v1/sessions/big", params={"events_limit": 10_001})
    assert too_many.status_code == 400 and "events_limit" in too_many.json()["detail"]


def test_the_api_shows_events_of_a_parent_cycle_at_the_top(served):
    answer = served.get("/api/v1/sessions/cyc", project="loops")
    assert answer["event_count"] == 3 and len(flatten(answer["events"])) == 3
    assert {(e["event_name"], e["parent_cycle"]) for e in answer["events"]} == {
        ("self", True), ("ping", True), ("pong", True)
    }  # fmt: skip
    assert answer["events_truncated"] is False and answer["next_events_offset"] is None


@needs_chromium
def test_the_session_page_says_how_many_events_it_hides_and_pages_on(served, browser):
    context = browser.new_context(base_url=served.url)
    tab = context.new_page()
    tab.goto("/sessions/big")
    log_in(tab, served.key, landing=r"/sessions/big")
    note = tab.locator(".events-pages")
    assert note.inner_text().startswith(f"Showing events 1 to 1000 of {BIG} ({BIG - 1000} not shown).")
    assert tab.locator("ol.tree li").count() == 1000
    follow(tab.locator(".events-pages a[rel=next]"))
    tab.wait_for_url(re.compile(r"events=1000"))
    assert tab.locator(".events-pages").inner_text().startswith(f"Showing events 1001 to 2000 of {BIG}")
    assert tab.locator("ol.tree .name").first.inner_text().endswith("step 1000")
    follow(tab.locator("ol.tree a").nth(3))  # an event of this page, selected on this page
    assert tab.locator("section.detail h2").inner_text().startswith("step 1003")
    assert "events=1000" in tab.url
    tab.goto("/sessions/cyc?project=loops")
    assert tab.locator("ol.tree li").count() == 3
    assert tab.locator("ol.tree li.depth-0 .cycle").count() == 3
    assert tab.locator(".events-pages").count() == 0
    for bad in ("-1", "x", str(10**12)):
        assert tab.goto(f"/sessions/big?events={bad}").status == 400
        assert "events: expected a count of events" in tab.locator(".error").inner_text()
    context.close()


def test_a_bad_events_offset_is_a_clear_error(served):
    cookie_less = httpx.get(f"{served.url}/api/v1/sessions/big", params={"events_offset": -1},
                            headers={"Authorization": f"Bearer {served.key}"})  # fmt: skip
    assert cookie_less.status_code == 400 and "events_offset" in cookie_less.json()["detail"]
    with served.client() as client:
        huge = client.get("/api/v1/sessions/big", params={"events_offset": 2**64})
    assert huge.status_code == 400 and "events_offset" in huge.json()["detail"]
