"""Limits on what one ingest request may carry, so that hostile or broken input costs little.

Structural abuse (too many attributes, huge keys, objects nested too deep) rejects the request
with a 4xx that names the place. Overlong strings are kept, cut to the limit, and end with
:data:`TRUNCATION_MARKER` so that a reader can tell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tracehive.model import Batch, Event
from tracehive.server.otlp import OtlpError, Span

TRUNCATION_MARKER = "…[truncated]"


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int = 16 * 1024 * 1024
    max_attributes: int = 1024  # per span
    max_key_length: int = 512
    max_value_length: int = 64 * 1024  # characters of one string value
    max_depth: int = 32  # nesting of objects and lists inside a namespace


class LimitError(OtlpError):
    """The request breaks a limit; the message says which and where."""


def check_spans(spans: list[Span], limits: Limits) -> None:
    for index, span in enumerate(spans):
        if len(span.attributes) > limits.max_attributes:
            raise LimitError(
                f"span {index} ({span.name!r}) has {len(span.attributes)} attributes; "
                f"the limit is {limits.max_attributes}"
            )
        for key in span.attributes:
            if len(key) > limits.max_key_length:
                raise LimitError(
                    f"span {index} ({span.name!r}) has an attribute key of {len(key)} characters; "
                    f"the limit is {limits.max_key_length}"
                )


def enforce_batch(batch: Batch, limits: Limits) -> None:
    """Check nesting depth and key lengths and cut overlong strings in every namespace, in place.
    Events keep their namespaces' JSON text for the store (see :func:`_checked_json`)."""
    for event in batch.events:
        _enforce_event(event, limits)
    for update in batch.sessions:
        for ns, values in update.namespaces.items():
            if values:
                _checked_json(values, limits, ns)


def _enforce_event(event: Event, limits: Limits) -> None:
    texts: dict[str, str] | None = {}
    for ns, values in event.namespaces.items():
        if values:
            text = _checked_json(values, limits, ns)
            if texts is not None and text is not None:
                texts[ns] = text.decode()
            else:
                texts = None
    event.namespace_json = texts


def _checked_json(values: dict[str, Any], limits: Limits, ns: str) -> bytes | None:
    """The namespace as JSON, within the limits (None if it cannot be serialised here: the store
    then tries and reports). The text bounds what it holds: no string (key or value) is longer than
    the text, no nesting deeper than its count of brackets; only a text that could break a limit is
    walked (and cut) value by value."""
    try:
        text = orjson.dumps(values, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # too deep for the encoder (the walk names where), or not JSON
        _bound_in_place(values, limits, ns)
        return None
    short = len(text) <= limits.max_key_length and len(text) <= limits.max_value_length
    if short and text.count(b"{") + text.count(b"[") <= limits.max_depth:
        return text
    if _bound_in_place(values, limits, ns):
        text = orjson.dumps(values, option=orjson.OPT_NON_STR_KEYS)
    return text


def _bound_in_place(root: dict[str, Any], limits: Limits, ns: str) -> bool:
    """Walk without recursion (the input may be nested deeper than Python's stack allows). Paths
    are kept as tuples and spelled out only for an error message. Returns whether a string was cut."""
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
            elif kind is dict or kind is list:
                if len(path) >= limits.max_depth:
                    raise LimitError(f"{_spell(path, key)}: nested deeper than {limits.max_depth} levels")
                stack.append((value, (*path, key)))
            if type(key) is str and len(key) > limits.max_key_length:
                raise LimitError(
                    f"{_spell(path, '')}: a key of {len(key)} characters; the limit is {limits.max_key_length}"
                )
    return cut


def _spell(path: tuple, key: Any) -> str:
    return ".".join(str(part) for part in (*path, key) if part != "")
