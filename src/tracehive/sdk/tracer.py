"""HoneyHiveTracer: one session, and the module-level helpers that use the default tracer.

``init`` makes no network call: the session id is made up on the client and the session's start
is sent as a span through the same batch pipeline as every event, so neither ``init`` nor
``enrich_session`` can block the program, whatever state the server is in.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context

from tracehive import attributes as A
from tracehive.model import DEFAULT_PROJECT
from tracehive.privacy.otlp import redactor_from
from tracehive.privacy.rules import RuleError
from tracehive.sdk import pipeline, threads
from tracehive.sdk.serialize import dumps
from tracehive.sdk.spans import NAMESPACE_ATTRS, checked_namespaces, current_state, enrich_current_span

logger = logging.getLogger("tracehive")

DEFAULT_SERVER_URL = "http://127.0.0.1:8418"
DEFAULT_SOURCE = "dev"
SERVER_URL_ENV = ("HH_API_URL", "HONEYHIVE_SERVER_URL", "HH_SERVER_URL")
SESSION_SPAN_NAME = "session"

_default: HoneyHiveTracer | None = None


def _text(name: str, value: Any, *env: str) -> str | None:
    """``value`` if it is a non-empty string, else the first set environment variable."""
    if value is not None and not isinstance(value, str):
        logger.warning("tracehive: init(%s=...) expects a string, got %s; ignored", name, type(value).__name__)
        value = None
    if value:
        return value
    for var in env:
        if os.environ.get(var):
            return os.environ[var]
    return None


def _script_name() -> str:
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return Path(main_file).stem if main_file else "python"


class HoneyHiveTracer:
    """A session: every span it makes carries its session id, project and source."""

    def __init__(
        self,
        *,
        api_key: str | None,
        project: str,
        session_name: str,
        source: str,
        server_url: str,
        session_id: str,
    ) -> None:
        self.project = project
        self.session_name = session_name
        self.source = source
        self.server_url = server_url
        self.session_id = session_id
        self.span_attributes: dict[str, str] = {
            A.SESSION_ID: session_id,
            A.PROJECT: project,
            A.SOURCE: source,
        }
        try:
            self._pipeline: pipeline.Pipeline | None = pipeline.get_pipeline(server_url, api_key)
            self.otel_tracer: trace.Tracer = self._pipeline.tracer
        except Exception:
            logger.warning("tracehive: could not set up the export pipeline; spans are dropped", exc_info=True)
            self._pipeline = None
            self.otel_tracer = trace.NoOpTracer()

    @classmethod
    def init(
        cls,
        api_key: str | None = None,
        project: str | None = None,
        session_name: str | None = None,
        source: str | None = None,
        server_url: str | None = None,
        session_id: str | None = None,
        redact: Any = None,
        **kwargs: Any,
    ) -> HoneyHiveTracer:
        """Start a session and make it the default for ``@trace`` and the module-level helpers.
        ``redact``: redaction rules applied before anything is sent (see docs/privacy.md)."""
        global _default
        if kwargs:
            logger.debug("tracehive: init ignores unsupported arguments %s", sorted(kwargs))
        tracer = cls(
            api_key=_text("api_key", api_key, "HH_API_KEY"),
            project=_text("project", project, "HH_PROJECT") or DEFAULT_PROJECT,
            session_name=_text("session_name", session_name) or _script_name(),
            source=_text("source", source) or DEFAULT_SOURCE,
            server_url=_text("server_url", server_url, *SERVER_URL_ENV) or DEFAULT_SERVER_URL,
            session_id=_text("session_id", session_id) or str(uuid.uuid4()),
        )
        if redact is not None:
            tracer._redact(redact)
        threads.install()
        tracer._emit_session_record({A.SESSION_NAME: tracer.session_name, A.SOURCE: tracer.source})
        _default = tracer
        return tracer

    def _redact(self, given: Any) -> None:
        """Apply the rules to every batch this tracer's pipeline sends. Rules that cannot be used
        send nothing rather than the clear data they were meant to keep in."""
        try:
            redactor = redactor_from(given)
        except RuleError as exc:
            logger.warning("tracehive: redact: %s; no span is sent", exc)
            self._pipeline, self.otel_tracer = None, trace.NoOpTracer()
            return
        if self._pipeline is not None and hasattr(self._pipeline.exporter, "redactor"):
            self._pipeline.exporter.redactor = redactor

    def _emit_session_record(self, attrs: dict[str, str], session_id: str | None = None) -> None:
        """A zero-length root span that tells the server something about the session."""
        try:
            now = time.time_ns()
            attrs = {
                A.RECORD: A.RECORD_SESSION,
                A.SESSION_ID: session_id or self.session_id,
                A.PROJECT: self.project,
                **attrs,
            }
            span = self.otel_tracer.start_span(SESSION_SPAN_NAME, Context(), attributes=attrs, start_time=now)
            span.end(end_time=now)
        except Exception:
            logger.warning("tracehive: could not record the session", exc_info=True)

    def enrich_session(
        self,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        outputs: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        feedback: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        user_properties: dict[str, Any] | None = None,
        session_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Add namespaces to the session (this one, or ``session_id``); the server merges them."""
        if kwargs:
            logger.debug("tracehive: enrich_session ignores unsupported arguments %s", sorted(kwargs))
        given = checked_namespaces(
            {
                "metadata": metadata,
                "inputs": inputs,
                "outputs": outputs,
                "config": config,
                "feedback": feedback,
                "metrics": metrics,
                "user_properties": user_properties,
            },
            "enrich_session",
        )
        if session_id is not None and not isinstance(session_id, str):
            logger.warning("tracehive: enrich_session(session_id=...) expects a string; using this session")
            session_id = None
        if given:
            self._emit_session_record({NAMESPACE_ATTRS[ns]: dumps(values) for ns, values in given.items()}, session_id)

    def enrich_span(
        self,
        attributes: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        feedback: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        outputs: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        user_properties: dict[str, Any] | None = None,
        error: str | None = None,
        **kwargs: Any,
    ) -> bool:
        """Add namespaces to the current span; see :func:`enrich_span`."""
        return enrich_span(
            attributes, metadata, metrics, feedback, inputs, outputs, config, user_properties, error, **kwargs
        )

    def flush(self, timeout: float | None = None, timeout_millis: float | None = None) -> bool:
        """Send what is queued; returns within ``timeout`` seconds, True if all of it was delivered."""
        if self._pipeline is None:
            return False
        return self._pipeline.flush(_seconds(timeout, timeout_millis))


