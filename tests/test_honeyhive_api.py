"""HoneyHive's REST endpoints over plain HTTP: shapes, ordering, mapping rules and bad input."""

from __future__ import annotations

import uuid

import pytest
from tests.otlp_payloads import json_request, new_span_id, new_trace_id

from tracehive.server.auth import KEYS_FILE, KeyRing
from tracehive.server.limits import TRUNCATION_MARKER


def hh_span(session_id: str, project: str, name: str, parent_id: str | None = None, **attributes) -> dict:
    """A span the way the HoneyHive SDK makes it."""
    base = {"honeyhive.session_id": session_id, "honeyhive.project": project, "honeyhive.source": "dev",
            "traceloop.association.properties.session_id": session_id, "honeyhive_event_type": "tool"}  # fmt: skip
    return {"trace_id": new_trace_id(), "span_id": new_span_id(), "parent_id": parent_id, "name": name,
            "attributes": {**base, **attributes}}  # fmt: skip


def send_spans(client, spans: list[dict]) -> None:
    response = client.post("/opentelemetry/v1/traces", json=json_request(spans))
    assert response.status_code == 200, response.text


def start(client, **session) -> str:
    response = client.post("/session/start", json={"session": session})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert {"session_id", "org_id", "workspace_id", "project_id"} <= answer.keys()
    return answer["session_id"]


@pytest.fixture
def client(server):
    with server.client() as http:
        yield http


@pytest.fixture
def project() -> str:
    return f"hh-{uuid.uuid4().hex[:8]}"


def test_enrichment_lands_on_the_session_before_and_after_its_spans(server, client, project):
    session_id = start(client, session_name="s", source="dev", project=project)
    update = {"event_id": session_id, "user_properties": {"user_id": "u1", "prefs": {"theme": "dark"}}}
    assert client.put("/events", json=update).json() == {"success": True}
    send_spans(client, [hh_span(session_id, project, "__main__.step", **{"honeyhive_inputs.x": 1})])
    update = {"event_id": session_id, "user_properties": {"prefs": {"lang": "en"}}, "metadata": {"inputs": {"q": 1}}}
    assert client.put("/events", json=update).status_code == 200

    session = server.get(f"/api/v1/sessions/{session_id}")
    assert (session["project"], session["session_name"], session["source"]) == (project, "s", "dev")
    assert session["user_properties"] == {"user_id": "u1", "prefs": {"theme": "dark", "lang": "en"}}
    assert (session["inputs"], session["metadata"]) == ({"q": 1}, {})
    assert [(e["event_name"], e["inputs"]) for e in session["events"]] == [("step", {"x": 1})]


def test_a_session_start_may_name_its_id_and_a_project_key_is_held_to_its_project(server, client, project):
    chosen = str(uuid.uuid4())
    assert start(client, session_id=chosen, project=project) == chosen
    key = KeyRing(server.data_dir / KEYS_FILE).create(f"key-{project}", project)
    with server.client(key) as keyed:
        answer = keyed.post("/session/start", json={"session": {}}).json()
        refused = keyed.post("/session/start", json={"session": {"project": "other"}})
    assert answer["project_id"] == project
    assert server.get(f"/api/v1/sessions/{answer['session_id']}")["project"] == project
    assert refused.status_code == 403 and "other" in refused.json()["detail"]


def test_update_of_an_unknown_id_makes_the_session_and_of_an_event_is_refused(server, client, project):
    orphan = str(uuid.uuid4())
    assert client.put("/events", json={"event_id": orphan, "metrics": {"n": 1}}).status_code == 200
    assert server.get(f"/api/v1/sessions/{orphan}")["metrics"] == {"n": 1}

    session_id = start(client, project=project)
    span = hh_span(session_id, project, "op")
    send_spans(client, [span])
    refused = client.put("/events", json={"event_id": span["span_id"], "metadata": {"a": 1}})
    assert refused.status_code == 409 and "is an event" in refused.json()["detail"]


def test_sdk_error_marker_and_metadata_copies_do_not_become_data(server, client, project):
    session_id = start(client, project=project)
    copies = {"honeyhive_metadata.event_type": "tool", "honeyhive_metadata.k": 1}
    failed = hh_span(session_id, project, "boom", **copies)
    failed["error"] = "ValueError: bad"
    marker = hh_span(session_id, project, "boom_error", honeyhive_error="bad", honeyhive_error_type="ValueError")
    kept = hh_span(session_id, project, "__main__.named", honeyhive_event_name="mine",
                   **{"honeyhive_metadata.event_name": "other"})  # fmt: skip
    plain = {"trace_id": new_trace_id(), "span_id": new_span_id(), "name": "__main__.x",
             "attributes": {"session.id": session_id, "tracehive.project": project}}  # fmt: skip
    send_spans(client, [failed, marker, kept, plain])

    events = {e["event_name"]: e for e in server.get(f"/api/v1/sessions/{session_id}")["events"]}
    assert sorted(events) == ["__main__.x", "boom", "mine"]
    assert events["boom"]["error"] == "ValueError: bad"
    assert events["boom"]["metadata"] == {"k": 1}
    assert events["mine"]["metadata"] == {"event_name": "other"}


