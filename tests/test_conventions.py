"""Spans captured from real instrumentors (tests/data/conventions, made with the openai client
against the fake in tests/instrumentors.py) map onto HoneyHive's model-event schema, field by field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tracehive.server.mapping import spans_to_batch
from tracehive.server.otlp import Span
from tracehive.server.prices import ModelPrice, Prices

DATA = Path(__file__).parent / "data" / "conventions"
TRACE = "0" * 31 + "1"
# The second call of each capture: the conversation after the tool answered.
HISTORY = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "call_weather_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "content": "sunny", "tool_call_id": "call_weather_1"},
]


def normal(messages):
    """Tool call arguments compared as JSON values (GenAI sends objects, OpenInference text)."""
    out = json.loads(json.dumps(messages))
    for message in out if isinstance(out, list) else [out]:
        for call in message.get("tool_calls", []):
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    return out


def captured(name: str) -> list[Span]:
    lines = (DATA / name).read_text().splitlines()
    return [
        Span(TRACE, f"{i + 1:016x}", None, (record := json.loads(line))["name"], 1, 2, record["attributes"], {})
        for i, line in enumerate(lines)
    ]


@pytest.mark.parametrize(
    ("capture", "kind"),
    [
        ("openinference_openai.jsonl", "LLM"),
        ("openllmetry_openai.jsonl", "chat"),
        ("genai_openai_v2.jsonl", "chat"),
    ],
)
def test_captured_model_calls_map_to_the_model_event_schema(capture, kind):
    first, second = spans_to_batch(captured(capture), "p", Prices()).events
    for event in (first, second):
        assert event.event_type == "model"
        config, metadata = event.namespaces["config"], event.namespaces["metadata"]
        assert config["model"] == "gpt-4o-mini-2024-07-18"
        assert config["provider"] == "openai"
        assert config["hyperparameters"]["temperature"] == 0.2
        assert metadata["span_kind"] == kind
        assert (metadata["prompt_tokens"], metadata["completion_tokens"], metadata["total_tokens"]) == (120, 30, 150)
        # gpt-4o-mini: $0.15 / $0.60 per million input / output tokens in the genai-prices table.
        assert metadata["cost"] == pytest.approx((120 * 0.15 + 30 * 0.6) / 1e6)
    assert first.namespaces["inputs"]["chat_history"] == HISTORY[:2]
    assert first.namespaces["outputs"]["role"] == "assistant"
    assert normal(first.namespaces["outputs"])["tool_calls"] == normal(HISTORY[2])["tool_calls"]
    assert normal(second.namespaces["inputs"]["chat_history"]) == normal(HISTORY)
    assert second.namespaces["outputs"]["content"] == "It is sunny in Paris."


def test_an_instrumentors_own_cost_is_kept_and_an_override_beats_the_table():
    spans = captured("openinference_openai.jsonl")
    spans[0].attributes["llm.cost.total"] = 0.5
    prices = Prices({"p": {"gpt-4o-mini-2024-07-18": ModelPrice(input_mtok=1.0, output_mtok=2.0)}})
    first, second = spans_to_batch(spans, "p", prices).events
    assert first.namespaces["metadata"]["cost"] == 0.5
    assert second.namespaces["metadata"]["cost"] == pytest.approx((120 * 1.0 + 30 * 2.0) / 1e6)


def test_an_unknown_model_has_a_null_cost_not_zero():
    spans = captured("genai_openai_v2.jsonl")
    for span in spans:
        span.attributes["gen_ai.response.model"] = "acme-private-7b"
    event = spans_to_batch(spans, "p", Prices()).events[0]
    assert event.namespaces["metadata"]["total_tokens"] == 150
    assert event.namespaces["metadata"]["cost"] is None


def test_flattened_genai_prompt_and_completion_keys():
    attributes = {
        "gen_ai.system": "anthropic",
        "gen_ai.request.model": "claude-3-5-haiku-20241022",
        "llm.request.type": "chat",
        "traceloop.span.kind": "task",
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "hi",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "hello",
        "gen_ai.completion.0.finish_reason": "stop",
        "gen_ai.usage.prompt_tokens": 10,
        "gen_ai.usage.completion_tokens": 5,
        "llm.usage.total_tokens": 15,
        "gen_ai.usage.cache_read_input_tokens": 4,
        "traceloop.association.properties.session_id": "s-1",
        "traceloop.association.properties.user_id": "u-1",
        "traceloop.association.properties.tenant": "acme",
    }
    (event,) = spans_to_batch([Span(TRACE, "1" * 16, None, "anthropic.chat", 1, 2, attributes, {})], "p").events
    assert event.event_type == "chain"  # traceloop's task kind, as it named it
    assert event.session_id == "s-1"
    ns = event.namespaces
    assert ns["user_properties"] == {"user_id": "u-1"}
    assert ns["config"] == {"model": "claude-3-5-haiku-20241022", "provider": "anthropic"}
    assert ns["inputs"]["chat_history"] == [{"role": "user", "content": "hi"}]
    assert ns["outputs"] == {"role": "assistant", "content": "hello", "finish_reason": "stop"}
    assert ns["metadata"]["cache_read_tokens"] == 4
    assert ns["metadata"]["association_properties"] == {"tenant": "acme"}


def test_precedence_ours_then_honeyhive_then_others():
    attributes = {
        "tracehive.session_id": "ours",
        "honeyhive.session_id": "theirs",
        "session.id": "otel",
        "tracehive.config": json.dumps({"model": "mine"}),
        "honeyhive_config.model": "hh",
        "llm.model_name": "oi",
        "gen_ai.request.model": "genai",
        "openinference.span.kind": "TOOL",
        "gen_ai.operation.name": "chat",
    }
    (event,) = spans_to_batch([Span(TRACE, "1" * 16, None, "x", 1, 2, attributes, {})], "p").events
    assert event.session_id == "ours"
    assert event.namespaces["config"]["model"] == "mine"
    assert event.event_type == "tool"  # OpenInference's kind before GenAI's operation
    assert event.namespaces["metadata"]["span_kind"] == "TOOL"


def test_the_docs_print_the_tables_as_the_code_has_them():
    from tracehive.server.conventions.__main__ import markdown

    page = (Path(__file__).parent.parent / "docs" / "llm-calls.md").read_text()
    between = page.split("<!-- conventions:begin -->\n", 1)[1].split("<!-- conventions:end -->", 1)[0]
    assert between == markdown(), "run: python -m tracehive.server.conventions, and paste it into docs/llm-calls.md"


ODD_VALUES = [None, "", "x", 0, -3, 1.5, True, [1, "a"], ["x", {"y": 1}], {"a": 1}, "[1, 2]", '{"a": [1]}', "null"]
# Nested shapes the indexed prefixes may be sent in, right or wrong.
ODD_TAILS = ["0", "0.message", "0.message.role", "0.message.contents.0", "0.message.contents.0.message_content.type",
             "0.message.tool_calls.0", "0.message.tool_calls.0.tool_call", "0.message.tool_calls.0.tool_call.function",
             "0.role", "0.tool_calls.0", "0.tool_calls.0.name", "x", "1.message.content"]  # fmt: skip


def test_every_row_takes_odd_values_without_failing():
    """A value of the wrong shape under any key a table reads is skipped or a clear 400, never a crash."""
    from tracehive.server.conventions import CONVENTIONS
    from tracehive.server.otlp import OtlpError

    for convention in CONVENTIONS:
        for value in ODD_VALUES:
            for row in convention.keys:
                attributes = {row.key: value, "gen_ai.operation.name": "chat", "llm.model_name": "gpt-4o-mini",
                              "llm.token_count.prompt": 3}  # fmt: skip
                try:
                    spans_to_batch([Span(TRACE, "1" * 16, None, "odd", 1, 2, attributes, {})], "p", Prices())
                except OtlpError as exc:
                    assert row.key in str(exc)
            for prefix in convention.prefixes:
                for tail in ODD_TAILS:
                    attributes = {prefix.prefix + tail: value, "openinference.span.kind": "LLM"}
                    spans_to_batch([Span(TRACE, "1" * 16, None, "odd", 1, 2, attributes, {})], "p", Prices())
