"""The ingest log: a request is answered once its batch is synced to the log, the store takes the
batches that gathered in one transaction, and a crash loses nothing acknowledged and counts
nothing twice. Small and interleaved requests, sessions spread over many requests in any order,
kill -9 in the middle of them; and the log's own recovery (a torn record, replay past the store's
position, segments dropped once stored)."""

from __future__ import annotations

import pickle
import random
import threading
import time

import httpx
from tests.conftest import ADMIN_KEY, start_server
from tests.otlp_payloads import new_span_id, new_trace_id, protobuf_request
from tests.test_durability import kill_9_under_load

from tracehive.model import Batch, Event, SessionUpdate
from tracehive.store.base import QueryBudget
from tracehive.store.columns import Rows
from tracehive.store.duckdb import DuckDBStore
from tracehive.store.ingest_log import ingest_log_for
from tracehive.store.writer import BulkWriter

HEADERS = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {ADMIN_KEY}"}
SESSIONS = [f"long-session-{n}" for n in range(12)]


def send_small_requests(url: str, seed: int, acknowledged: dict[str, set[str]], stop: threading.Event) -> None:
    """Requests of 1 to 4 spans, each span in a session picked at random: every session is spread
    over many requests from several clients, in no order. Records the spans of every 200."""
    rng = random.Random(seed)
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            spans = [{"trace_id": new_trace_id(), "span_id": new_span_id(),
                      "attributes": {"session.id": rng.choice(SESSIONS), "user.id": f"user-{rng.randrange(3)}"}}
                     for _ in range(rng.randint(1, 4))]  # fmt: skip
            try:
                response = client.post(f"{url}/v1/traces", content=protobuf_request(spans), headers=HEADERS)
            except httpx.HTTPError:
                return
            if response.status_code == 200:
                for span in spans:
                    acknowledged.setdefault(span["attributes"]["session.id"], set()).add(span["span_id"])


def test_small_interleaved_requests_survive_kill_9_and_count_once(tmp_path):
    acknowledged: dict[str, set[str]] = {}
    kill_9_under_load(tmp_path, lambda url, seed, stop: send_small_requests(url, seed, acknowledged, stop),
                      lambda: sum(len(spans) for spans in acknowledged.values()), clients=4)  # fmt: skip
    server = start_server(tmp_path)
    try:
        sessions = {sid: server.get(f"/api/v1/sessions/{sid}") for sid in acknowledged}
    finally:
        server.stop()
    assert sum(len(spans) for spans in acknowledged.values()) >= 30, "the load never got going"
    for sid, spans in acknowledged.items():
        stored = [event["event_id"] for event in sessions[sid]["events"]]
        assert spans <= set(stored), f"{sid}: {len(spans - set(stored))} acknowledged spans lost"
        # Replayed records are not counted again: the session's count is its events, each once.
        assert len(stored) == len(set(stored)) == sessions[sid]["event_count"]


def test_a_read_after_an_answer_sees_the_write(tmp_path):
    server = start_server(tmp_path)
    try:
        with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
            for n in range(30):
                trace = new_trace_id()
                body = protobuf_request([{"trace_id": trace, "span_id": new_span_id()}])
                assert client.post(f"{server.url}/v1/traces", content=body, headers=HEADERS).status_code == 200
                found = client.get(f"{server.url}/api/v1/sessions/{trace}")
                assert found.status_code == 200, (n, found.text)
                assert found.json()["event_count"] == 1
    finally:
        server.stop()


def rows_of(session: str, events: int, first: int = 0) -> Rows:
    batch = Batch(
        events=[Event(project="p", event_id=f"{session}-{n}", session_id=session, trace_id=None, parent_id=None,
                      event_type="tool", event_name="step", start_ns=n * 10**9,
                      end_ns=n * 10**9 + 5, namespaces={"inputs": {"n": n}}) for n in range(first, first + events)],
        sessions=[SessionUpdate(project="p", session_id=session, session_name="chat",
                                namespaces={"user_properties": {"user_id": "u1", "plan": "pro"}})],
    )  # fmt: skip
    return Rows.of(batch)


def traced(event_id: str, trace_id: str, session_id: str | None) -> Rows:
    """One span of ``trace_id``; with no session it names none (its session is the trace's, joined later)."""
    event = Event(project="p", event_id=event_id, session_id=session_id or trace_id, trace_id=trace_id,
                  parent_id=None, event_type="tool", event_name="step", start_ns=10**9, end_ns=10**9 + 5,
                  session_from_trace=session_id is None)  # fmt: skip
    return Rows.of(Batch(events=[event]))


