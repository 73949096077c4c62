"""Issue 12, what one tenant's writes must not do, on DuckDB and on ClickHouse (chDB): values that
cannot be stored poison no transaction (finding 1), strings outside namespaces are cut and ids
bounded (4), and a span id stored in another session is kept in both (11)."""

from __future__ import annotations

import json

import orjson
import pytest
from tests.otlp_payloads import json_request, new_span_id, new_trace_id, protobuf_request
from tests.tenants import PROTOBUF

from tracehive.model import Batch, Event, SessionUpdate
from tracehive.server.limits import TRUNCATION_MARKER, Limits
from tracehive.store.columns import Rows

BIG = 2**64  # the 18446744073709551616
BELOW = -(2**63) - 1  # the issue's -9223372036854775809
HUGE = 10**399  # a 400-digit integer
CUT = Limits().max_value_length


def otlp_json(attributes: dict, **span) -> dict:
    return json_request([{"trace_id": new_trace_id(), "span_id": new_span_id(), "attributes": attributes, **span}])


def raw_int_attribute(key: str, digits: str) -> bytes:
    """An OTLP JSON request whose attribute ``key`` is an intValue of ``digits`` (a JSON number)."""
    document = otlp_json({key: 0})
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"][0]["value"] = {"intValue": "@"}
    return orjson.dumps(document).replace(b'"@"', digits.encode())


# (how it is sent, the body, the answer: 200 = stored as a double, or the 400 and what it names)
POISON = {
    "session-start-above": ("/session/start", {"session": {"session_id": "poison-1", "metrics": {"x": BIG}}}, 200),
    "session-start-below": ("/session/start", {"session": {"metrics": {"x": BELOW}}}, 200),
    "session-start-400-digits": ("/session/start", {"session": {"metrics": {"x": HUGE}}}, (400, "metrics.x")),
    "put-events-feedback": ("PUT /events", {"event_id": "poison-2", "feedback": {"rating": BIG}}, 200),
    "put-events-feedback-below": ("PUT /events", {"event_id": "poison-3", "feedback": {"r": {"s": [BELOW]}}}, 200),
    "put-events-400-digits": (
        "PUT /events",
        {"event_id": "poison-4", "feedback": {"rating": HUGE}},
        (400, "feedback.rating"),
    ),
    "otlp-json-namespace": ("/v1/traces", otlp_json({"tracehive.metrics": f'{{"x": {BIG}}}'}), 200),
    "otlp-json-namespace-400-digits": (
        "/v1/traces",
        otlp_json({"tracehive.metrics": f'{{"x": {HUGE}}}'}),
        (400, "'tracehive.metrics'"),
    ),
    "otlp-json-int-value": ("/v1/traces", raw_int_attribute("metrics.x", str(BIG)), (400, "attributes[0].value")),
    "otlp-json-int-value-400-digits": ("/v1/traces", raw_int_attribute("metrics.x", str(HUGE)), (400, "column 367")),
}


@pytest.mark.parametrize("case", POISON)
def test_a_value_that_cannot_be_stored_fails_no_other_tenant(tenants, case):
    route, body, expected = POISON[case]
    method, path = route.split() if " " in route else ("POST", route)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    with tenants.client("a") as client:
        response = client.request(method, path, content=content, headers={"Content-Type": "application/json"})
    if expected == 200:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 400 and expected[1] in response.json()["detail"], response.text
    tenants.second_tenant_writes()


def test_an_integer_beyond_64_bits_is_stored_as_a_double(tenants):
    with tenants.client("a") as client:
        started = client.post("/session/start", content=b'{"session": {"metrics": {"x": 18446744073709551616}}}')
        assert started.status_code == 200, started.text
        found = client.get(f"/api/v1/sessions/{started.json()['session_id']}")
        assert found.status_code == 200, found.text
        session = found.json()
    assert session["metrics"] == {"x": float(BIG)}


def test_a_protobuf_namespace_attribute_with_a_huge_integer_is_stored(tenants):
    trace_id = new_trace_id()
    body = protobuf_request([{"trace_id": trace_id, "span_id": new_span_id(),
                              "attributes": {"tracehive.feedback": f'{{"n": {BELOW}}}'}}])  # fmt: skip
    with tenants.client("a") as client:
        assert client.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200
        (event,) = client.get(f"/api/v1/sessions/{trace_id}").json()["events"]
    assert event["feedback"] == {"n": float(BELOW)}
    tenants.second_tenant_writes()


