"""The filter language for sessions and events: ``parse`` turns text into an AST that each store
compiles to its own SQL. The grammar is in README.md next to this file.

``SESSION_FIELDS`` and ``EVENT_FIELDS`` say which first segments a filter may use and what kind
each is ("string", "number", "time", or "json" for a namespace a path can lead into).
"""

from types import MappingProxyType

from tracehive.filters.ast import And, Compare, Exists, Expr, Field, FilterError, Not, Or, Value
from tracehive.filters.parser import MAX_DEPTH, MAX_LENGTH, format_field, parse, parse_field
from tracehive.model import NAMESPACES, USAGE_FIELDS

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
        # roll-ups of the session's model events; cost is null until one has a known cost
        **dict.fromkeys(USAGE_FIELDS, "number"),
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


def group_field(text: str) -> Field:
    """A field sessions can be grouped by: a plain column other than a time, or a key inside a
    namespace (``user_properties.plan``)."""
    field = parse_field(text)
    kind = SESSION_FIELDS.get(field.column)
    if kind is None:
        raise FilterError(f"unknown field '{field.column}' (known: {', '.join(SESSION_FIELDS)})", 0)
    if kind == "time":
        raise FilterError(f"cannot group by the time '{field.column}'", 0)
    if kind == "json" and not field.path:
        raise FilterError(f"group by a key inside '{field.column}', like {field.column}.plan", 0)
    if kind != "json" and field.path:
        raise FilterError(f"'{field.column}' is a {kind} and has no sub-fields", 0)
    return field


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
    "format_field",
    "group_field",
    "parse",
    "parse_field",
]
