"""The state of a running traced call, and enrichment of the current span.

While a ``@trace`` call runs, its namespaces live in a plain dict on a :class:`SpanState` that
sits in the OpenTelemetry context next to the span. ``enrich_span`` merges into that dict and the
JSON attributes are written once, when the span ends: repeated enrichment costs dict merges, not
serialisations. A span the application created itself has no state; it is enriched directly.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from tracehive import attributes as A
from tracehive.model import NAMESPACES, deep_merge
from tracehive.sdk.serialize import dumps

if TYPE_CHECKING:
    from tracehive.sdk.sessions import Session

logger = logging.getLogger("tracehive")

STATE_KEY = otel_context.create_key("tracehive-span-state")
# The current session (see :mod:`tracehive.sdk.sessions`); defined here so a traced call can set it.
SESSION_KEY = otel_context.create_key("tracehive-session")
NAMESPACE_ATTRS: dict[str, str] = {ns: f"{A.NAMESPACE_PREFIX}{ns}" for ns in NAMESPACES}
INPUTS_ATTR = NAMESPACE_ATTRS["inputs"]


class SpanState:
    """What a traced call accumulates until its span ends.

    All of the span's attributes are written in one call when it ends: the SDK cleans and locks
    per call, so one batch is the cheapest way (tracehive's pipeline has no sampler or processor
    that looks at attributes at start).
    """

    __slots__ = ("attributes", "context", "ended", "error", "inputs_json", "namespaces", "session", "span")

    def __init__(
        self,
        span: Span,
        session: Session,
        attributes: dict[str, str],
        namespaces: dict[str, dict[str, Any]] | None,
        inputs_json: str | None,
        parent: otel_context.Context,
    ) -> None:
        self.span = span
        self.session = session
        # Both shared with the decorator: merges copy, never mutate.
        self.attributes = attributes
        self.namespaces = namespaces
        self.inputs_json = inputs_json
        self.error: str | None = None
        self.ended = False
        context = otel_context.set_value(STATE_KEY, self, trace.set_span_in_context(span, parent))
        if parent.get(SESSION_KEY) is not session:
            context = otel_context.set_value(SESSION_KEY, session, context)
        self.context = context

    def merge(self, namespace: str, values: dict[str, Any]) -> None:
        namespaces = self.namespaces = dict(self.namespaces) if self.namespaces else {}
        namespaces[namespace] = deep_merge(namespaces.get(namespace) or {}, values)

    def finish(
        self, outputs: dict[str, Any] | None, exc: BaseException | None = None, end_time: int | None = None
    ) -> None:
        """Write the attributes and the error, then end the span. Never raises."""
        if self.ended:
            return
        self.ended = True
        try:
            span = self.span
            attrs = self._final_attributes(outputs)
            if exc is not None:
                message = error_message(exc)
                self.error = self.error or message
                span.record_exception(exc, escaped=True)
                span.set_status(Status(StatusCode.ERROR, message))
            if self.error is not None:
                attrs[A.ERROR] = self.error
            span.set_attributes(attrs)
            span.end(end_time)
        except Exception:
            logger.warning("tracehive: could not finish a span", exc_info=True)

    def _final_attributes(self, outputs: dict[str, Any] | None) -> dict[str, Any]:
        attrs: dict[str, Any] = dict(self.attributes)
        namespaces = dict(self.namespaces) if self.namespaces else {}
        if outputs is not None:
            namespaces["outputs"] = deep_merge(namespaces["outputs"], outputs) if "outputs" in namespaces else outputs
        extra_inputs = namespaces.pop("inputs", None)
        for ns, values in namespaces.items():
            attrs[NAMESPACE_ATTRS[ns]] = dumps(values)
        if extra_inputs:
            recorded = orjson.loads(self.inputs_json) if self.inputs_json else {}
            attrs[INPUTS_ATTR] = dumps(deep_merge(recorded, extra_inputs))
        elif self.inputs_json is not None:
            attrs[INPUTS_ATTR] = self.inputs_json
        return attrs


def error_message(exc: BaseException) -> str:
    """``Type: message``, the form the server and HoneyHive both use."""
    return f"{type(exc).__name__}: {exc}"


def current_state() -> SpanState | None:
    """The state of the innermost running traced call, if any (possibly not the current span)."""
    return otel_context.get_value(STATE_KEY)


def checked_namespaces(given: dict[str, Any], caller: str) -> dict[str, dict[str, Any]]:
    """The given namespaces that are dicts; anything else is logged and dropped."""
    valid = {}
    for ns, values in given.items():
        if values is None:
            continue
        if isinstance(values, dict):
            if values:
                valid[ns] = values
        else:
            logger.warning("tracehive: %s(%s=...) expects a dict, got %s; ignored", caller, ns, type(values).__name__)
    return valid


def enrich_current_span(namespaces: dict[str, Any], error: Any = None) -> bool:
    """Merge namespaces (and an error string) into the current span; False if there is none."""
    given = checked_namespaces(namespaces, "enrich_span")
    if error is not None and not isinstance(error, str):
        error = str(error)
    span = trace.get_current_span()
    state = current_state()
    if state is not None and state.span is span:
        if state.ended:
            logger.warning("tracehive: enrich_span called after its span ended; ignored")
            return False
        for ns, values in given.items():
            state.merge(ns, values)
        if error is not None:
            state.error = error
        return True
    if not span.is_recording():
        logger.warning("tracehive: enrich_span called outside any traced span; ignored")
        return False
    _enrich_foreign_span(span, given, error)
    return True


def _enrich_foreign_span(span: Span, given: dict[str, dict[str, Any]], error: str | None) -> None:
    """A span created by the application's own OTel tracer: write (merged) attributes now."""
    existing = getattr(span, "attributes", None) or {}
    attrs: dict[str, str] = {}
    for ns, values in given.items():
        key = NAMESPACE_ATTRS[ns]
        old = existing.get(key)
        if isinstance(old, str):
            try:
                recorded = orjson.loads(old)
            except orjson.JSONDecodeError:
                recorded = None
            if isinstance(recorded, dict):
                values = deep_merge(recorded, values)
        attrs[key] = dumps(values)
    if error is not None:
        attrs[A.ERROR] = error
    if attrs:
        span.set_attributes(attrs)


def enrich_span(
    attributes: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    feedback: dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    error: str | None = None,
    user_properties: dict[str, Any] | None = None,
    **kwargs: Any,
) -> bool:
    """Merge namespaces into the current span; False (and a warning) if there is none.

    As in HoneyHive, ``attributes`` and any other keyword arguments go to ``metadata``.
    """
    try:
        if attributes or kwargs:
            extra = {**attributes} if isinstance(attributes, dict) else {}
            extra.update(kwargs)
            metadata = {**extra, **metadata} if isinstance(metadata, dict) else extra
        return enrich_current_span(
            {
                "user_properties": user_properties,
                "metadata": metadata,
                "metrics": metrics,
                "feedback": feedback,
                "config": config,
                "inputs": inputs,
                "outputs": outputs,
            },
            error,
        )
    except Exception:
        logger.warning("tracehive: enrich_span failed", exc_info=True)
        return False
