"""The filter language for sessions and events: ``parse`` turns text into an AST that each store
compiles to its own SQL. The grammar is in README.md next to this file.

``SESSION_FIELDS`` and ``EVENT_FIELDS`` say which first segments a filter may use and what kind
each is ("string", "number", "time", or "json" for a namespace a path can lead into).
"""

from types import MappingProxyType

from tracehive.filters.ast import And, Compare, Exists, Expr, Field, FilterError, Not, Or, Value
from tracehive.filters.parser import MAX_DEPTH, MAX_LENGTH, parse
from tracehive.model import NAMESPACES

_NAMESPACE_FIELDS = dict.fromkeys(NAMESPACES, "json")

SESSION_FIELDS = MappingProxyType(
    {
        "session_id": "string",
        "session_name": "string",
        "source": "string",
        "user_id": "string",
        "start_time": "time",
        "end_time": "time",
        "duration_ms": "number",
        "event_count": "number",
        "error_count": "number",
        **_NAMESPACE_FIELDS,
    }
)

EVENT_FIELDS = MappingProxyType(
    {
        "event_id": "string",
        "session_id": "string",
        "trace_id": "string",
        "parent_id": "string",
        "event_type": "string",
        "event_name": "string",
        "error": "string",
        "start_time": "time",
        "end_time": "time",
        "duration_ms": "number",
        **_NAMESPACE_FIELDS,
    }
)

__all__ = [
    "EVENT_FIELDS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "SESSION_FIELDS",
    "And",
    "Compare",
    "Exists",
    "Expr",
    "Field",
    "FilterError",
    "Not",
    "Or",
    "Value",
    "parse",
]
