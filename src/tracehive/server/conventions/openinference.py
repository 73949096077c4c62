"""OpenInference (Arize Phoenix's instrumentors, and the HoneyHive SDK's, which use them).

Facts from its semantic conventions (``openinference-semantic-conventions``, spec/semantic_conventions.md):
messages are flattened as ``llm.input_messages.<i>.message.<field>``, tool calls under
``message.tool_calls.<j>.tool_call.{id,function.name,function.arguments}`` (arguments as JSON
text), multimodal parts under ``message.contents.<j>.message_content.{type,text}``.
"""

from __future__ import annotations

from typing import Any

from tracehive import attributes as A
from tracehive.server.conventions.base import (
    Convention,
    Key,
    Prefix,
    as_list,
    clean,
    first_item,
    integer,
    json_object,
    json_value,
    kinds,
    number,
    obj,
    openai_tool_call,
    parsed_items,
    text,
)

# HoneyHive's mapping of OpenInference span kinds onto its event types (model, tool, chain).
SPAN_KINDS = {
    "LLM": "model",
    "EMBEDDING": "model",
    "RERANKER": "tool",
    "RETRIEVER": "tool",
    "TOOL": "tool",
    "GUARDRAIL": "tool",
    "EVALUATOR": "tool",
    "CHAIN": "chain",
    "AGENT": "chain",
    "PROMPT": "chain",
}


def _content(message: dict[str, Any]) -> Any:
    content = message.get("content")
    if content is not None:
        return content
    parts = [obj(obj(p).get("message_content")) for p in as_list(message.get("contents"))]
    texts = [p.get("text") for p in parts if p.get("type", "text") == "text"]
    return "".join(t for t in texts if isinstance(t, str)) or None


def _message(item: Any) -> dict[str, Any] | None:
    message = item.get("message") if isinstance(item, dict) else None
    if not isinstance(message, dict):
        return None
    calls = []
    for entry in as_list(message.get("tool_calls")):
        call = obj(obj(entry).get("tool_call"))
        function = obj(call.get("function"))
        calls.append(openai_tool_call(call.get("id"), function.get("name"), function.get("arguments")))
    if message.get("function_call_name") is not None:  # the legacy single function call
        calls.append(openai_tool_call(None, message["function_call_name"], message.get("function_call_arguments_json")))
    return clean(
        {
            "role": message.get("role"),
            "content": _content(message),
            "name": message.get("name"),
            "tool_calls": calls,
            "tool_call_id": message.get("tool_call_id"),
        }
    )


def messages(value: Any) -> list[dict[str, Any]] | None:
    return parsed_items(_message, as_list(value))


def output_message(value: Any) -> dict[str, Any] | None:
    """The first output message is the event's output (HoneyHive's ``outputs``: role, content, tool calls)."""
    return first_item(messages(value))


def tags(value: Any) -> list[Any] | None:
    parsed = json_value(value)
    return parsed if isinstance(parsed, list) else [parsed]


