"""OTLP ingest over real HTTP: both encodings, gzip, the three attribute conventions, bad input."""

from __future__ import annotations

import gzip
import urllib.parse
import uuid

import httpx
import orjson
import pytest
from tests.otlp_payloads import json_request, new_span_id, new_trace_id, protobuf_request

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def post(server, body: bytes, headers: dict, key: str | None = None) -> httpx.Response:
    with server.client(key) as client:
        return client.post("/v1/traces", content=body, headers=headers)


def test_protobuf_span_without_our_attributes_becomes_a_session(server):
    trace_id, root, child = new_trace_id(), new_span_id(), new_span_id()
    body = protobuf_request(
        [
            {"trace_id": trace_id, "span_id": root, "name": "handle", "attributes": {"user.id": "u-plain",
             "http.route": "/ask", "http.status_code": 200}},
            {"trace_id": trace_id, "span_id": child, "parent_id": root, "name": "db", "error": "timeout"},
        ],
        resource={"service.name": "checkout"},
    )  # fmt: skip
    assert post(server, body, PROTOBUF).status_code == 200
    session = server.get(f"/api/v1/sessions/{trace_id}")
    assert session["source"] == "checkout"
    assert session["user_properties"] == {"user_id": "u-plain"}
    assert session["event_count"] == 2 and session["error_count"] == 1
    (handle,) = session["events"]
    assert handle["metadata"] == {"http": {"route": "/ask", "status_code": 200}}
    assert handle["children"][0]["event_name"] == "db"
    assert handle["children"][0]["error"] == "timeout"


def test_session_id_attribute_groups_traces(server):
    session_id = f"sess-{uuid.uuid4()}"
    spans = [
        {"trace_id": new_trace_id(), "span_id": new_span_id(), "attributes": {"session.id": session_id}}
        for _ in range(3)
    ]
    assert post(server, protobuf_request(spans), PROTOBUF).status_code == 200
    assert server.get(f"/api/v1/sessions/{session_id}")["event_count"] == 3


def test_gzip_json_with_honeyhive_flattened_namespaces(server):
    session_id = str(uuid.uuid4())
    span_id = new_span_id()
    attributes = {
        "honeyhive.session_id": session_id,
        "honeyhive.project": "hh-style",
        "honeyhive_event_type": "model",
        "honeyhive_event_name": "llm-call",
        "honeyhive_user_properties.prefs.theme": "dark",
        "honeyhive_user_properties.prefs.langs.0": "en",
        "honeyhive_user_properties.prefs.langs.1": "fr",
        "honeyhive_user_properties.score": 1.5,
        "honeyhive_user_properties.age": 25,
        "honeyhive_user_properties.is_beta": True,
        "honeyhive_user_properties.objs.0.k": 1,
        "honeyhive_duration_ms": 0.5,
        "traceloop.association.properties.session_id": session_id,
    }
    body = gzip.compress(orjson.dumps(json_request([{"trace_id": new_trace_id(), "span_id": span_id,
                                                      "attributes": attributes}])))  # fmt: skip
    response = post(server, body, {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    event = server.get(f"/api/v1/events/{span_id}")
    assert event["project"] == "hh-style"
    assert (event["event_type"], event["event_name"]) == ("model", "llm-call")
    assert event["user_properties"] == {
        "prefs": {"theme": "dark", "langs": ["en", "fr"]},
        "score": 1.5,
        "age": 25,
        "is_beta": True,
        "objs": [{"k": 1}],
    }
    assert event["metadata"] == {}


def test_resending_a_batch_stores_nothing_twice(server):
    trace_id = new_trace_id()
    body = protobuf_request([{"trace_id": trace_id, "span_id": new_span_id()} for _ in range(4)])
    for _ in range(2):
        assert post(server, body, PROTOBUF).status_code == 200
    assert server.get(f"/api/v1/sessions/{trace_id}")["event_count"] == 4


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        (b"\xff\x00garbage", "application/x-protobuf", 400, "protobuf"),
        (b"{not json", "application/json", 400, "JSON"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}', "application/json", 400,
         "resourceSpans[0].scopeSpans[0].spans[0].traceId"),
        (b'{"resourceSpans": 5}', "application/json", 400, "resourceSpans"),
        (b"hello", "text/plain", 415, "Content-Type"),
    ],
)  # fmt: skip
def test_malformed_otlp_is_a_clear_4xx(server, body, content_type, status, says):
    response = post(server, body, {"Content-Type": content_type})
    assert response.status_code == status
    assert says in response.json()["detail"]


def test_namespace_attribute_that_is_not_json_names_the_attribute(server):
    body = protobuf_request([{"trace_id": new_trace_id(), "span_id": new_span_id(),
                              "attributes": {"tracehive.metadata": "{oops"}}])  # fmt: skip
    response = post(server, body, PROTOBUF)
    assert response.status_code == 400
    assert "tracehive.metadata" in response.json()["detail"]


def test_bad_gzip_is_400(server):
    response = post(server, b"not gzip", {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 400


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}])
def test_ingest_and_query_need_a_known_key(server, headers):
    for method, path in (("POST", "/v1/traces"), ("GET", "/api/v1/sessions"), ("GET", "/api/v1/users")):
        response = httpx.request(method, server.url + path, headers={**PROTOBUF, **headers}, content=b"")
        assert response.status_code == 401, (method, path)


def test_ids_with_slashes_can_be_read_back(server):
    session_id = f"tenant/{uuid.uuid4()}/../x"
    body = protobuf_request([{"trace_id": new_trace_id(), "span_id": new_span_id(),
                              "attributes": {"session.id": session_id}}])  # fmt: skip
    assert post(server, body, PROTOBUF).status_code == 200
    with server.client() as client:
        found = client.get("/api/v1/sessions/" + urllib.parse.quote(session_id, safe=""))
    assert found.status_code == 200 and found.json()["session_id"] == session_id
