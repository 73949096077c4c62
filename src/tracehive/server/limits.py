"""Limits on what one ingest request may carry, so that hostile or broken input costs little.

Structural abuse (too many attributes, huge keys, objects nested too deep) rejects the request
with a 4xx that names the place. Overlong strings are kept, cut to the limit, and end with
:data:`TRUNCATION_MARKER` so that a reader can tell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracehive.model import NAMESPACES, Batch
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
    """Check nesting depth and cut overlong strings in every namespace, in place."""
    for record in (*batch.events, *batch.sessions):
        for ns in NAMESPACES:
            values = record.namespaces.get(ns)
            if values:
                record.namespaces[ns] = _bounded(values, limits, ns)


def _bounded(root: dict[str, Any], limits: Limits, ns: str) -> dict[str, Any]:
    """Walk without recursion (the input may be nested deeper than Python's stack allows)."""
    out: dict[str, Any] = {}
    stack: list[tuple[Any, Any, int, str]] = [(root, out, 1, ns)]
    while stack:
        source, target, depth, where = stack.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, value in items:
            if isinstance(key, str) and len(key) > limits.max_key_length:
                raise LimitError(f"{where}: a key of {len(key)} characters; the limit is {limits.max_key_length}")
            if isinstance(value, dict | list):
                if depth >= limits.max_depth:
                    raise LimitError(f"{where}.{key}: nested deeper than {limits.max_depth} levels")
                child: Any = {} if isinstance(value, dict) else [None] * len(value)
                stack.append((value, child, depth + 1, f"{where}.{key}"))
                value = child
            elif isinstance(value, str) and len(value) > limits.max_value_length:
                value = value[: limits.max_value_length] + TRUNCATION_MARKER
            target[key] = value
    return out