def _seconds(timeout: float | None, timeout_millis: float | None) -> float:
    if isinstance(timeout, int | float):
        return float(timeout)
    if isinstance(timeout_millis, int | float):
        return timeout_millis / 1000
    return pipeline.DEFAULT_FLUSH_TIMEOUT_S


def latest_tracer() -> HoneyHiveTracer | None:
    """The latest ``init``'ed tracer."""
    return _default


def default_tracer() -> HoneyHiveTracer | None:
    """The tracer of the innermost traced call, else the latest ``init``'ed one."""
    state = current_state()
    return state.tracer if state is not None else _default


def enrich_span(
    attributes: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    feedback: dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    user_properties: dict[str, Any] | None = None,
    error: str | None = None,
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


def enrich_session(
    session_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    feedback: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    user_properties: dict[str, Any] | None = None,
    tracer: HoneyHiveTracer | None = None,
    **kwargs: Any,
) -> None:
    """Enrich the session of ``tracer``, of the running traced call, or of the default tracer."""
    try:
        active = tracer if isinstance(tracer, HoneyHiveTracer) else default_tracer()
        if active is None:
            logger.warning("tracehive: enrich_session called before HoneyHiveTracer.init; ignored")
            return
        active.enrich_session(
            metadata, inputs, outputs, config, feedback, metrics, user_properties, session_id, **kwargs
        )
    except Exception:
        logger.warning("tracehive: enrich_session failed", exc_info=True)


def flush(
    tracer: HoneyHiveTracer | None = None, timeout: float | None = None, timeout_millis: float | None = None
) -> bool:
    """Send what every tracer (or just ``tracer``) has queued, within ``timeout`` seconds."""
    if isinstance(tracer, HoneyHiveTracer):
        return tracer.flush(timeout, timeout_millis)
    return pipeline.flush_all(_seconds(timeout, timeout_millis))
