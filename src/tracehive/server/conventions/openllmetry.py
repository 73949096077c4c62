"""OpenLLMetry (Traceloop's instrumentors and SDK), on top of the GenAI keys it shares.

Facts from ``opentelemetry-semantic-conventions-ai`` (``SpanAttributes``): ``traceloop.span.kind``
is workflow, task, agent, tool or unknown; entity input and output are JSON text; association
properties are the user's own keys (its docs use ``session_id`` and ``user_id``). The HoneyHive SDK
copies its project, source and session id there too.
"""

from __future__ import annotations

from tracehive.server.conventions.base import DROP, Convention, Key, Prefix, integer, json_value, kinds, text

SPAN_KINDS = {"workflow": "chain", "task": "chain", "agent": "chain", "tool": "tool"}
ASSOCIATION = "traceloop.association.properties."

CONVENTION = Convention(
    name="openllmetry",
    keys=(
        Key(
            "traceloop.span.kind",
            "event_type",
            "Span kind -> event type: " + ", ".join(f"{k} {v}" for k, v in SPAN_KINDS.items()) + ".",
            kinds(SPAN_KINDS),
        ),
        Key("traceloop.span.kind", "metadata.span_kind", "The original kind, kept for filters.", text),
        Key("traceloop.entity.name", "event_name", "The decorated function's name.", text),
        Key("traceloop.entity.input", "inputs", "Its arguments (JSON).", lambda v: _object(v, "input")),
        Key("traceloop.entity.output", "outputs", "Its result (JSON).", lambda v: _object(v, "output")),
        Key("traceloop.workflow.name", "metadata.workflow_name", "The workflow the span is part of.", text),
        Key("traceloop.entity.path", "metadata.entity_path", "Where in the workflow.", text),
        Key("llm.usage.total_tokens", "metadata.total_tokens", "All tokens.", integer),
        Key("gen_ai.usage.total_tokens", "metadata.total_tokens", "All tokens.", integer),
        Key(
            "gen_ai.usage.cache_read_input_tokens",
            "metadata.cache_read_tokens",
            "Input tokens read from cache.",
            integer,
        ),
        Key(
            "gen_ai.usage.cache_creation_input_tokens",
            "metadata.cache_write_tokens",
            "Input tokens written to cache.",
            integer,
        ),
        Key("gen_ai.usage.reasoning_tokens", "metadata.reasoning_tokens", "Reasoning tokens.", integer),
        Key("llm.usage.reasoning_tokens", "metadata.reasoning_tokens", "Reasoning tokens.", integer),
        Key("llm.request.type", "metadata.request_type", "chat, completion, embedding...", text),
        Key(ASSOCIATION + "session_id", "session_id", "The session.", text),
        Key(ASSOCIATION + "user_id", "user_id", "The user.", None),
        Key(ASSOCIATION + "project", DROP, "The HoneyHive SDK's copy of its project."),
        Key(ASSOCIATION + "source", DROP, "The HoneyHive SDK's copy of its source."),
    ),
    prefixes=(
        Prefix(ASSOCIATION, "metadata.association_properties", "The user's other association properties."),
        Prefix("llm.request.functions.", "config.tools", "Functions offered to the model.", lambda v: v),
    ),
)


def _object(value, name: str):
    """Entity input/output: a JSON object as it is, anything else under one key."""
    parsed = json_value(value)
    return parsed if isinstance(parsed, dict) else {name: parsed}
