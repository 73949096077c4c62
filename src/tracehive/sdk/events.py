"""Spans the application opens around a block, and events it records after the fact."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from tracehive import attributes as A
from tracehive.model import DEFAULT_EVENT_TYPE, EVENT_TYPES
from tracehive.sdk import sessions
from tracehive.sdk.spans import SpanState

if TYPE_CHECKING:
    from tracehive.sdk.tracer import HoneyHiveTracer

logger = logging.getLogger("tracehive")
# What create_event takes besides outputs (given to the span when it ends).
EVENT_NAMESPACES = ("inputs", "metadata", "config", "feedback", "metrics")


def _start(tracer: HoneyHiveTracer, name: str, event_type: Any, **options: Any) -> SpanState:
    """A span of the current session (of ``tracer``), child of the current span."""
    parent = otel_context.get_current()
    session = sessions.resolve(parent, tracer=tracer) or tracer.session
    span = tracer.tracer.start_span(name, parent, **options)
    own = {A.EVENT_TYPE: event_type if event_type in EVENT_TYPES else DEFAULT_EVENT_TYPE, A.EVENT_NAME: name}
    return SpanState(span, session, {**session.span_attributes, **own}, None, None, parent)


@contextmanager
def span_block(
    tracer: HoneyHiveTracer,
    name: str,
    kind: SpanKind,
    attributes: dict[str, Any] | None,
    links: Any,
    start_time: int | None,
    record_exception: bool,
) -> Iterator[Any]:
    """The span of a ``with tracer.start_span(...)`` block, current inside it; an exception is
    recorded (unless ``record_exception`` is false) and passes through unchanged."""
    state = None
    try:
        event_type = (attributes or {}).get(A.EVENT_TYPE, DEFAULT_EVENT_TYPE)
        state = _start(
            tracer, name, event_type, kind=kind, attributes=attributes, links=links, start_time=start_time,
            record_exception=False, set_status_on_exception=False,
        )  # fmt: skip
    except Exception:
        logger.warning("tracehive: start_span could not start a span; not traced", exc_info=True)
    if state is None:
        yield trace.INVALID_SPAN
        return
    token = otel_context.attach(state.context)
    try:
        yield state.span
    except BaseException as exc:
        otel_context.detach(token)
        state.finish(None, exc if record_exception else None)
        raise
    otel_context.detach(token)
    state.finish(None)


def record_event(tracer: HoneyHiveTracer, name: str, fields: dict[str, Any]) -> str:
    """An event that ended now and lasted ``fields["duration"]`` milliseconds; its event id."""
    end = time.time_ns()
    duration_ms = fields["duration"]
    lasted = int(duration_ms * 1_000_000) if isinstance(duration_ms, int | float) and duration_ms > 0 else 0
    state = _start(tracer, name, fields["event_type"], start_time=end - lasted)
    for ns in EVENT_NAMESPACES:
        if isinstance(fields[ns], dict) and fields[ns]:
            state.merge(ns, fields[ns])
    if fields["error"] is not None:
        state.error = str(fields["error"])
    state.finish(fields["outputs"] if isinstance(fields["outputs"], dict) else None, end_time=end)
    return format(state.span.get_span_context().span_id, "016x")
