"""HoneyHiveTracer: a project's tracer and its sessions, with HoneyHive 1.7.0's names and arguments.

Nothing here makes a network call on the application's thread: session ids are made up on the client
and a session's start or enrichment is sent as a span through the same batch pipeline as every event,
where HoneyHive's SDK calls its REST API synchronously. Which session new work belongs to is kept in
the execution context (see :mod:`tracehive.sdk.sessions`), so one tracer serves concurrent requests.
Every public method logs a warning rather than raise into the application.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from tracehive import attributes as A
from tracehive.model import DEFAULT_EVENT_TYPE, DEFAULT_PROJECT, EVENT_TYPES
from tracehive.privacy.otlp import redactor_from
from tracehive.privacy.rules import RuleError
from tracehive.sdk import pipeline, sessions, threads
from tracehive.sdk.provider import make_provider
from tracehive.sdk.serialize import dumps
from tracehive.sdk.sessions import Session
from tracehive.sdk.spans import NAMESPACE_ATTRS, SpanState, checked_namespaces, enrich_span

logger = logging.getLogger("tracehive")

DEFAULT_SERVER_URL = "http://127.0.0.1:8418"
DEFAULT_SOURCE = "dev"
SERVER_URL_ENV = ("HH_API_URL", "HONEYHIVE_SERVER_URL", "HH_SERVER_URL")
SESSION_SPAN_NAME = "session"
DEFAULT_FLUSH_MILLIS = pipeline.DEFAULT_FLUSH_TIMEOUT_S * 1000
# init's settings that HoneyHive's TracerConfig / SessionConfig objects may carry instead.
_CONFIG_FIELDS = ("api_key", "project", "session_name", "source", "server_url", "session_id", "inputs")

T = TypeVar("T")


def _never_raises(default: Any = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Log a warning and return ``default`` instead of raising into the application."""

    def decorate(method: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(method)
        def safe(*args: Any, **kwargs: Any) -> T:
            try:
                return method(*args, **kwargs)
            except Exception:
                logger.warning("tracehive: %s failed", method.__name__, exc_info=True)
                return default

        return safe

    return decorate


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


def _from_configs(given: dict[str, Any], *configs: Any) -> dict[str, Any]:
    """Fill what was not given from HoneyHive-style config objects (any object with those fields)."""
    for config in configs:
        if config is None or isinstance(config, str):
            continue
        for name in _CONFIG_FIELDS:
            if given.get(name) is None:
                given[name] = getattr(config, name, None)
    return given


class HoneyHiveTracer:
    """A project's tracer: its own session (from ``init``) and any it starts per request."""

    def __init__(
        self,
        config: Any = None,
        session_config: Any = None,
        evaluation_config: Any = None,
        *,
        api_key: str | None = None,
        project: str | None = None,
        session_name: str | None = None,
        source: str | None = None,
        server_url: str | None = None,
        session_id: str | None = None,
        inputs: dict[str, Any] | None = None,
        link_carrier: dict[str, Any] | None = None,
        instrumentors: list[Any] | None = None,
        test_mode: bool = False,
        verbose: bool = False,
        redact: Any = None,
        **kwargs: Any,
    ) -> None:
        """Start a session; it becomes the current context's session (see :meth:`init`). ``redact``:
        redaction rules applied to every batch before it is sent (docs/privacy.md)."""
        if isinstance(config, str):  # the legacy positional ``init(api_key, ...)``
            api_key, config = api_key or config, None
        given = _from_configs(
            {
                "api_key": api_key,
                "project": project,
                "session_name": session_name,
                "source": source,
                "server_url": server_url,
                "session_id": session_id,
                "inputs": inputs,
            },
            session_config,
            config,
        )
        if kwargs or evaluation_config is not None:
            logger.debug("tracehive: init ignores unsupported arguments %s", sorted(kwargs) or ["evaluation_config"])
        self.api_key = _text("api_key", given["api_key"], "HH_API_KEY")
        self.project = _text("project", given["project"], "HH_PROJECT") or DEFAULT_PROJECT
        self.session_name = _text("session_name", given["session_name"]) or _script_name()
        self.source = _text("source", given["source"]) or DEFAULT_SOURCE
        self.server_url = _text("server_url", given["server_url"], *SERVER_URL_ENV) or DEFAULT_SERVER_URL
        self.session_id = _text("session_id", given["session_id"]) or str(uuid.uuid4())
        self.test_mode = bool(test_mode)
        self.verbose = bool(verbose)
        self.session = Session(self, self.session_id, self.project, self.source)
        self._provider: TracerProvider | None = None
        self._provider_lock = threading.Lock()
        self._links: dict[str, object] = {}
        self._shut_down = False
        self._pipeline: pipeline.Pipeline | None = None
        self.tracer: trace.Tracer = trace.NoOpTracer()
        if not self.test_mode:
            try:
                self._pipeline = pipeline.get_pipeline(self.server_url, self.api_key)
                self.tracer = self._pipeline.tracer
            except Exception:
                logger.warning("tracehive: could not set up the export pipeline; spans are dropped", exc_info=True)
        if redact is not None:
            self._redact(redact)
        threads.install()
        start = {A.SESSION_NAME: self.session_name, A.SOURCE: self.source}
        if checked_namespaces({"inputs": given["inputs"]}, "init"):
            start[NAMESPACE_ATTRS["inputs"]] = dumps(given["inputs"])
        self._record(self.session, start)
        sessions.enter(self.session)
        sessions.set_default(self, only_if_unset=True)
        if link_carrier:
            self.link(link_carrier)
        for instrumentor in instrumentors or ():
            self._instrument(instrumentor)

    def _redact(self, given: Any) -> None:
        """Apply the rules to every batch this tracer's pipeline sends. Rules that cannot be used
        send nothing rather than the clear data they were meant to keep in."""
        try:
            redactor = redactor_from(given)
        except RuleError as exc:
            logger.warning("tracehive: redact: %s; no span is sent", exc)
            self._pipeline, self.tracer = None, trace.NoOpTracer()
            return
        if self._pipeline is not None and hasattr(self._pipeline.exporter, "redactor"):
            self._pipeline.exporter.redactor = redactor

    @classmethod
    def init(
        cls,
        config: Any = None,
        session_config: Any = None,
        evaluation_config: Any = None,
        *,
        api_key: str | None = None,
        project: str | None = None,
        session_name: str | None = None,
        source: str | None = None,
        server_url: str | None = None,
        session_id: str | None = None,
        inputs: dict[str, Any] | None = None,
        link_carrier: dict[str, Any] | None = None,
        instrumentors: list[Any] | None = None,
        test_mode: bool = False,
        verbose: bool = False,
        **kwargs: Any,
    ) -> HoneyHiveTracer:
        """Start a session and make it the session of the current context: the whole script when
        called at its top, only the request (thread, task) when called inside one. The first tracer
        of the process is also the default where no context has a session (``set_default_tracer``
        changes that). Each of ``instrumentors`` gets ``.instrument(tracer_provider=tracer.provider)``.
        """
        return cls(
            config,
            session_config,
            evaluation_config,
            api_key=api_key,
            project=project,
            session_name=session_name,
            source=source,
            server_url=server_url,
            session_id=session_id,
            inputs=inputs,
            link_carrier=link_carrier,
            instrumentors=instrumentors,
            test_mode=test_mode,
            verbose=verbose,
            **kwargs,
        )

    # --- what HoneyHive's tracer exposes -----------------------------------------------------------
    @property
    def otel_tracer(self) -> trace.Tracer:
        """The OpenTelemetry tracer behind ``@trace`` (HoneyHive calls it ``tracer``)."""
        return self.tracer

    @property
    def provider(self) -> TracerProvider:
        """The OpenTelemetry TracerProvider for instrumentors: ``X().instrument(tracer_provider=...)``.

        Its spans nest under the running traced call and are stamped with the current session.
        """
        with self._provider_lock:
            if self._provider is None:
                self._provider = make_provider(self, self._pipeline)
            return self._provider

    @property
    def propagator(self) -> Any:
        """W3C trace context + baggage, as used by :meth:`inject_context` / :meth:`extract_context`."""
        return sessions.PROPAGATOR

    @property
    def is_initialized(self) -> bool:
        """True while spans are exported (not in test mode, not shut down)."""
        return self._pipeline is not None and not self._shut_down

    @property
    def is_test_mode(self) -> bool:
        return self.test_mode

    @property
    def project_name(self) -> str:
        return self.project

    @property
    def source_environment(self) -> str:
        return self.source

    def _instrument(self, instrumentor: Any) -> None:
        try:
            instrumentor.instrument(tracer_provider=self.provider)
        except Exception:
            logger.warning("tracehive: could not attach instrumentor %r", instrumentor, exc_info=True)

    # --- sessions --------------------------------------------------------------------------------
    def _record(self, session: Session, attrs: dict[str, str]) -> None:
        """A zero-length root span that tells the server something about ``session``."""
        try:
            now = time.time_ns()
            attrs = {A.RECORD: A.RECORD_SESSION, A.SESSION_ID: session.session_id, A.PROJECT: session.project, **attrs}
            span = self.tracer.start_span(SESSION_SPAN_NAME, Context(), attributes=attrs, start_time=now)
            span.end(end_time=now)
        except Exception:
            logger.warning("tracehive: could not record the session", exc_info=True)

    def _start_session(
        self,
        session_name: str | None,
        session_id: str | None,
        namespaces: dict[str, Any],
        source: str | None,
        record: bool = True,
    ) -> Session:
        chosen_source = _text("source", source) or self.source
        session = Session(self, _text("session_id", session_id) or str(uuid.uuid4()), self.project, chosen_source)
        if record:
            attrs = {A.SESSION_NAME: _text("session_name", session_name) or self.session_name, A.SOURCE: chosen_source}
            given = checked_namespaces(namespaces, "create_session")
            attrs.update({NAMESPACE_ATTRS[ns]: dumps(values) for ns, values in given.items()})
            self._record(session, attrs)
        return session

    @contextmanager
    def with_session(
        self,
        session_name: str | None = None,
        inputs: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        user_properties: dict[str, Any] | None = None,
        source: str | None = None,
    ) -> Iterator[str | None]:
        """A new session for the ``with`` block (a request): everything traced in it, in tasks it
        creates and work it hands to threads, belongs to it. Yields the session id."""
        token = None
        session_id = None
        try:
            namespaces = {"inputs": inputs, "metadata": metadata, "user_properties": user_properties}
            session = self._start_session(session_name, None, namespaces, source)
            token, session_id = sessions.enter(session), session.session_id
        except Exception:
            logger.warning("tracehive: with_session could not start a session", exc_info=True)
        try:
            yield session_id
        finally:
            if token is not None:
                otel_context.detach(token)

    @_never_raises()
    def create_session(
        self,
        session_name: str | None = None,
        session_id: str | None = None,
        inputs: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        user_properties: dict[str, Any] | None = None,
        source: str | None = None,
        skip_api_call: bool = False,
    ) -> str | None:
        """Start a session and make it the current context's (until the request, task or thread
        ends). With ``session_id`` and ``skip_api_call``, join that existing session instead."""
        namespaces = {"inputs": inputs, "metadata": metadata, "user_properties": user_properties}
        record = not (skip_api_call and session_id)
        session = self._start_session(session_name, session_id, namespaces, source, record)
        sessions.enter(session)
        return session.session_id

    async def acreate_session(
        self,
        session_name: str | None = None,
        session_id: str | None = None,
        inputs: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        user_properties: dict[str, Any] | None = None,
        source: str | None = None,
        skip_api_call: bool = False,
    ) -> str | None:
        """:meth:`create_session` for async code (it never blocks, so it is the same)."""
        return self.create_session(session_name, session_id, inputs, metadata, user_properties, source, skip_api_call)

    @_never_raises()
    def session_start(self) -> str | None:
        """Replace this tracer's own session with a new one (HoneyHive's legacy call; in servers use
        :meth:`with_session` or :meth:`create_session`, which leave the tracer alone)."""
        session = self._start_session(self.session_name, None, {}, None)
        self.session, self.session_id = session, session.session_id
        sessions.enter(session)
        return session.session_id

    def current_session(self) -> Session:
        """The session this tracer's work goes to here: the context's, else its own."""
        return sessions.resolve(tracer=self) or self.session

    @_never_raises()
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
        """Add namespaces to the current session (or ``session_id``); the server merges them."""
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
        session = self.current_session()
        if session_id is not None:
            if isinstance(session_id, str) and session_id:
                session = Session(self, session_id, session.project, session.source)
            else:
                logger.warning("tracehive: enrich_session(session_id=...) expects a string; using this session")
        if given:
            self._record(session, {NAMESPACE_ATTRS[ns]: dumps(values) for ns, values in given.items()})

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
        event_id: str | None = None,
        update_event_id: str | None = None,
        **kwargs: Any,
    ) -> bool:
        """Add namespaces to the current span; see :func:`tracehive.enrich_span`."""
        return enrich_span(
            attributes, metadata, metrics, feedback, inputs, outputs, config, error, user_properties, **kwargs
        )

    # --- spans -----------------------------------------------------------------------------------
    @contextmanager
    def start_span(
        self,
        name: str,
        *,
        kind: SpanKind | None = None,
        attributes: dict[str, Any] | None = None,
        links: Any = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Iterator[Any]:
        """A span of the current session around the ``with`` block, current inside it (so
        ``enrich_span`` and nested ``@trace`` calls land in it); yields the OpenTelemetry span."""
        state = None
        try:
            parent = otel_context.get_current()
            session = sessions.resolve(parent, tracer=self) or self.session
            span = self.tracer.start_span(
                str(name), parent, kind=kind or SpanKind.INTERNAL, attributes=attributes, links=links,
                start_time=start_time, record_exception=False, set_status_on_exception=False,
            )  # fmt: skip
            own = {A.EVENT_TYPE: DEFAULT_EVENT_TYPE, A.EVENT_NAME: str(name)}
            state = SpanState(span, session, {**session.span_attributes, **own}, None, None, parent)
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
            state.finish(None, exc if (record_exception or set_status_on_exception) else None)
            raise
        otel_context.detach(token)
        state.finish(None)

    def trace(self, name: str, event_type: str | None = None, **kwargs: Any) -> Any:
        """:meth:`start_span` with an event type; keyword arguments become span attributes."""
        attributes = dict(kwargs)
        if event_type is not None:
            attributes[A.EVENT_TYPE] = event_type
        return self.start_span(name, attributes=attributes or None)

    @_never_raises()
    def create_event(
        self,
        event_name_or_dict: str | dict[str, Any],
        *,
        event_type: str = "tool",
        inputs: dict[str, Any] | None = None,
        outputs: dict[str, Any] | None = None,
        error: str | None = None,
        duration: float | None = None,
        metadata: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        feedback: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> str | None:
        """Record an event that already happened (``duration`` in milliseconds, ending now) in the
        current session, under the current span; returns its event id."""
        fields = {
            "event_type": event_type, "inputs": inputs, "outputs": outputs, "error": error, "duration": duration,
            "metadata": metadata, "config": config, "feedback": feedback, "metrics": metrics,
        }  # fmt: skip
        if isinstance(event_name_or_dict, dict):
            event = dict(event_name_or_dict)
            name = event.pop("event_name", "unknown_event")
            fields.update((key, event.pop(key)) for key in list(event) if key in fields)
            kwargs.update(event)
        else:
            name = event_name_or_dict
        if kwargs:
            logger.debug("tracehive: create_event ignores unsupported arguments %s", sorted(kwargs))
        parent = otel_context.get_current()
        session = sessions.resolve(parent, tracer=self) or self.session
        end = time.time_ns()
        duration_ms = fields["duration"]
        lasted = int(duration_ms * 1_000_000) if isinstance(duration_ms, int | float) and duration_ms > 0 else 0
        span = self.tracer.start_span(str(name), parent, start_time=end - lasted)
        event_type = fields["event_type"] if fields["event_type"] in EVENT_TYPES else DEFAULT_EVENT_TYPE
        own = {A.EVENT_TYPE: event_type, A.EVENT_NAME: str(name)}
        state = SpanState(span, session, {**session.span_attributes, **own}, None, None, parent)
        for ns in ("inputs", "metadata", "config", "feedback", "metrics"):
            if isinstance(fields[ns], dict) and fields[ns]:
                state.merge(ns, fields[ns])
        if fields["error"] is not None:
            state.error = str(fields["error"])
        state.finish(fields["outputs"] if isinstance(fields["outputs"], dict) else None, end_time=end)
        return format(span.get_span_context().span_id, "016x")

    # --- across services -------------------------------------------------------------------------
    @_never_raises()
    def inject_context(self, carrier: dict[str, str]) -> None:
        """Write the current span and session into ``carrier`` (HTTP headers ``traceparent`` and
        ``baggage``), so the service that receives them continues this session under this span."""
        sessions.inject(carrier, self.current_session())

    def inject(self, carrier: dict[str, Any]) -> dict[str, Any]:
        """:meth:`inject_context`, returning ``carrier``."""
        self.inject_context(carrier)
        return carrier

    @_never_raises()
    def extract_context(self, carrier: dict[str, str]) -> Context | None:
        """The context ``carrier`` came from: its span as parent and its session as session."""
        return sessions.extract(carrier, self)

    @_never_raises(default="")
    def link(self, carrier: dict[str, Any]) -> str:
        """With incoming headers: continue their span and session here until :meth:`unlink`.
        Without (HoneyHive 1.7.0's use): inject the current context into ``carrier``."""
        if not any(str(key).lower() == "traceparent" for key in carrier):
            self.inject_context(carrier)
            return ""
        token = otel_context.attach(sessions.extract(carrier, self))
        key = uuid.uuid4().hex
        self._links[key] = token
        return key

    @_never_raises()
    def unlink(self, _token: str) -> None:
        """Undo a :meth:`link` that continued a caller's context."""
        token = self._links.pop(_token, None) if isinstance(_token, str) else None
        if token is not None:
            otel_context.detach(token)

    @_never_raises()
    def get_baggage(self, key: str) -> str | None:
        value = baggage.get_baggage(key)
        return None if value is None else str(value)

    @_never_raises()
    def set_baggage(self, key: str, value: str) -> None:
        """Set an OpenTelemetry baggage entry in the current context (it crosses services)."""
        otel_context.attach(baggage.set_baggage(key, value))

    # --- delivery --------------------------------------------------------------------------------
    def flush(self, timeout_millis: float = DEFAULT_FLUSH_MILLIS, *, timeout: float | None = None) -> bool:
        """Send what is queued; returns within the timeout, True if all of it was delivered."""
        if self._pipeline is None:
            return False
        return self._pipeline.flush(seconds(timeout, timeout_millis))

    def force_flush(self, timeout_millis: float = DEFAULT_FLUSH_MILLIS) -> bool:
        return self.flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush; the shared export pipeline itself closes at exit (other tracers may use it)."""
        self.flush()
        self._shut_down = True

    @staticmethod
    def flush_all(timeout_millis: float = DEFAULT_FLUSH_MILLIS) -> bool:
        """Flush every tracer of the process."""
        return pipeline.flush_all(seconds(None, timeout_millis))

    @staticmethod
    def reset() -> None:
        """Forget the process default tracer."""
        sessions.set_default(None)


def seconds(timeout: Any, timeout_millis: Any) -> float:
    """``timeout`` (seconds) if given, else ``timeout_millis``, else the default, in seconds."""
    if isinstance(timeout, int | float) and not isinstance(timeout, bool):
        return float(timeout)
    if isinstance(timeout_millis, int | float) and not isinstance(timeout_millis, bool):
        return timeout_millis / 1000
    return pipeline.DEFAULT_FLUSH_TIMEOUT_S