def test_a_record_survives_encoding():
    for rows in (rows_of("s", 3), traced("e1", "t1", "s1"), traced("e2", "t1", None), Rows.empty()):
        again = Rows.from_bytes(rows.to_bytes())
        assert again.events.equals(rows.events)
        assert again.sessions == rows.sessions
        assert again.totals == rows.totals
        assert (again.claims, again.orphans) == (rows.claims, rows.orphans)
        crossed = pickle.loads(pickle.dumps(rows))  # from a worker process to the server
        assert crossed.events.equals(rows.events) and crossed == rows


def test_recovery_joins_a_span_to_the_session_its_trace_named(tmp_path):
    """A span that named no session, logged but not yet in the store when the server died, still
    joins the session another span of its trace named (the log kept the trace claims)."""
    store = DuckDBStore(tmp_path / "t.duckdb")
    log = ingest_log_for(store)
    log.append([traced("e1", "t1", "s1").to_bytes(), traced("e2", "t1", None).to_bytes()])
    log.close()
    BulkWriter(store, ingest_log=ingest_log_for(store)).close()
    assert store.get_session("s1", None)["event_count"] == 2
    assert store.get_session("t1", None) is None
    store.close()


def test_recovery_writes_what_the_store_lacks_once_and_cuts_a_torn_record(tmp_path):
    store = DuckDBStore(tmp_path / "t.duckdb")
    log = ingest_log_for(store)
    # The server died after syncing three batches, before the store took any of them ...
    assert (
        log.append([rows_of("a", 2).to_bytes(), rows_of("b", 1).to_bytes(), rows_of("a", 3, first=2).to_bytes()]) == 3
    )
    log.close()
    # ... and in the middle of appending a fourth, which was never answered.
    segment = next(log.folder.iterdir())
    segment.write_bytes(segment.read_bytes() + b"\x04\x00\x00\x00\x00\x00\x00\x00\xff\xff")
    for _ in range(2):  # a second start finds everything stored and writes nothing again
        writer = BulkWriter(store, ingest_log=ingest_log_for(store))
        writer.close()
        assert store.log_position() == 3
        assert store.get_session("a", None)["event_count"] == 5
        assert store.get_session("b", None)["event_count"] == 1
    # The log goes on after the cut-off record.
    writer = BulkWriter(store, ingest_log=ingest_log_for(store))
    assert writer.submit(rows_of("c", 1)).result(10) is None
    writer.close()
    assert store.log_position() == 4
    assert store.get_session("c", None)["event_count"] == 1
    store.close()


def test_stored_segments_are_deleted(tmp_path, monkeypatch):
    monkeypatch.setattr("tracehive.store.ingest_log._SEGMENT_BYTES", 1)  # a segment per append
    store = DuckDBStore(tmp_path / "t.duckdb")
    log = ingest_log_for(store)
    writer = BulkWriter(store, ingest_log=log)
    for n in range(5):
        writer.submit(rows_of(f"s{n}", 1)).result(10)
        if n == 3:
            waiting = writer.caught_up()
            if waiting is not None:
                waiting.result(10)
            assert len(list(log.folder.iterdir())) == 1  # only the newest, being appended to
    writer.close()
    assert store.log_position() == 5
    assert list(log.folder.iterdir()) == []  # a clean stop leaves none
    store.close()


def test_a_record_the_store_has_no_memory_for_is_waited_for_not_passed_over(tmp_path, caplog):
    """Acknowledged is stored: a logged batch DuckDB cannot take within its memory bound now (queries
    may be holding it) is written once memory is free, never dropped."""
    big = Rows.of(Batch(sessions=[SessionUpdate("p", f"big-{n}", start_ns=10**18 + n,
                                                namespaces={"metadata": {"u": ["y" * 60_000] * 8}})
                                  for n in range(60)]))  # fmt: skip
    store = DuckDBStore(tmp_path / "t.duckdb", QueryBudget(30, 32))
    writer = BulkWriter(store, ingest_log=ingest_log_for(store))
    assert writer.submit(big).result(10) is None  # synced to the log: acknowledged
    deadline = time.monotonic() + 30
    while "out of memory" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "out of memory" in caplog.text
    store._db.execute("SET memory_limit = '1GB'")  # the memory is free again
    waiting = writer.caught_up()
    if waiting is not None:
        waiting.result(30)
    writer.close()
    assert store.get_session("big-59", None)["metadata"]["u"][7] == "y" * 60_000
    store.close()
