"""HoneyHive's module-level tracing functions, acting on the current session or a given tracer."""

from __future__ import annotations

import logging
from typing import Any

from tracehive.sdk import pipeline, sessions
from tracehive.sdk.arguments import seconds
from tracehive.sdk.spans import enrich_span as enrich_current
from tracehive.sdk.tracer import DEFAULT_FLUSH_MILLIS, HoneyHiveTracer

logger = logging.getLogger("tracehive")


def _given_tracer(*candidates: Any) -> HoneyHiveTracer | None:
    return next((c for c in candidates if isinstance(c, HoneyHiveTracer)), None)


def enrich_span(
    attributes: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    feedback: dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    error: str | None = None,
    event_id: str | None = None,
    tracer: Any = None,
    user_properties: dict[str, Any] | None = None,
    **kwargs: Any,
) -> bool:
    """Merge namespaces into the current span; False (and a warning) if there is none.

    As in HoneyHive, ``attributes`` and any other keyword arguments go to ``metadata``; the span is
    always the current one (``event_id`` and ``tracer`` are accepted for HoneyHive's signature).
    """
    return enrich_current(
        attributes, metadata, metrics, feedback, inputs, outputs, config, error, user_properties, **kwargs
    )


def enrich_session(
    session_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    tracer: Any = None,
    tracer_instance: Any = None,
    inputs: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    feedback: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    user_properties: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """Enrich the session ``session_id`` (from code that never made it), else the current session,
    through ``tracer``, else the current session's tracer, else the default one."""
    try:
        active = _given_tracer(tracer, tracer_instance)
        if active is None:
            session = sessions.resolve()
            active = session.tracer if session is not None else None
        if active is None:
            logger.warning("tracehive: enrich_session called before HoneyHiveTracer.init; ignored")
            return
        active.enrich_session(
            metadata, inputs, outputs, config, feedback, metrics, user_properties, session_id, **kwargs
        )
    except Exception:
        logger.warning("tracehive: enrich_session failed", exc_info=True)


def flush(
    tracer_instance: Any = None,
    timeout_millis: float = DEFAULT_FLUSH_MILLIS,
    *,
    timeout: float | None = None,
    tracer: Any = None,
) -> bool:
    """Send what ``tracer_instance`` (or every tracer) has queued; ``timeout`` in seconds, else
    ``timeout_millis``. True if all of it was delivered in time."""
    try:
        given = _given_tracer(tracer_instance, tracer)
        if given is not None:
            return given.flush(timeout_millis, timeout=timeout)
        return pipeline.flush_all(seconds(timeout, timeout_millis, pipeline.DEFAULT_FLUSH_TIMEOUT_S))
    except Exception:
        logger.warning("tracehive: flush failed", exc_info=True)
        return False


def set_default_tracer(tracer: HoneyHiveTracer | None) -> None:
    """The tracer used where the context has no session (None: back to none)."""
    if tracer is not None and not isinstance(tracer, HoneyHiveTracer):
        logger.warning("tracehive: set_default_tracer expects a HoneyHiveTracer, got %s", type(tracer).__name__)
        return
    sessions.set_default(tracer)