def test_export_translates_honeyhive_filters(client, project):
    session_id = start(client, project=project)
    spans = [
        hh_span(session_id, project, "a", **{"honeyhive_metrics.score": 0.9, "honeyhive_feedback.ok": True}),
        hh_span(session_id, project, "b", **{"honeyhive_metrics.score": 0.2, "honeyhive_metadata.tags.0": "x"}),
        hh_span(session_id, project, "c", honeyhive_event_type="model"),
    ]
    spans[1]["parent_id"] = spans[0]["span_id"]
    send_spans(client, spans)

    def names(*filters, **extra) -> list[str]:
        session = {"field": "session_id", "operator": "is", "value": session_id, "type": "string"}
        response = client.post("/v1/events/export", json={"filters": [session, *filters], **extra})
        assert response.status_code == 200, response.text
        return sorted(e["event_name"] for e in response.json()["events"])

    assert names() == ["a", "b", "c"]
    assert names({"field": "metrics.score", "operator": "greater than", "value": "0.5", "type": "number"}) == ["a"]
    assert names({"field": "feedback.ok", "operator": "is", "value": "true", "type": "boolean"}) == ["a"]
    assert names({"field": "event_type", "operator": "is not", "value": "model"}) == ["a", "b"]
    assert names({"field": "metadata.tags", "operator": "contains", "value": "x"}) == ["b"]
    assert names({"field": "event_name", "operator": "not contains", "value": "a"}) == ["b", "c"]
    assert names({"field": "feedback.ok", "operator": "not exists"}) == ["b", "c"]
    assert names(projections=["event_name"]) == ["a", "b", "c"]

    page = client.post("/v1/events/export", json={"filters": [], "project": project, "limit": 2, "page": 2}).json()
    assert (page["totalEvents"], len(page["events"])) == (3, 1)
    child = next(e for e in client.post("/v1/events/export", json={"project": project}).json()["events"]
                 if e["event_name"] == "b")  # fmt: skip
    assert child["parent_id"] == spans[0]["span_id"] and isinstance(child["start_time"], float)


def test_an_event_or_a_session_by_id(client, project):
    session_id = start(client, session_name="named", project=project)
    span = hh_span(session_id, project, "op", **{"honeyhive_user_properties.user_id": "u"})
    send_spans(client, [span])
    event = client.get(f"/v1/events/{span['span_id']}").json()["event"]
    assert (event["event_name"], event["parent_id"], event["user_properties"]) == ("op", session_id, {"user_id": "u"})
    session = client.get(f"/v1/events/{session_id}").json()["event"]
    assert (session["event_type"], session["event_name"], session["event_id"]) == ("session", "named", session_id)
    missing = client.get(f"/v1/events/{uuid.uuid4()}")
    assert missing.status_code == 404 and "no event or session" in missing.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("post", "/session/start", {"session": {"source": 5}}, 400, "session.source"),
        ("post", "/session/start", {}, 400, "session"),
        ("post", "/session/start", {"session": {"start_time": -1}}, 400, "session.start_time"),
        ("put", "/events", {"metadata": {}}, 400, "event_id"),
        ("put", "/events", {"event_id": "x", "metadata": [1]}, 400, "metadata"),
        ("post", "/v1/events/export", {"filters": [{"field": "a", "operator": "near", "value": "1"}]}, 400,
         "filters[0].operator"),
        ("post", "/v1/events/export", {"filters": [{"field": "metrics.n", "operator": "is", "value": "many",
                                                    "type": "number"}]}, 400, "filters[0].value"),
        ("post", "/v1/events/export", {"filters": [{"field": "colour", "operator": "is", "value": "1"}]}, 400,
         "colour"),
        ("post", "/v1/events/export", {"limit": 0}, 400, "limit"),
        ("post", "/v1/events/export", {"filters": [{"field": "event_type", "operator": "is", "value": "session"}]},
         400, "filters[0]: exporting sessions"),
        ("post", "/events", {"event": {}}, 400, "event.event_name"),
        ("post", "/events", {"event": {"event_name": "e", "event_type": "session"}}, 400, "event.event_type"),
        ("post", "/events/batch", {}, 404, "does not support"),
        ("post", "/v1/sessions/abc/events/batch", {}, 404, "does not support"),
    ],
)  # fmt: skip
def test_bad_or_unsupported_requests_are_clear(client, method, path, body, status, says):
    response = getattr(client, method)(path, json=body)
    assert response.status_code == status, response.text
    assert says in response.json()["detail"]


def test_session_writes_keep_ingest_limits(server, client, project):
    deep: dict = {}
    node = deep
    for _ in range(40):
        node["d"] = {}
        node = node["d"]
    refused = client.post("/session/start", json={"session": {"project": project, "metadata": deep}})
    assert refused.status_code == 400 and "nested deeper" in refused.json()["detail"]
    session_id = start(client, project=project)
    assert client.put("/events", json={"event_id": session_id, "metadata": {"long": "x" * 70_000}}).status_code == 200
    assert server.get(f"/api/v1/sessions/{session_id}")["metadata"]["long"].endswith(TRUNCATION_MARKER)


def test_not_json_and_no_key(server, client):
    response = client.post("/session/start", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["detail"].startswith("body:")
    with server.client("th-unknown") as stranger:
        assert stranger.post("/session/start", json={"session": {}}).status_code == 401
        assert stranger.post("/events", json={}).status_code == 401


def test_create_event_stores_a_finished_event_in_its_session(server, client, project):
    session_id = start(client, project=project)
    body = {"event": {"project": project, "session_id": session_id, "event_name": "lookup", "event_type": "tool",
                      "inputs": {"q": 1}, "outputs": {"a": 2}, "metadata": {"k": True}, "duration": 250,
                      "error": "boom"}}  # fmt: skip
    answer = client.post("/events", json=body).json()
    assert answer["success"] is True
    stored = server.get(f"/api/v1/events/{answer['event_id']}")
    assert (stored["session_id"], stored["event_name"], stored["event_type"], stored["error"]) == (
        session_id, "lookup", "tool", "boom",
    )  # fmt: skip
    assert (stored["inputs"], stored["outputs"], stored["metadata"]) == ({"q": 1}, {"a": 2}, {"k": True})
    assert stored["duration_ms"] == 250
