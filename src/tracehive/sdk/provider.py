"""``tracer.provider``: the OpenTelemetry TracerProvider that instrumentors attach to.

An instrumentor (OpenInference, OpenLLMetry, OpenTelemetry's GenAI ones) only knows plain OTel: it
starts spans under the current context and sets its own attributes. Its spans nest under the running
``@trace`` call by themselves (that call's span is current); :class:`SessionStamp` adds what the
server needs to put them in the right session, once for every instrumentor, when each span starts.
The provider hands finished spans to the tracer's shared export pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from tracehive import attributes as A
from tracehive.sdk import sessions

if TYPE_CHECKING:
    from tracehive.sdk.pipeline import Pipeline
    from tracehive.sdk.tracer import HoneyHiveTracer


class SessionStamp(SpanProcessor):
    """Stamps each new span with its session: the context's (a ``with_session``, a request's
    ``init``, the running traced call's), else the tracer's own; then hands ended spans on.

    Shutting the provider down does not shut ``downstream`` down: the pipeline is shared by every
    tracer of the process and closes at exit.
    """

    def __init__(self, tracer: HoneyHiveTracer, downstream: SpanProcessor | None) -> None:
        self.tracer = tracer
        self.downstream = downstream

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        attributes = span.attributes or {}
        if A.SESSION_ID in attributes:
            return
        session = sessions.resolve(parent_context, fallback=self.tracer)
        if session is not None:
            span.set_attributes(session.span_attributes)

    def on_end(self, span: ReadableSpan) -> None:
        if self.downstream is not None:
            self.downstream.on_end(span)

    def shutdown(self) -> None:
        """Nothing of its own to close (see the class docstring)."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.downstream.force_flush(timeout_millis) if self.downstream is not None else True


def make_provider(tracer: HoneyHiveTracer, pipeline: Pipeline | None) -> TracerProvider:
    """A provider of the tracer's own, sending through the shared pipeline's batch processor."""
    resource = pipeline.provider.resource if pipeline is not None else Resource.create()
    provider = TracerProvider(resource=resource, sampler=ALWAYS_ON, shutdown_on_exit=False)
    provider.add_span_processor(SessionStamp(tracer, pipeline.processor if pipeline is not None else None))
    return provider