def unstorable_rows(project: str) -> Rows:
    """A batch that passed no limit check: its session update holds an integer orjson cannot write."""
    event = Event(project, new_span_id(), "s-broken", new_trace_id(), None, "tool", "op", 10**18, 10**18 + 1)
    update = SessionUpdate(project, "s-broken", namespaces={"metrics": {"x": BIG}})
    return Rows.of(Batch(events=[event], sessions=[update]))


def test_any_failure_inside_a_store_write_rolls_it_back(tmp_path, chdb_dsn):
    """The store's own guard, below the limit check: whatever fails mid-write leaves nothing of the
    batch and no open transaction behind."""
    from tests.test_store_backends import open_backend

    for backend in ("duckdb", "clickhouse"):
        store = open_backend(backend, tmp_path, chdb_dsn, "rollback")
        try:
            with pytest.raises(TypeError):
                store.write(unstorable_rows("a"))
            assert store.get_session("s-broken", ("a",)) is None
            event = Event("b", new_span_id(), "s-fine", new_trace_id(), None, "tool", "op", 10**18, 10**18 + 1)
            store.write(Rows.of(Batch(events=[event])))
            assert store.get_session("s-fine", ("b",))["event_count"] == 1, backend
        finally:
            store.close()


# --- finding 4: names, errors and types are cut; ids have a length limit ----------------------

LONG = "n" * 1_000_000


def stored_event(tenants, attributes: dict, name: str = "op") -> dict:
    trace_id = new_trace_id()
    body = protobuf_request([{"trace_id": trace_id, "span_id": new_span_id(), "name": name,
                              "attributes": {"tracehive.session_id": trace_id, **attributes}}])  # fmt: skip
    with tenants.client("a") as client:
        response = client.post("/v1/traces", content=body, headers=PROTOBUF)
        assert response.status_code == 200, response.text[:300]
        return client.get(f"/api/v1/sessions/{trace_id}").json()


def is_cut(text: str) -> bool:
    return len(text) == CUT + len(TRUNCATION_MARKER) and text.endswith(TRUNCATION_MARKER)


def test_a_long_span_name_error_and_type_are_cut(tenants):
    session = stored_event(tenants, {"tracehive.error": LONG, "tracehive.event_type": LONG}, name=LONG)
    (event,) = session["events"]
    assert is_cut(event["event_name"]) and is_cut(event["error"]) and is_cut(event["event_type"])


def test_a_long_session_name_and_source_are_cut(tenants):
    session = stored_event(tenants, {"tracehive.record": "session", "tracehive.session_name": LONG,
                                     "tracehive.source": LONG})  # fmt: skip
    assert is_cut(session["session_name"]) and is_cut(session["source"])


@pytest.mark.parametrize("key", ["tracehive.session_id", "session.id", "tracehive.project"])
def test_a_long_id_is_400_naming_it(tenants, key):
    body = protobuf_request([{"trace_id": new_trace_id(), "span_id": new_span_id(), "attributes": {key: LONG}}])
    with tenants.client() as client:  # the admin key may name any project
        response = client.post("/v1/traces", content=body, headers=PROTOBUF)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert ("project" if "project" in key else "session_id") in detail and len(detail) < 300
    tenants.second_tenant_writes()


def test_pages_of_sessions_keep_small_cursors(tenants):
    stored_event(tenants, {})
    stored_event(tenants, {})
    with tenants.client("a") as client:
        page = client.get("/api/v1/sessions", params={"limit": 1}).json()
    assert page["next_cursor"] and len(page["next_cursor"]) < 1000


# --- finding 11: a span id already stored in another session --------------------------------


def test_a_span_id_stored_in_another_session_is_kept_in_both(tenants):
    span_id, first, second = new_span_id(), new_trace_id(), new_trace_id()
    with tenants.client("a") as client:
        for session_id in (first, second):
            body = protobuf_request([{"trace_id": session_id, "span_id": span_id, "name": f"in-{session_id}"}])
            assert client.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200
        for session_id in (first, second):
            found = client.get(f"/api/v1/sessions/{session_id}")
            assert found.status_code == 200, found.text
            assert [e["event_name"] for e in found.json()["events"]] == [f"in-{session_id}"]
            assert found.json()["event_count"] == 1
        ambiguous = client.get(f"/api/v1/events/{span_id}")
        assert ambiguous.status_code == 409 and first in ambiguous.json()["detail"]
        one = client.get(f"/api/v1/events/{span_id}", params={"session_id": second})
        assert one.status_code == 200 and one.json()["event_name"] == f"in-{second}"


