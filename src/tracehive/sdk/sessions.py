"""Which session the running code belongs to: kept in the execution context, never process-wide.

A :class:`Session` sits in the OpenTelemetry context (a ``contextvars`` variable), so a session made
in a request, a thread or an asyncio task is the session of everything traced there, and follows
the work into tasks it creates, ``asyncio.to_thread`` and (see :mod:`tracehive.sdk.threads`)
executors and plain threads. Only when the context holds none does the process default apply: the
tracer given to ``set_default_tracer``, else the first one ``init``'ed at the program's top level
(never one made inside a request).

Across services a session travels as W3C ``traceparent`` (the calling span) and ``baggage``
(``session_id``, ``project``, ``source``: the keys HoneyHive's SDK uses, so both SDKs interoperate).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tracehive import attributes as A
from tracehive.sdk.spans import SESSION_KEY

if TYPE_CHECKING:
    from tracehive.sdk.tracer import HoneyHiveTracer

BAGGAGE_SESSION_ID = "session_id"
BAGGAGE_PROJECT = "project"
BAGGAGE_SOURCE = "source"
PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])


class Session:
    """One session of one tracer: what every span made in it is stamped with."""

    __slots__ = ("project", "session_id", "source", "span_attributes", "tracer")

    def __init__(self, tracer: HoneyHiveTracer, session_id: str, project: str, source: str) -> None:
        self.tracer = tracer
        self.session_id = session_id
        self.project = project
        self.source = source
        self.span_attributes: dict[str, str] = {A.SESSION_ID: session_id, A.PROJECT: project, A.SOURCE: source}


_default: HoneyHiveTracer | None = None


def default_tracer() -> HoneyHiveTracer | None:
    """The process default: ``set_default_tracer``'s, else the first top-level ``init``'ed tracer."""
    return _default


def set_default(tracer: HoneyHiveTracer | None) -> None:
    global _default
    _default = tracer


def offer_default(tracer: HoneyHiveTracer) -> None:
    """Make an ``init``'ed tracer the process default if there is none yet and it was made at the
    program's top level: on the main thread, outside a running event loop. A tracer made in a
    request (a server's worker thread or async handler) stays that request's."""
    if _default is not None or threading.current_thread() is not threading.main_thread():
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        set_default(tracer)


def context_session(ctx: otel_context.Context | None = None) -> Session | None:
    """The session the context holds (a running traced call's, or one entered), if any."""
    return (ctx if ctx is not None else otel_context.get_current()).get(SESSION_KEY)


def resolve(
    ctx: otel_context.Context | None = None,
    tracer: HoneyHiveTracer | None = None,
    fallback: HoneyHiveTracer | None = None,
) -> Session | None:
    """The session for new work: the context's (if of ``tracer``, when given), else ``tracer``'s
    own, else ``fallback``'s, else the process default's."""
    session = context_session(ctx)
    if session is not None and (tracer is None or session.tracer is tracer):
        return session
    chosen = tracer or fallback or _default
    return chosen.session if chosen is not None else None


def enter(session: Session) -> object:
    """Make ``session`` the current context's session; the token undoes it (``otel_context.detach``)."""
    return otel_context.attach(otel_context.set_value(SESSION_KEY, session))


def inject(carrier: dict[str, Any], session: Session | None) -> None:
    """Write the current span (``traceparent``) and the session (``baggage``) into ``carrier``."""
    ctx = otel_context.get_current()
    if session is not None:
        ctx = baggage.set_baggage(BAGGAGE_SESSION_ID, session.session_id, ctx)
        ctx = baggage.set_baggage(BAGGAGE_PROJECT, session.project, ctx)
        ctx = baggage.set_baggage(BAGGAGE_SOURCE, session.source, ctx)
    PROPAGATOR.inject(carrier, ctx)


def extract(carrier: dict[str, Any], tracer: HoneyHiveTracer) -> otel_context.Context:
    """A context whose parent is the caller's span and whose session is the caller's session."""
    ctx = PROPAGATOR.extract(_lower_keys(carrier), otel_context.Context())
    session_id = baggage.get_baggage(BAGGAGE_SESSION_ID, ctx)
    if isinstance(session_id, str) and session_id:
        project = baggage.get_baggage(BAGGAGE_PROJECT, ctx)
        source = baggage.get_baggage(BAGGAGE_SOURCE, ctx)
        session = Session(
            tracer,
            session_id,
            project if isinstance(project, str) and project else tracer.project,
            source if isinstance(source, str) and source else tracer.source,
        )
        ctx = otel_context.set_value(SESSION_KEY, session, ctx)
    return ctx


def _lower_keys(carrier: dict[str, Any]) -> dict[str, Any]:
    """HTTP header names are case-insensitive; the W3C propagators look up lower-case ones."""
    return {str(key).lower(): value for key, value in carrier.items()}
