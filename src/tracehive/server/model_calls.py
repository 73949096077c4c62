"""What every model event gets after mapping, whichever convention it came in: HoneyHive's shape
(system prompt first in ``inputs.chat_history``, ``metadata.total_tokens``) and a cost."""

from __future__ import annotations

from typing import Any

from tracehive.model import Event
from tracehive.server.prices import Prices, Usage


def _tokens(metadata: dict[str, Any], key: str) -> int | None:
    value = metadata.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def finish_model_event(event: Event, prices: Prices | None) -> None:
    namespaces = event.namespaces
    inputs, metadata, config = namespaces["inputs"], namespaces["metadata"], namespaces["config"]
    system = inputs.get("system_instructions")
    history = inputs.get("chat_history")
    if isinstance(system, dict) and isinstance(history, list):
        if not any(isinstance(m, dict) and m.get("role") == "system" for m in history):
            inputs["chat_history"] = [system, *history]
        del inputs["system_instructions"]
    prompt, completion = _tokens(metadata, "prompt_tokens"), _tokens(metadata, "completion_tokens")
    if "total_tokens" not in metadata and prompt is not None and completion is not None:
        metadata["total_tokens"] = prompt + completion
    if metadata.get("cost") is not None or prices is None:
        return
    model = config.get("model")
    if not isinstance(model, str) or (prompt is None and completion is None):
        return
    usage = Usage(
        input_tokens=prompt or 0,
        output_tokens=completion or 0,
        cache_read_tokens=_tokens(metadata, "cache_read_tokens") or 0,
        cache_write_tokens=_tokens(metadata, "cache_write_tokens") or 0,
    )
    provider = config.get("provider")
    # Unknown model: cost stays null (not 0), and the model shows in the list of models without a price.
    metadata["cost"] = prices.cost(event.project, provider if isinstance(provider, str) else None, model, usage,
                                   event.start_ns)  # fmt: skip