def test_one_request_with_a_span_id_in_two_sessions_keeps_both(tenants):
    span_id, first, second = new_span_id(), new_trace_id(), new_trace_id()
    body = protobuf_request([{"trace_id": t, "span_id": span_id} for t in (first, second)])
    with tenants.client("a") as client:
        assert client.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200
        for session_id in (first, second):
            assert client.get(f"/api/v1/sessions/{session_id}").json()["event_count"] == 1


def test_an_older_file_keeps_its_events_and_then_takes_a_span_id_in_two_sessions(tmp_path):
    """Migration 3 copies the events of a file keyed by (project, event_id) into the new key."""
    import duckdb

    from tracehive.store import duckdb as duckdb_store
    from tracehive.store import duckdb_schema
    from tracehive.store.migrations import SCHEMA_TABLE

    path = tmp_path / "version2.duckdb"
    with duckdb.connect(str(path)) as old:
        old.execute(duckdb_schema.SCHEMA)
        old.execute(f"CREATE TABLE {SCHEMA_TABLE} (version INTEGER NOT NULL, description VARCHAR)")
        old.execute(f"INSERT INTO {SCHEMA_TABLE} VALUES (1, 'sessions and events')")
        old.execute("INSERT INTO events (project, event_id, session_id) VALUES ('a', 'e1', 's1')")
    store = duckdb_store.DuckDBStore(path)
    try:
        assert store.get_event("e1", ("a",))["session_id"] == "s1"
        event = Event("a", "e1", "s2", new_trace_id(), None, "tool", "op", 10**18, 10**18 + 1)
        store.write(Rows.of(Batch(events=[event])))
        assert store.get_event("e1", ("a",), "s2")["session_id"] == "s2"
        assert store.get_session("s2", ("a",))["event_count"] == 1
    finally:
        store.close()


# --- finding 6: the same session id in two projects -------------------------------------------


@pytest.fixture(scope="module")
def shared_id(tenants):
    """Projects a and b each have a session ``shared-<n>`` holding an event of the same span id."""
    session_id, span_id = f"shared-{new_span_id()}", new_span_id()
    for project in ("a", "b"):
        with tenants.client(project) as client:
            started = client.post("/session/start", json={"session": {"session_id": session_id,
                                                                      "metadata": {"owner": project}}})  # fmt: skip
            assert started.status_code == 200, started.text
            body = protobuf_request([{"trace_id": new_trace_id(), "span_id": span_id,
                                      "attributes": {"tracehive.session_id": session_id}}])  # fmt: skip
            assert client.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200
    return session_id, span_id


def names_both(response) -> bool:
    detail = response.json()["detail"]
    return response.status_code == 409 and "'a'" in detail and "'b'" in detail


def test_an_admin_lookup_of_an_id_in_two_projects_is_409_naming_them(tenants, shared_id):
    session_id, span_id = shared_id
    with tenants.client() as admin:
        assert names_both(admin.get(f"/api/v1/sessions/{session_id}"))
        assert names_both(admin.get(f"/api/v1/events/{span_id}"))
        assert names_both(admin.get(f"/v1/events/{session_id}"))
        assert names_both(admin.get(f"/v1/events/{span_id}"))
        assert names_both(admin.put("/events", json={"event_id": session_id, "metadata": {"guess": True}}))
        chosen = admin.get(f"/api/v1/sessions/{session_id}", params={"project": "b"})
        assert chosen.status_code == 200 and chosen.json()["metadata"] == {"owner": "b"}
        event = admin.get(f"/api/v1/events/{span_id}", params={"project": "b"})
        assert event.status_code == 200 and event.json()["project"] == "b"


def test_a_project_key_finds_its_own_of_an_id_in_two_projects(tenants, shared_id):
    session_id, span_id = shared_id
    for project in ("a", "b"):
        with tenants.client(project) as client:
            assert client.get(f"/api/v1/sessions/{session_id}").json()["metadata"] == {"owner": project}
            assert client.get(f"/api/v1/events/{span_id}").json()["project"] == project
            assert client.get(f"/v1/events/{session_id}").json()["event"]["project"] == project
            assert client.put("/events", json={"event_id": session_id, "feedback": {"ok": project}}).status_code == 200
            assert client.get(f"/api/v1/sessions/{session_id}").json()["feedback"] == {"ok": project}
