"""Langfuse (its Python SDK v5, which exports OpenTelemetry spans; its scope is ``langfuse-sdk``).

Facts from the SDK's ``LangfuseOtelSpanAttributes``: observation input, output, model parameters,
usage and cost details are JSON text; metadata comes one key per attribute
(``langfuse.observation.metadata.<key>``, ``langfuse.trace.metadata.<key>``), each value JSON text;
``propagate_attributes`` puts ``user.id``, ``session.id``, ``langfuse.trace.name``,
``langfuse.trace.tags``, ``langfuse.trace.metadata.*``, ``langfuse.version`` and
``langfuse.environment`` on every span of the trace. Trace-level keys land on the session;
``user.id`` and ``session.id`` are read by the OpenInference table. A level of ERROR also sets the
span's OpenTelemetry status, whose message becomes the event's error.
"""

from __future__ import annotations

from typing import Any

from tracehive.server.conventions.base import DROP, Convention, Key, Prefix, clean, json_value, kinds, text

OBSERVATION = "langfuse.observation."
TRACE_METADATA = "langfuse.trace.metadata"

# Observation types onto HoneyHive's event types (a generation is a model call).
OBSERVATION_TYPES = {
    "generation": "model",
    "embedding": "model",
    "tool": "tool",
    "retriever": "tool",
    "event": "tool",
    "span": "chain",
    "agent": "chain",
    "chain": "chain",
    "evaluator": "chain",
    "guardrail": "chain",
}
# Usage and cost detail keys the SDK and Langfuse's API accept, onto HoneyHive's metadata fields.
USAGE_KEYS = {
    "prompt_tokens": ("input", "prompt_tokens", "input_tokens"),
    "completion_tokens": ("output", "completion_tokens", "output_tokens"),
    "total_tokens": ("total", "total_tokens"),
}


def _number(found: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = found.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    return None


def usage(value: Any) -> dict[str, Any] | None:
    """``{"input": 120, "output": 45}`` -> prompt and completion tokens (and the total, if given)."""
    found = json_value(value)
    if not isinstance(found, dict):
        return None
    tokens = {target: _number(found, keys) for target, keys in USAGE_KEYS.items()}
    return {k: v for k, v in tokens.items() if v is not None} or None


def cost(value: Any) -> float | None:
    """``{"input": 0.001, "output": 0.002}`` (USD) -> the total, as given or summed."""
    found = json_value(value)
    if not isinstance(found, dict):
        return None
    total = _number(found, ("total",))
    if total is not None:
        return float(total)
    parts = [v for v in found.values() if isinstance(v, int | float) and not isinstance(v, bool)]
    return float(sum(parts)) if parts else None


def _as_object(value: Any, key: str) -> dict[str, Any]:
    parsed = json_value(value)
    return parsed if isinstance(parsed, dict) else {key: parsed}


def observation_input(value: Any) -> dict[str, Any]:
    """A list of chat messages is the model call's ``chat_history``; an object (``@observe``'s
    ``{"args": [...], "kwargs": {...}}``) is the inputs; anything else is ``inputs.value``."""
    parsed = json_value(value)
    if isinstance(parsed, list) and parsed and all(isinstance(m, dict) and "role" in m for m in parsed):
        return {"chat_history": parsed}
    return _as_object(parsed, "value")


def observation_output(value: Any) -> dict[str, Any]:
    """An object is the outputs (a message, from ``langfuse.openai``: role, content, tool calls,
    without its empty fields); anything else is ``outputs.content`` (a generation's text), under
    HoneyHive's names."""
    output = _as_object(value, "content")
    return clean(output) if "role" in output else output


def metadata_values(value: Any) -> dict[str, Any] | None:
    """``<prefix>.<key>`` attributes, nested by the engine, with each JSON-text value decoded."""
    if not isinstance(value, dict):
        return None
    return {key: metadata_values(item) if isinstance(item, dict) else json_value(item) for key, item in value.items()}


CONVENTION = Convention(
    name="langfuse",
    keys=(
        Key(
            OBSERVATION + "type",
            "event_type",
            "Observation type -> event type: " + ", ".join(f"{k} {v}" for k, v in OBSERVATION_TYPES.items()) + ".",
            kinds(OBSERVATION_TYPES),
        ),
        Key(OBSERVATION + "type", "metadata.span_kind", "The original type, kept for filters.", text),
        Key(
            OBSERVATION + "input",
            "inputs",
            "Input (JSON): messages -> `chat_history`, an object as it is.",
            observation_input,
        ),
        Key(
            OBSERVATION + "output",
            "outputs",
            "Output (JSON): an object as it is, text -> `content`.",
            observation_output,
        ),
        Key(OBSERVATION + "model.name", "config.model", "The model.", text),
        Key(OBSERVATION + "model.parameters", "config.hyperparameters", "Model parameters (JSON).", json_value),
        Key(
            OBSERVATION + "usage_details",
            "metadata",
            "Token usage (JSON): input, output, total -> `prompt_tokens`, `completion_tokens`, `total_tokens`.",
            usage,
        ),
        Key(OBSERVATION + "cost_details", "metadata.cost", "Cost details in USD (JSON): the total.", cost),
        Key(OBSERVATION + "completion_start_time", "metadata.completion_start_time", "First token time.", json_value),
        Key(OBSERVATION + "prompt.name", "config.prompt_name", "The Langfuse prompt used.", text),
        Key(OBSERVATION + "prompt.version", "config.prompt_version", "Its version.", json_value),
        Key(OBSERVATION + "level", "metadata.level", "DEBUG, DEFAULT, WARNING or ERROR.", text),
        Key(OBSERVATION + "status_message", "metadata.status_message", "What the level is about.", text),
        Key(
            OBSERVATION + "metadata",
            "metadata",
            "Metadata that is not an object (JSON).",
            lambda v: _as_object(v, "value"),
        ),
        Key("langfuse.version", "metadata.version", "The application's version.", text),
        Key("langfuse.trace.name", "session_name", "The trace's name.", text),
        Key("langfuse.trace.tags", "session.metadata.tags", "The trace's tags (a list).", json_value),
        Key(
            TRACE_METADATA,
            "session.metadata",
            "Trace metadata that is not an object (JSON).",
            lambda v: _as_object(v, "value"),
        ),
        Key("langfuse.environment", "session.metadata.environment", "The environment (production, ...).", text),
        Key("langfuse.release", "session.metadata.release", "The application's release.", text),
        Key("langfuse.trace.public", DROP, "Langfuse's public-link flag; tracehive has no public links."),
    ),
    prefixes=(
        Prefix(
            OBSERVATION + "metadata.", "metadata", "Observation metadata, one key each (JSON values).", metadata_values
        ),
        Prefix(
            TRACE_METADATA + ".",
            "session.metadata",
            "Trace metadata, one key each (JSON values), onto the session.",
            metadata_values,
        ),
        Prefix("langfuse.internal.", DROP, "The SDK's bookkeeping."),
    ),
)
