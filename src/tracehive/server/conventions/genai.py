"""OpenTelemetry's GenAI semantic conventions, current and deprecated keys.

Facts from the spec (semantic-conventions, ``gen-ai-spans.md``, ``gen-ai-input-messages.json`` /
``gen-ai-output-messages.json``): messages are JSON lists of ``{role, parts: [...]}`` where a part is
``{type: text, content}``, ``{type: tool_call, id, name, arguments}`` or
``{type: tool_call_response, id, response}``; output messages add ``finish_reason``; system
instructions are a list of parts. The older flattened form (still sent by OpenLLMetry before 0.50
and others) is ``gen_ai.prompt.<i>.{role,content}`` and ``gen_ai.completion.<i>.{role,content,
finish_reason,tool_calls.<j>.{id,name,arguments}}``.
"""

from __future__ import annotations

from typing import Any

from tracehive.server.conventions.base import (
    Convention,
    Key,
    Prefix,
    as_list,
    clean,
    first_item,
    integer,
    json_value,
    kinds,
    number,
    openai_tool_call,
    parsed_items,
    text,
)

# gen_ai.operation.name -> event type.
OPERATIONS = {
    "chat": "model",
    "text_completion": "model",
    "generate_content": "model",
    "embeddings": "model",
    "execute_tool": "tool",
    "create_agent": "chain",
    "invoke_agent": "chain",
    "invoke_workflow": "chain",
    "retrieval": "tool",
}


def _part_text(parts: list[Any]) -> str | None:
    texts = [p.get("content") for p in parts if isinstance(p, dict) and p.get("type") in ("text", "reasoning")]
    return "".join(t for t in texts if isinstance(t, str)) or None


def _message(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    parts = [p for p in as_list(item.get("parts")) if isinstance(p, dict)]
    calls = [openai_tool_call(p.get("id"), p.get("name"), p.get("arguments")) for p in parts
             if p.get("type") == "tool_call"]  # fmt: skip
    responses = [p for p in parts if p.get("type") == "tool_call_response"]
    content = _part_text(parts)
    if content is None and responses:
        response = responses[0].get("response")
        content = response if isinstance(response, str) else json_value(response)
    return clean(
        {
            "role": item.get("role"),
            "content": content,
            "name": item.get("name"),
            "tool_calls": calls,
            "tool_call_id": responses[0].get("id") if responses else None,
            "finish_reason": item.get("finish_reason"),
        }
    )


def messages(value: Any) -> list[dict[str, Any]] | None:
    return parsed_items(_message, as_list(json_value(value)))


def output_message(value: Any) -> dict[str, Any] | None:
    return first_item(messages(value))


def system_instructions(value: Any) -> dict[str, Any] | None:
    """The system prompt as a message, put before the chat history (see mapping)."""
    parsed = json_value(value)
    content = _part_text(as_list(parsed)) if isinstance(parsed, list) else parsed
    return {"role": "system", "content": content} if content else None


def _flat_message(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    calls = [openai_tool_call(c.get("id"), c.get("name"), c.get("arguments"))
             for c in as_list(item.get("tool_calls")) if isinstance(c, dict)]  # fmt: skip
    return clean(
        {
            "role": item.get("role"),
            "content": item.get("content"),
            "tool_calls": calls,
            "tool_call_id": item.get("tool_call_id"),
            "finish_reason": item.get("finish_reason"),
        }
    )


def flat_messages(value: Any) -> list[dict[str, Any]] | None:
    return parsed_items(_flat_message, as_list(value))


def flat_output(value: Any) -> dict[str, Any] | None:
    return first_item(flat_messages(value))


def _hyper(name: str, read=number) -> Key:
    return Key(f"gen_ai.request.{name}", f"config.hyperparameters.{name}", f"Request parameter {name}.", read)


CONVENTION = Convention(
    name="genai",
    keys=(
        Key(
            "gen_ai.operation.name",
            "event_type",
            "Operation -> event type: " + ", ".join(f"{k} {v}" for k, v in OPERATIONS.items()) + ".",
            kinds(OPERATIONS),
        ),
        Key("gen_ai.operation.name", "metadata.span_kind", "The original operation, kept for filters.", text),
        Key("gen_ai.response.model", "config.model", "The model that answered.", text),
        Key("gen_ai.request.model", "config.model", "The model asked for.", text),
        Key("gen_ai.provider.name", "config.provider", "The provider (current key).", text),
        Key("gen_ai.system", "config.provider", "The provider (deprecated key).", text),
        _hyper("temperature"),
        _hyper("top_p"),
        _hyper("top_k"),
        _hyper("max_tokens", integer),
        _hyper("frequency_penalty"),
        _hyper("presence_penalty"),
        _hyper("seed", integer),
        _hyper("stop_sequences", lambda v: v),
        _hyper("choice.count", integer),
        Key("gen_ai.response.id", "metadata.response_id", "The provider's id of the answer.", text),
        Key("gen_ai.response.finish_reasons", "metadata.finish_reasons", "Why the model stopped.", None),
        Key("gen_ai.usage.input_tokens", "metadata.prompt_tokens", "Input tokens.", integer),
        Key("gen_ai.usage.prompt_tokens", "metadata.prompt_tokens", "Input tokens (deprecated key).", integer),
        Key("gen_ai.usage.output_tokens", "metadata.completion_tokens", "Output tokens.", integer),
        Key("gen_ai.usage.completion_tokens", "metadata.completion_tokens", "Output tokens (deprecated key).", integer),
        Key(
            "gen_ai.usage.cache_read.input_tokens",
            "metadata.cache_read_tokens",
            "Input tokens read from cache.",
            integer,
        ),
        Key(
            "gen_ai.usage.cache_creation.input_tokens",
            "metadata.cache_write_tokens",
            "Input tokens written to cache.",
            integer,
        ),
        Key("gen_ai.usage.reasoning.output_tokens", "metadata.reasoning_tokens", "Reasoning tokens.", integer),
        Key("gen_ai.input.messages", "inputs.chat_history", "The messages sent (JSON, parts).", messages),
        Key(
            "gen_ai.system_instructions",
            "inputs.system_instructions",
            "The system prompt (JSON parts or text).",
            system_instructions,
        ),
        Key(
            "gen_ai.output.messages", "outputs", "The answer (JSON, parts): role, content, tool calls.", output_message
        ),
        Key("gen_ai.tool.definitions", "config.tools", "Tools offered to the model (JSON).", json_value),
        Key("gen_ai.conversation.id", "session_id", "A conversation is a session.", text),
        Key("gen_ai.agent.name", "config.agent_name", "The agent.", text),
        Key("gen_ai.tool.name", "config.tool_name", "The tool an execute_tool span ran.", text),
        Key("gen_ai.tool.call.id", "metadata.tool_call_id", "The call's id.", text),
        Key("gen_ai.tool.call.arguments", "inputs.arguments", "The tool's arguments.", json_value),
        Key("gen_ai.tool.call.result", "outputs.result", "The tool's result.", json_value),
    ),
    prefixes=(
        Prefix("gen_ai.prompt.", "inputs.chat_history", "Messages sent, flattened (deprecated form).", flat_messages),
        Prefix("gen_ai.completion.", "outputs", "The answer, flattened (deprecated form).", flat_output),
    ),
)
