"""A score of an observation (Langfuse's ``observationId``) lands on that event's feedback, in both
stores: merged into what the event had, through the writer, also when the score comes first."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.conftest import Server, start_server_on
from tests.test_langfuse_sdk import basic, langfuse_pair
from tests.test_store_backends import BACKENDS, open_backend

from tracehive.model import Batch, Event
from tracehive.store.columns import Rows

TRACE = "c7" * 16


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path, chdb_dsn):
    opened = open_backend(request.param, tmp_path, chdb_dsn, f"feedback_{tmp_path.name[-12:]}")
    yield opened
    opened.close()


def test_event_feedback_merges_into_the_named_event_only(store) -> None:
    events = [
        Event(p, e, "s-1", TRACE, None, "chain", "step", 1_000, 2_000) for p in ("p", "other") for e in ("e1", "e2")
    ]
    store.write(Rows.of(Batch(events=events)))
    found = store.add_event_feedback("p", [(TRACE, "e1", {"a": 1}), (TRACE, "e1", {"b": {"x": 1}}),
                                           (TRACE, "gone", {"c": 1}), ("f" * 32, "e2", {"c": 1})])  # fmt: skip
    assert found == [True, True, False, False]
    assert store.add_event_feedback("p", [(TRACE, "e1", {"a": 3, "b": {"y": None}})]) == [True]
    assert store.get_event("e1", ("p",))["feedback"] == {"a": 3, "b": {"x": 1, "y": None}}
    assert store.get_event("e2", ("p",))["feedback"] == {}
    assert store.get_event("e1", ("other",))["feedback"] == {}
    # The event is still one event of its session (ClickHouse stored a newer version of its row).
    session = store.get_session("s-1", ("p",))
    assert session["event_count"] == 2 and len(session["events"]) == 2
    assert session["feedback"] == {}


@pytest.fixture(scope="module", params=BACKENDS)
def served(request, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    server = start_server_on(request.param, tmp_path_factory.mktemp(f"event-feedback-{request.param}"))
    try:
        yield server, basic(*langfuse_pair(server, "shop"))
    finally:
        server.stop()


def spans(*span_ids: str) -> dict:
    made = [{"traceId": TRACE, "spanId": span_id, "name": f"step-{span_id[:2]}",
             "startTimeUnixNano": "1764690000000000000", "endTimeUnixNano": "1764690001000000000",
             "attributes": [{"key": "session.id", "value": {"stringValue": "chat-7"}}]}
            for span_id in span_ids]  # fmt: skip
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": made}]}]}


def test_an_observation_score_lands_on_its_event_before_or_after_the_span(served) -> None:
    server, pair = served
    stored, later = "a1" * 8, "b2" * 8
    # The project's redaction rules apply to an event's scores as to any feedback, once.
    with server.client() as admin:
        rules = [{"path": f"feedback.{name}_comment", "action": "hash"} for name in ("tone", "correct")]
        assert admin.put("/api/v1/projects/shop/privacy", json={"redact": rules}).status_code == 200
    with httpx.Client(base_url=server.url, headers=pair) as client:
        assert client.post("/api/public/otel/v1/traces", json=spans(stored)).status_code == 200
        scores = [{"traceId": TRACE, "observationId": stored, "name": "tone", "value": "polite", "comment": "kind"},
                  {"traceId": TRACE, "observationId": later, "name": "correct", "value": 1, "dataType": "BOOLEAN",
                   "comment": "kind"},
                  {"traceId": TRACE, "name": "helpfulness", "value": 0.5}]  # fmt: skip
        assert client.post("/api/public/scores", json=scores).status_code == 202
        # The stored event has its score at once; the other's waits for its span.
        hashed = server.get(f"/api/v1/events/{stored}")["feedback"]
        assert hashed["tone"] == "polite" and hashed["tone_comment"].startswith("hmac:")
        assert len((server.data_dir / "pending-scores.jsonl").read_text().splitlines()) == 1
    with httpx.Client(base_url=server.url, headers=pair) as client:
        assert client.post("/api/public/otel/v1/traces", json=spans(later)).status_code == 200
        again = [{"traceId": TRACE, "observationId": stored, "name": "stars", "value": 4}]
        assert client.post("/api/public/scores", json=again).status_code == 202
        # An observation needs its trace: a session alone does not say which event it is.
        alone = [{"sessionId": "chat-7", "observationId": stored, "name": "x", "value": 1}]
        answer = client.post("/api/public/scores", json=alone)
        assert answer.status_code == 207 and "observationId with its traceId" in answer.json()["errors"][0]["message"]
    session = server.get("/api/v1/sessions/chat-7")
    assert session["feedback"] == {"helpfulness": 0.5}
    feedback = {event["event_id"]: event["feedback"] for event in session["events"]}
    kind = hashed["tone_comment"]  # the waiting score's comment hashed once, as the other's
    expected = {stored: {"tone": "polite", "tone_comment": kind, "stars": 4.0},
                later: {"correct": True, "correct_comment": kind}}  # fmt: skip
    assert feedback == expected
    assert session["event_count"] == 2
    assert not (server.data_dir / "pending-scores.jsonl").read_text().strip()
