"""HoneyHiveTracer: a project's tracer and its sessions, with HoneyHive 1.7.0's names and arguments.

Nothing here makes a network call on the application's thread: session ids are made up on the client
and a session's start or enrichment is sent as a span through the same batch pipeline as every event,
where HoneyHive's SDK calls its REST API synchronously. Which session new work belongs to is kept in
the execution context (see :mod:`tracehive.sdk.sessions`), so one tracer serves concurrent requests.
Every public method logs a warning rather than raise into the application.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from tracehive import attributes as A
from tracehive.model import DEFAULT_PROJECT
from tracehive.privacy.otlp import redactor_from
from tracehive.privacy.rules import RuleError
from tracehive.sdk import events, pipeline, sessions, threads
from tracehive.sdk.arguments import are_headers, from_configs, never_raises, script_name, seconds, text
from tracehive.sdk.provider import make_provider
from tracehive.sdk.serialize import dumps
from tracehive.sdk.sessions import Session
from tracehive.sdk.spans import NAMESPACE_ATTRS, checked_namespaces, enrich_span

logger = logging.getLogger("tracehive")

DEFAULT_SERVER_URL = "http://127.0.0.1:8418"
DEFAULT_SOURCE = "dev"
SERVER_URL_ENV = ("HH_API_URL", "HONEYHIVE_SERVER_URL", "HH_SERVER_URL")
SESSION_SPAN_NAME = "session"
DEFAULT_FLUSH_MILLIS = pipeline.DEFAULT_FLUSH_TIMEOUT_S * 1000


class HoneyHiveTracer:
    """A project's tracer: its own session (from ``init``) and any it starts per request."""

    def __init__(
        self,
        config: Any = None,
        session_config: Any = None,
        evaluation_config: Any = None,
        *,
        api_key: str | None = None,
        ingestion_api_key: str | None = None,
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
        if verbose:
            _log_debug_to_stderr()
        if isinstance(config, str):  # the legacy positional ``init(api_key, ...)``
            api_key, config = api_key or config, None
        given = from_configs(
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
        self.api_key = text("api_key", given["api_key"], "HH_API_KEY")
        # HoneyHive's key for span ingestion only; spans are sent with it when given.
        self.ingestion_api_key = text("ingestion_api_key", ingestion_api_key)
        self.project = text("project", given["project"], "HH_PROJECT") or DEFAULT_PROJECT
        self.session_name = text("session_name", given["session_name"]) or script_name()
        self.source = text("source", given["source"]) or DEFAULT_SOURCE
        self.server_url = text("server_url", given["server_url"], *SERVER_URL_ENV) or DEFAULT_SERVER_URL
        self.session_id = text("session_id", given["session_id"]) or str(uuid.uuid4())
        self.test_mode = bool(test_mode)
        self.verbose = bool(verbose)
        self.session = Session(self, self.session_id, self.project, self.source)
        self._provider: TracerProvider | None = None
        self._provider_lock = threading.Lock()
        self._links: dict[str, object] = {}
        self._shut_down = False
        self._pipeline: pipeline.Pipeline | None = None
        self.tracer: trace.Tracer = trace.NoOpTracer()
        # The global OpenTelemetry provider is never replaced: the application's OTel setup stays its own.
        self.is_main_provider = False
        if not self.test_mode:
            try:
                self._pipeline = pipeline.get_pipeline(self.server_url, self.ingestion_api_key or self.api_key)
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
        sessions.offer_default(self)
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
        ingestion_api_key: str | None = None,
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
        made at the top level (main thread, no running event loop) is also the default where no
        context has a session; ``set_default_tracer`` changes that. Each of ``instrumentors`` gets
        ``.instrument(tracer_provider=tracer.provider)``.
        """
        return cls(
            config,
            session_config,
            evaluation_config,
            api_key=api_key,
            ingestion_api_key=ingestion_api_key,
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
    def span_processor(self) -> Any:
        """The batch processor every span of this tracer leaves through (None in test mode)."""
        return self._pipeline.processor if self._pipeline is not None else None

    @property
    def otlp_exporter(self) -> Any:
        """The OTLP/HTTP exporter behind :attr:`span_processor` (None in test mode)."""
        return self._pipeline.exporter if self._pipeline is not None else None

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
        """Attach ``instrumentor`` once per process (OpenTelemetry's instrumentors are singletons);
        its spans join whichever session is current when they start, so the first provider serves all."""
        if getattr(instrumentor, "is_instrumented_by_opentelemetry", False):
            logger.debug("tracehive: %r is already instrumented; left as is", instrumentor)
            return
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
        chosen_source = text("source", source) or self.source
        session = Session(self, text("session_id", session_id) or str(uuid.uuid4()), self.project, chosen_source)
        if record:
            attrs = {A.SESSION_NAME: text("session_name", session_name) or self.session_name, A.SOURCE: chosen_source}
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

    @never_raises()
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

    @never_raises()
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

    @never_raises()
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
        with events.span_block(
            self, str(name), kind or SpanKind.INTERNAL, attributes, links, start_time,
            record_exception or set_status_on_exception,
        ) as span:  # fmt: skip
            yield span

    def trace(self, name: str, event_type: str | None = None, **kwargs: Any) -> Any:
        """:meth:`start_span` with an event type; keyword arguments become span attributes."""
        attributes = dict(kwargs)
        if event_type is not None:
            attributes[A.EVENT_TYPE] = event_type
        return self.start_span(name, attributes=attributes or None)

    @never_raises()
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
        return events.record_event(self, str(name), fields)

    # --- across services -------------------------------------------------------------------------
    @never_raises()
    def inject_context(self, carrier: dict[str, str]) -> None:
        """Write the current span and session into ``carrier`` (HTTP headers ``traceparent`` and
        ``baggage``), so the service that receives them continues this session under this span."""
        if are_headers(carrier, "inject_context"):
            sessions.inject(carrier, self.current_session())

    def inject(self, carrier: dict[str, Any]) -> dict[str, Any]:
        """:meth:`inject_context`, returning ``carrier``."""
        self.inject_context(carrier)
        return carrier

    @never_raises()
    def extract_context(self, carrier: dict[str, str]) -> Context | None:
        """The context ``carrier`` came from: its span as parent and its session as session."""
        return sessions.extract(carrier, self) if are_headers(carrier, "extract_context") else None

    @never_raises(default="")
    def link(self, carrier: dict[str, Any]) -> str:
        """With incoming headers: continue their span and session here until :meth:`unlink`.
        Without (HoneyHive 1.7.0's use): inject the current context into ``carrier``."""
        if not are_headers(carrier, "link"):
            return ""
        if not any(str(key).lower() == "traceparent" for key in carrier):
            self.inject_context(carrier)
            return ""
        token = otel_context.attach(sessions.extract(carrier, self))
        key = uuid.uuid4().hex
        self._links[key] = token
        return key

    @never_raises()
    def unlink(self, _token: str) -> None:
        """Undo a :meth:`link` that continued a caller's context."""
        token = self._links.pop(_token, None) if isinstance(_token, str) else None
        if token is not None:
            otel_context.detach(token)

    @never_raises()
    def get_baggage(self, key: str) -> str | None:
        value = baggage.get_baggage(key)
        return None if value is None else str(value)

    @never_raises()
    def set_baggage(self, key: str, value: str) -> None:
        """Set an OpenTelemetry baggage entry in the current context (it crosses services)."""
        otel_context.attach(baggage.set_baggage(key, value))

    # --- delivery --------------------------------------------------------------------------------
    def flush(self, timeout_millis: float = DEFAULT_FLUSH_MILLIS, *, timeout: float | None = None) -> bool:
        """Send what is queued; returns within the timeout, True if all of it was delivered."""
        if self._pipeline is None:
            return False
        return self._pipeline.flush(seconds(timeout, timeout_millis, pipeline.DEFAULT_FLUSH_TIMEOUT_S))

    def force_flush(self, timeout_millis: float = DEFAULT_FLUSH_MILLIS) -> bool:
        return self.flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush; the shared export pipeline itself closes at exit (other tracers may use it)."""
        self.flush()
        self._shut_down = True

    @staticmethod
    def flush_all(timeout_millis: float = DEFAULT_FLUSH_MILLIS) -> bool:
        """Flush every tracer of the process."""
        return pipeline.flush_all(seconds(None, timeout_millis, pipeline.DEFAULT_FLUSH_TIMEOUT_S))

    @staticmethod
    def reset() -> None:
        """Forget the process default tracer."""
        sessions.set_default(None)


def _log_debug_to_stderr() -> None:
    """``verbose=True``: the SDK's debug lines (what it ignores, every failed export) on stderr."""
    logger.setLevel(logging.DEBUG)
    if not logger.handlers:
        logger.addHandler(logging.StreamHandler())
