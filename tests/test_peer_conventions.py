"""Spans captured from the real Langfuse 5 SDK and mlflow-tracing (with its OpenAI autolog against the
fake in tests/instrumentors.py) map onto HoneyHive's model-event schema, field by field. Each line of
a capture is one span: its name, the index of its parent line, its OTLP status and its attributes."""

from __future__ import annotations

import json
from pathlib import Path

from tracehive.server.mapping import spans_to_batch
from tracehive.server.otlp import Span

DATA = Path(__file__).parent / "data" / "conventions"
TRACE = "0" * 31 + "2"


def captured(name: str) -> list[Span]:
    records = [json.loads(line) for line in (DATA / name).read_text().splitlines()]
    return [
        Span(TRACE, f"{i + 1:016x}", None if r["parent"] is None else f"{r['parent'] + 1:016x}", r["name"], 10 + i,
             20 + i, r["attributes"], {}, status_code=r["status"][0], status_message=r["status"][1])
        for i, r in enumerate(records)
    ]  # fmt: skip


def test_langfuse_observations_map_onto_events_and_the_trace_onto_its_session():
    batch = spans_to_batch(captured("langfuse_sdk.jsonl"), "p")
    root, lookup, answer = batch.events
    assert {e.session_id for e in batch.events} == {"chat-42"}
    assert [(e.event_type, e.event_name) for e in batch.events] == [
        ("chain", "handle-request"), ("tool", "lookup"), ("model", "answer")]  # fmt: skip
    assert root.namespaces["inputs"] == {"args": ["best hiking boots?"], "kwargs": {}}
    assert root.namespaces["outputs"] == {"content": "Try the Trailblazer 2."}
    assert root.namespaces["metadata"] == {"span_kind": "span", "version": "1.4"}
    # A level of ERROR: the status message is the error, and kept with the level.
    assert lookup.error == "no stock for TB2"
    assert lookup.namespaces["metadata"]["level"] == "ERROR"
    assert lookup.namespaces["metadata"]["status_message"] == "no stock for TB2"
    ns = answer.namespaces
    assert ns["config"] == {"model": "gpt-4o-mini", "hyperparameters": {"temperature": 0.2}}
    assert ns["inputs"] == {"chat_history": [{"role": "user", "content": "best hiking boots?"}]}
    assert ns["outputs"] == {"content": "Try the Trailblazer 2."}
    assert ns["user_properties"] == {"user_id": "user_12345"}
    metadata = ns["metadata"]
    assert (metadata["prompt_tokens"], metadata["completion_tokens"], metadata["total_tokens"]) == (120, 45, 165)
    assert abs(metadata["cost"] - 0.0039) < 1e-12
    assert metadata["attempt"] == 1  # observation metadata values are JSON: 1 stays a number
    (session,) = batch.sessions
    assert (session.session_id, session.session_name) == ("chat-42", "support")
    assert session.namespaces["metadata"] == {"plan": "premium", "region": "eu", "tags": ["beta"]}
    assert session.namespaces["user_properties"] == {"user_id": "user_12345"}


def test_mlflow_spans_map_onto_a_session_of_nested_events():
    batch = spans_to_batch(captured("mlflow_openai.jsonl"), "p")
    root, first, tool, second = batch.events
    assert {e.session_id for e in batch.events} == {"tr-4d6f8b9e3bf92c93d7449401b2f3ac8a"}
    assert [e.event_type for e in batch.events] == ["chain", "model", "tool", "model"]
    assert {first.parent_id, tool.parent_id, second.parent_id} == {root.event_id}
    assert root.namespaces["metadata"] == {"span_kind": "AGENT", "log_level": 20}
    assert root.namespaces["outputs"] == {"value": "It is sunny in Paris."}
    assert tool.namespaces["inputs"] == {"city": "Paris"}
    for model in (first, second):
        ns = model.namespaces
        assert ns["config"]["model"] == "gpt-4o-mini-2024-07-18"
        assert ns["inputs"]["model"] == "gpt-4o-mini"
        assert (ns["metadata"]["prompt_tokens"], ns["metadata"]["completion_tokens"]) == (120, 30)
        assert ns["metadata"]["total_tokens"] == 150
        assert ns["metadata"]["span_kind"] == "CHAT_MODEL"
    assert first.namespaces["inputs"]["chat_history"] == [{"role": "user", "content": "Weather in Paris?"}]
    assert first.namespaces["outputs"]["tool_calls"][0]["id"] == "call_weather_1"
    assert second.namespaces["outputs"] == {"role": "assistant", "content": "It is sunny in Paris."}
    assert [m["role"] for m in second.namespaces["inputs"]["chat_history"]] == ["user", "assistant", "tool"]


def test_a_generation_of_langfuses_openai_wrapper_is_a_model_event():
    root, generation = spans_to_batch(captured("langfuse_openai.jsonl"), "p").events
    assert (root.event_type, generation.event_type, generation.parent_id) == ("chain", "model", root.event_id)
    ns = generation.namespaces
    assert ns["config"]["model"] == "gpt-4o-mini-2024-07-18"
    assert ns["config"]["hyperparameters"]["temperature"] == 0.2
    assert [m["role"] for m in ns["inputs"]["chat_history"]] == ["system", "user"]
    assert ns["outputs"]["role"] == "assistant" and "content" not in ns["outputs"]  # null content dropped
    assert ns["outputs"]["tool_calls"][0]["function"]["name"] == "get_weather"
    metadata = ns["metadata"]  # OpenAI's usage names, as the wrapper sends them
    assert (metadata["prompt_tokens"], metadata["completion_tokens"], metadata["total_tokens"]) == (120, 30, 150)