CONVENTION = Convention(
    name="openinference",
    keys=(
        Key(
            A.OI_SPAN_KIND,
            "event_type",
            "Span kind -> event type: " + ", ".join(f"{k} {v}" for k, v in SPAN_KINDS.items()) + ".",
            kinds(SPAN_KINDS),
        ),
        Key(A.OI_SPAN_KIND, "metadata.span_kind", "The original kind, kept for filters."),
        Key("llm.model_name", "config.model", "The model that answered.", text),
        Key("llm.response.model_name", "config.model", "The model that answered.", text),
        Key("llm.request.model_name", "config.model", "The model asked for.", text),
        Key("embedding.model_name", "config.model", "An embedding model.", text),
        Key("reranker.model_name", "config.model", "A reranker model.", text),
        Key("llm.provider", "config.provider", "The hosting provider (openai, azure, ...).", text),
        Key("llm.system", "config.provider", "The AI product (openai, anthropic, ...).", text),
        Key("llm.invocation_parameters", "config.hyperparameters", "Request parameters (JSON).", json_object),
        Key("embedding.invocation_parameters", "config.hyperparameters", "Request parameters (JSON).", json_object),
        Key("llm.prompt_template.template", "config.template", "The prompt template.", text),
        Key("llm.prompt_template.variables", "inputs.template_variables", "Its variables (JSON).", json_value),
        Key("llm.prompt_template.version", "config.template_version", "Its version.", text),
        Key("llm.token_count.prompt", "metadata.prompt_tokens", "Input tokens.", integer),
        Key("llm.token_count.completion", "metadata.completion_tokens", "Output tokens.", integer),
        Key("llm.token_count.total", "metadata.total_tokens", "All tokens.", integer),
        Key(
            "llm.token_count.prompt_details.cache_read",
            "metadata.cache_read_tokens",
            "Input tokens read from cache.",
            integer,
        ),
        Key(
            "llm.token_count.prompt_details.cache_write",
            "metadata.cache_write_tokens",
            "Input tokens written to cache.",
            integer,
        ),
        Key(
            "llm.token_count.prompt_details.cache_input",
            "metadata.cache_input_tokens",
            "Input tokens of a cache.",
            integer,
        ),
        Key("llm.token_count.prompt_details.audio", "metadata.prompt_audio_tokens", "Audio input tokens.", integer),
        Key("llm.token_count.completion_details.reasoning", "metadata.reasoning_tokens", "Reasoning tokens.", integer),
        Key(
            "llm.token_count.completion_details.audio",
            "metadata.completion_audio_tokens",
            "Audio output tokens.",
            integer,
        ),
        Key("llm.cost.total", "metadata.cost", "Cost in USD the instrumentor computed (kept as sent).", number),
        Key("llm.cost.prompt", "metadata.prompt_cost", "Input cost in USD.", number),
        Key("llm.cost.completion", "metadata.completion_cost", "Output cost in USD.", number),
        Key("llm.finish_reason", "metadata.finish_reason", "Why the model stopped.", text),
        Key(A.OI_INPUT_VALUE, "inputs.value", "The input as text (JSON text for a model call's request).", None),
        Key("input.mime_type", "metadata.input_mime_type", "text/plain or application/json.", text),
        Key(A.OI_OUTPUT_VALUE, "outputs.value", "The output as text.", None),
        Key("output.mime_type", "metadata.output_mime_type", "text/plain or application/json.", text),
        Key(A.OTEL_SESSION_ID, "session_id", "The session id (also OpenTelemetry's `session.id`).", text),
        Key(A.OTEL_USER_ID, "user_id", "The user (also OpenTelemetry's `user.id`).", None),
        Key("metadata", "metadata", "Free-form metadata (a JSON object).", json_object),
        Key("tag.tags", "metadata.tags", "Tags (a list).", tags),
        Key("tool.name", "config.tool_name", "A tool span's tool.", text),
        Key("tool.description", "config.tool_description", "Its description.", text),
        Key("tool.parameters", "config.tool_parameters", "Its parameters' JSON schema.", json_value),
    ),
    prefixes=(
        Prefix(
            "llm.input_messages.", "inputs.chat_history", "The messages sent (role, content, tool calls).", messages
        ),
        Prefix("llm.output_messages.", "outputs", "The answer: role, content, tool calls.", output_message),
        Prefix("llm.tools.", "config.tools", "Tools offered to the model (`tool.json_schema`).", lambda v: as_list(v)),
        Prefix("retrieval.documents.", "outputs.documents", "Retrieved documents.", lambda v: as_list(v)),
        Prefix("reranker.output_documents.", "outputs.documents", "Reranked documents.", lambda v: as_list(v)),
        Prefix("reranker.input_documents.", "inputs.documents", "Documents to rerank.", lambda v: as_list(v)),
        Prefix(
            "embedding.embeddings.", "outputs.embeddings", "Embedded texts (vectors as sent).", lambda v: as_list(v)
        ),
    ),
)
