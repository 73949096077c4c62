"""Limits on what one ingest request may carry, so that hostile or broken input costs little.

Structural abuse (too many attributes, huge keys, objects nested too deep, long arrays, huge
namespaces, long ids) rejects the request with a 4xx that names the place. Overlong strings (in
namespaces, and names, sources and errors) are kept, cut to the limit, and end with
:data:`TRUNCATION_MARKER` so that a reader can tell. Every value is made storable here, before the
writer opens a transaction: integers beyond 64 bits become doubles (as the JSON decoder reads
them), and one beyond a double's range is refused; NaN and infinities are stored as null.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tracehive.model import Batch
from tracehive.server.otlp import OtlpError, Span

TRUNCATION_MARKER = "…[truncated]"
_INT_RANGE = (-(2**63), 2**64 - 1)  # what orjson writes: int64 and uint64
MAX_ID_LENGTH = 256


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int = 16 * 1024 * 1024
    max_attributes: int = 1024  # per span
    max_key_length: int = 512
    max_value_length: int = 64 * 1024  # characters of one string value
    max_depth: int = 32  # nesting of objects and lists inside a namespace
    max_array_length: int = 10_000  # elements of one list inside a namespace
    max_namespace_bytes: int = 1024 * 1024  # one namespace of one event or update, as JSON text
    max_id_length: int = MAX_ID_LENGTH  # characters of a project, session or event id


class LimitError(OtlpError):
    """The request breaks a limit; the message says which and where."""


def check_spans(spans: list[Span], limits: Limits) -> None:
    for index, span in enumerate(spans):
        if len(span.attributes) > limits.max_attributes:
            raise LimitError(
                f"span {index} ({span.name[:64]!r}) has {len(span.attributes)} attributes; "
                f"the limit is {limits.max_attributes}"
            )
        for key in span.attributes:
            if len(key) > limits.max_key_length:
                raise LimitError(
                    f"span {index} ({span.name[:64]!r}) has an attribute key of {len(key)} characters; "
                    f"the limit is {limits.max_key_length}"
                )


def enforce_batch(batch: Batch, limits: Limits) -> None:
    """Check ids, nesting depth, list and key lengths, cut overlong strings and make every value
    storable, in place. Events keep their namespaces' JSON text for the store (see :func:`_checked_json`)."""
    short = _short_text(limits)
    longest_id, longest = limits.max_id_length, limits.max_value_length
    for event in batch.events:
        # Mapping makes these strings, and the event, trace and parent ids were checked before (the
        # OTLP decoder: hex of a fixed length; POST /events: their length): plain comparisons spare
        # the usual event any further call.
        if len(event.project) > longest_id or len(event.session_id) > longest_id:
            _check_ids(limits, project=event.project, session_id=event.session_id)
        error = event.error
        if len(event.event_name) > longest or len(event.event_type) > longest or (error and len(error) > longest):
            event.event_name, event.event_type = _cut(event.event_name, limits), _cut(event.event_type, limits)
            event.error = _cut(error, limits)
        event.namespace_json = {
            ns: _checked_json(values, limits, ns, short).decode() for ns, values in event.namespaces.items() if values
        }
    for update in batch.sessions:
        _check_ids(limits, project=update.project, session_id=update.session_id)
        update.session_name = _cut(update.session_name, limits)
        update.source = _cut(update.source, limits)
        for ns, values in update.namespaces.items():
            if values:
                _checked_json(values, limits, ns, short)


def _short_text(limits: Limits) -> int:
    """The length of JSON text that cannot hold a string, key or list past the limits."""
    return min(limits.max_key_length, limits.max_value_length, 2 * limits.max_array_length)


def _check_ids(limits: Limits, **ids: str | None) -> None:
    for name, value in ids.items():
        if value is not None and len(value) > limits.max_id_length:
            raise LimitError(
                f"{name}: {len(value)} characters (starting {value[:32]!r}); the limit is {limits.max_id_length}"
            )


def _cut(value: Any, limits: Limits) -> str | None:
    """A name, source or error as text (an attribute may hold any type), cut as namespace strings are."""
    if value is None:
        return None
    value = value if type(value) is str else str(value)
    if len(value) <= limits.max_value_length:
        return value
    return value[: limits.max_value_length] + TRUNCATION_MARKER


def _checked_json(values: dict[str, Any], limits: Limits, ns: str, short: int) -> bytes:
    """The namespace as JSON, within the limits. The text bounds what it holds: no string (key or
    value) is longer than the text, no list has more elements than half its length, no nesting is
    deeper than its count of brackets; only a text that could break a limit, or that orjson cannot
    write (an integer beyond 64 bits), is walked (and mended) value by value."""
    try:
        text = orjson.dumps(values, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # too deep for the encoder (the walk names where), or an integer too large
        _bound_in_place(values, limits, ns)
        text = _dumps(values, ns)
    else:
        small = len(text) <= short and text.count(b"{") + text.count(b"[") <= limits.max_depth
        if not small and _bound_in_place(values, limits, ns):
            text = _dumps(values, ns)
    if len(text) > limits.max_namespace_bytes:
        raise LimitError(f"{ns}: {len(text)} bytes of JSON; the limit is {limits.max_namespace_bytes}")
    return text


def _dumps(values: dict[str, Any], ns: str) -> bytes:
    try:
        return orjson.dumps(values, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:  # what the walk does not mend: a value that is not JSON
        raise LimitError(f"{ns}: cannot be stored as JSON: {exc}") from None


def _storable_int(value: int, path: tuple, key: Any) -> float:
    """An integer beyond 64 bits as the double nearest to it; one beyond a double's range is refused."""
    try:
        return float(value)
    except OverflowError:
        raise LimitError(f"{_spell(path, key)}: an integer beyond the range of a 64-bit float") from None


def _bound_in_place(root: dict[str, Any], limits: Limits, ns: str) -> bool:
    """Walk without recursion (the input may be nested deeper than Python's stack allows). Paths
    are kept as tuples and spelled out only for an error message. Returns whether a value changed."""
    cut = False
    stack: list[tuple[dict | list, tuple]] = [(root, (ns,))]
    while stack:
        node, path = stack.pop()
        items = node.items() if type(node) is dict else enumerate(node)
        for key, value in items:
            kind = type(value)
            if kind is str:
                if len(value) > limits.max_value_length:
                    node[key] = value[: limits.max_value_length] + TRUNCATION_MARKER
                    cut = True
            elif kind is int and not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
                node[key] = _storable_int(value, path, key)
                cut = True
            elif kind is dict or kind is list:
                if len(path) >= limits.max_depth:
                    raise LimitError(f"{_spell(path, key)}: nested deeper than {limits.max_depth} levels")
                if kind is list and len(value) > limits.max_array_length:
                    raise LimitError(
                        f"{_spell(path, key)}: a list of {len(value)} elements; the limit is {limits.max_array_length}"
                    )
                stack.append((value, (*path, key)))
            if type(key) is str and len(key) > limits.max_key_length:
                raise LimitError(
                    f"{_spell(path, '')}: a key of {len(key)} characters; the limit is {limits.max_key_length}"
                )
    return cut


def _spell(path: tuple, key: Any) -> str:
    return ".".join(str(part) for part in (*path, key) if part != "")
