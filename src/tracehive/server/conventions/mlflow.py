"""MLflow Tracing (``mlflow-tracing``, exporting OpenTelemetry spans over OTLP).

Facts from the SDK's ``SpanAttributeKey`` (``mlflow/tracing/constant.py``): every ``mlflow.*``
value is JSON text (a span type is ``"\\"LLM\\""``); ``mlflow.traceRequestId`` is MLflow's trace id
(``tr-<hex>``), which becomes the session; token usage is
``{"input_tokens", "output_tokens", "total_tokens"}`` and cost
``{"input_cost", "output_cost", "total_cost"}`` in USD.
"""

from __future__ import annotations

from typing import Any

from tracehive.server.conventions.base import DROP, Convention, Key, json_value, kinds

PREFIX = "mlflow."

# MLflow span types onto HoneyHive's event types.
SPAN_TYPES = {
    "LLM": "model",
    "CHAT_MODEL": "model",
    "EMBEDDING": "model",
    "TOOL": "tool",
    "RETRIEVER": "tool",
    "RERANKER": "tool",
    "PARSER": "tool",
    "MEMORY": "tool",
    "CHAIN": "chain",
    "AGENT": "chain",
    "WORKFLOW": "chain",
    "TASK": "chain",
    "GUARDRAIL": "chain",
    "EVALUATOR": "chain",
    "UNKNOWN": "chain",
}
USAGE_KEYS = {"input_tokens": "prompt_tokens", "output_tokens": "completion_tokens", "total_tokens": "total_tokens"}


def span_type(value: Any) -> str | None:
    return kinds(SPAN_TYPES)(json_value(value))


def text(value: Any) -> str | None:
    """A JSON-text string decoded; anything else as its text."""
    parsed = json_value(value)
    return None if parsed is None else str(parsed)


def inputs(value: Any) -> dict[str, Any]:
    """The function's arguments (an object); a ``messages`` list (OpenAI's chat request) is
    also the model call's ``chat_history``; anything else is ``inputs.value``."""
    parsed = json_value(value)
    if not isinstance(parsed, dict):
        return {"value": parsed}
    messages = parsed.get("messages")
    if isinstance(messages, list) and "chat_history" not in parsed:
        return {"chat_history": messages, **{k: v for k, v in parsed.items() if k != "messages"}}
    return parsed


def outputs(value: Any) -> dict[str, Any]:
    """The return value: an OpenAI chat completion gives its first message (role, content, tool
    calls) as HoneyHive shows a model's output; another object is kept as it is; anything else
    is ``outputs.value``."""
    parsed = json_value(value)
    if not isinstance(parsed, dict):
        return {"value": parsed}
    choices = parsed.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        if isinstance(message, dict):
            return {k: v for k, v in message.items() if v is not None}
    return parsed


def usage(value: Any) -> dict[str, Any] | None:
    parsed = json_value(value)
    if not isinstance(parsed, dict):
        return None
    found = {target: parsed[key] for key, target in USAGE_KEYS.items() if isinstance(parsed.get(key), int)}
    return found or None


def cost(value: Any) -> float | None:
    parsed = json_value(value)
    total = parsed.get("total_cost") if isinstance(parsed, dict) else None
    return float(total) if isinstance(total, int | float) and not isinstance(total, bool) else None


CONVENTION = Convention(
    name="mlflow",
    keys=(
        Key(PREFIX + "traceRequestId", "session_id", "MLflow's trace id (`tr-...`): the session.", text),
        Key(
            PREFIX + "spanType",
            "event_type",
            "Span type -> event type: " + ", ".join(f"{k} {v}" for k, v in SPAN_TYPES.items()) + ".",
            span_type,
        ),
        Key(PREFIX + "spanType", "metadata.span_kind", "The original type, kept for filters.", text),
        Key(PREFIX + "spanInputs", "inputs", "Arguments (JSON); `messages` -> `chat_history`.", inputs),
        Key(PREFIX + "spanOutputs", "outputs", "Return value (JSON); a chat completion -> its message.", outputs),
        Key(
            PREFIX + "chat.tokenUsage",
            "metadata",
            "Token usage (JSON) -> `prompt_tokens`, `completion_tokens`, `total_tokens`.",
            usage,
        ),
        Key(PREFIX + "llm.cost", "metadata.cost", "Cost in USD (JSON): `total_cost`.", cost),
        Key(PREFIX + "llm.model", "config.model", "The model.", text),
        Key(PREFIX + "llm.provider", "config.provider", "The provider.", text),
        Key(PREFIX + "chat.tools", "config.tools", "Tools offered to the model (JSON).", json_value),
        Key(PREFIX + "spanLogLevel", "metadata.log_level", "The span's log level (a number).", json_value),
        Key(PREFIX + "message.format", "metadata.message_format", "Which flavor wrote the messages.", text),
        Key(PREFIX + "experimentId", "session.metadata.experiment_id", "The MLflow experiment.", text),
        Key(PREFIX + "spanFunctionName", DROP, "The function's name: the span's name already."),
        Key(PREFIX + "spanStartTimeNs", DROP, "The start time: the span's already."),
    ),
)
