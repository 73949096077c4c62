"""The data model shared by the SDK, the server and the stores.

A **session** is one user request (one trace, possibly several OTLP traces); it is made of
**events** (spans). Both carry the same namespaces, each a JSON object whose values keep their
types (str, int, float, bool, None, lists, nested objects).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Who made the request lives in user_properties; what the request was lives in metadata.
NAMESPACES: tuple[str, ...] = (
    "inputs",
    "outputs",
    "user_properties",
    "metadata",
    "metrics",
    "feedback",
    "config",
)

EVENT_TYPES: tuple[str, ...] = ("model", "tool", "chain", "function", "session")
DEFAULT_EVENT_TYPE = "tool"

# A model call, in HoneyHive's schema: an event of type "model" whose metadata holds its usage
# (token counts, and its cost in USD when known).
MODEL_EVENT_TYPE = "model"
PROMPT_TOKENS = "prompt_tokens"
COMPLETION_TOKENS = "completion_tokens"
TOTAL_TOKENS = "total_tokens"
COST = "cost"
# Where a model event keeps the rest of its call: its conversation and its settings.
CHAT_HISTORY = "chat_history"  # inputs.chat_history: messages, each with role, content, tool_calls
TOOL_CALLS = "tool_calls"  # on a message, and on outputs
MODEL = "model"  # config.model
PROVIDER = "provider"  # config.provider
HYPERPARAMETERS = "hyperparameters"  # config.hyperparameters
# What every session sums over its model events (cost stays null until one has a known cost).
USAGE_FIELDS: tuple[str, ...] = ("model_calls", PROMPT_TOKENS, COMPLETION_TOKENS, TOTAL_TOKENS, COST)
DEFAULT_PROJECT = "default"

Namespaces = dict[str, dict[str, Any]]


def empty_namespaces() -> Namespaces:
    return {ns: {} for ns in NAMESPACES}


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Merge ``update`` into a copy of ``base``: nested objects merge key by key, anything else
    (lists, scalars, None) replaces. Unlike JSON merge patch, None is kept as a value."""
    merged = dict(base)
    for key, value in update.items():
        old = merged.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            merged[key] = deep_merge(old, value)
        else:
            merged[key] = value
    return merged


@dataclass(slots=True)
class Event:
    """One span. Times are nanoseconds since the epoch; ids are lowercase hex strings."""

    project: str
    event_id: str
    session_id: str
    trace_id: str
    parent_id: str | None
    event_type: str
    event_name: str
    start_ns: int
    end_ns: int
    error: str | None = None
    namespaces: Namespaces = field(default_factory=empty_namespaces)
    # The non-empty namespaces as JSON text, set by the server's limit check (which has to serialise
    # them anyway) so that the store's single writer thread does not serialise them again.
    namespace_json: dict[str, str] | None = None
    # The span named no session: session_id is its trace id until a span of the trace names one.
    session_from_trace: bool = False

    @property
    def duration_ms(self) -> float:
        return max(self.end_ns - self.start_ns, 0) / 1e6


@dataclass(slots=True)
class SessionUpdate:
    """What one record says about a session: fields it sets (None = unknown) and namespaces to
    merge. Sessions are built from many such updates, in any order, plus their events."""

    project: str
    session_id: str
    session_name: str | None = None
    source: str | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    namespaces: Namespaces = field(default_factory=empty_namespaces)


@dataclass(slots=True)
class Batch:
    """The unit the server hands to a store: everything one ingest request carried."""

    events: list[Event] = field(default_factory=list)
    sessions: list[SessionUpdate] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.events) + len(self.sessions)
