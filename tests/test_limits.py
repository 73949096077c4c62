"""Hostile input: size, count, length and depth limits, bad encodings, traversal in ids."""

from __future__ import annotations

import gzip

import orjson
import pytest
from tests.conftest import start_server
from tests.otlp_payloads import new_span_id, new_trace_id, protobuf_request

from tracehive.server.limits import TRUNCATION_MARKER

PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("limits"), "--max-body-mb", "1")
    yield server
    server.stop()


def post_span(server, attributes: dict, trace_id: str | None = None):
    body = protobuf_request([{"trace_id": trace_id or new_trace_id(), "span_id": new_span_id(),
                              "attributes": attributes}])  # fmt: skip
    with server.client() as client:
        return client.post("/v1/traces", content=body, headers=PROTOBUF)


def test_body_over_the_limit_is_413(small_server):
    with small_server.client() as client:
        response = client.post("/v1/traces", content=b"\0" * (2 * 1024 * 1024), headers=PROTOBUF)
    assert response.status_code == 413 and "limit" in response.json()["detail"]


def test_gzip_bomb_is_413(small_server):
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))
    with small_server.client() as client:
        response = client.post("/v1/traces", content=bomb, headers={**PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 413


def test_unknown_content_encoding_is_415(small_server):
    with small_server.client() as client:
        response = client.post("/v1/traces", content=b"x", headers={**PROTOBUF, "Content-Encoding": "br"})
    assert response.status_code == 415


def test_too_many_attributes_is_400_naming_the_span(small_server):
    response = post_span(small_server, {f"k{i}": i for i in range(1100)})
    assert response.status_code == 400 and "attributes" in response.json()["detail"]


def test_overlong_key_is_400(small_server):
    response = post_span(small_server, {"k" * 600: 1})
    assert response.status_code == 400 and "key" in response.json()["detail"]


def test_deep_nesting_is_400_naming_the_path(small_server):
    deep: dict = {"leaf": 1}
    for _ in range(40):
        deep = {"d": deep}
    response = post_span(small_server, {"tracehive.metadata": orjson.dumps(deep).decode()})
    assert response.status_code == 400 and "metadata.d.d" in response.json()["detail"]


def test_very_deep_json_is_a_clear_400_not_a_crash(small_server):
    body = b'{"resourceSpans": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    with small_server.client() as client:
        response = client.post("/v1/traces", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400


def test_long_string_is_kept_cut_with_a_marker(small_server):
    trace_id = new_trace_id()
    response = post_span(small_server, {"tracehive.inputs": orjson.dumps({"text": "x" * 100_000}).decode(),
                                        "tracehive.session_id": trace_id}, trace_id)  # fmt: skip
    assert response.status_code == 200
    (event,) = small_server.get(f"/api/v1/sessions/{trace_id}")["events"]
    text = event["inputs"]["text"]
    assert text.endswith(TRUNCATION_MARKER) and text.startswith("x" * 1000)


def test_invalid_utf8_is_400(small_server):
    body = protobuf_request([{"trace_id": new_trace_id(), "span_id": new_span_id(), "name": "ok"}])
    broken = body.replace(b"ok", b"\xff\xfe")
    with small_server.client() as client:
        protobuf = client.post("/v1/traces", content=broken, headers=PROTOBUF)
        json = client.post(
            "/v1/traces", content=b'{"resourceSpans": "\xff"}', headers={"Content-Type": "application/json"}
        )
    assert protobuf.status_code == 400 and json.status_code == 400


@pytest.mark.parametrize("path", ["/api/v1/sessions/..%2F..%2Fetc%2Fpasswd", "/api/v1/events/%2e%2e%2fkeys.json",
                                  "/api/v1/sessions/'%20OR%201=1--"])  # fmt: skip
def test_traversal_and_injection_in_ids_find_nothing(small_server, path):
    with small_server.client() as client:
        response = client.get(path)
    assert response.status_code == 404


def test_huge_or_deeply_nested_filter_is_400(small_server):
    with small_server.client() as client:
        huge = client.get("/api/v1/sessions", params={"filter": "a = 1 or " * 1000 + "a = 1"})
        deep = client.get("/api/v1/sessions", params={"filter": "(" * 200 + "metadata.a = 1" + ")" * 200})
    assert huge.status_code == 400 and deep.status_code == 400
