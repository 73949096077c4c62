"""HoneyHive 1.7.0's tracing API beyond ``@trace``: sessions in the context, spans, events, propagation.

Spans go through the real OpenTelemetry pipeline into an in-memory exporter (the fixtures of
``test_sdk``); the tests against a real server and real processes are in ``test_sdk_sessions``.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests import test_sdk
from tests.test_sdk import events, namespace, parent_id, records

from tracehive import HoneyHiveTracer, enrich_session, enrich_span, flush, set_default_tracer, trace, trace_class
from tracehive import attributes as A
from tracehive.sdk import sessions

exporter = test_sdk.exporter  # the fixtures
tracer = test_sdk.tracer


def session_of(span) -> str:
    return span.attributes[A.SESSION_ID]


def short(span) -> str:
    """A span's name without the enclosing test's ``<locals>``."""
    return span.name.split("<locals>.")[-1]


def named(exporter: InMemorySpanExporter) -> dict:
    return {short(span): span for span in events(exporter).values()}


def spans_named(exporter: InMemorySpanExporter, *names: str) -> list:
    return [s for s in exporter.get_finished_spans() if short(s) in names]


def test_trace_class_traces_public_methods_only(tracer: HoneyHiveTracer, exporter: InMemorySpanExporter) -> None:
    class Base:
        def inherited(self) -> str:
            return "base"

    @trace_class
    class Service(Base):
        def run(self, x: int) -> int:
            return self._helper(x) * 2

        async def arun(self, x: int) -> int:
            return x

        def _helper(self, x: int) -> int:
            return x + 1

        @staticmethod
        def static() -> str:
            return "s"

        @property
        def prop(self) -> str:
            return "p"

    service = Service()
    assert (service.run(1), service.inherited(), Service.static(), service.prop) == (4, "base", "s", "p")
    found = named(exporter)
    assert set(found) == {"Service.run", "Service.inherited"}
    assert namespace(found["Service.run"], "inputs") == {"x": 1}


def test_start_span_and_trace_are_current_inside(tracer: HoneyHiveTracer, exporter: InMemorySpanExporter) -> None:
    @trace
    def child() -> str:
        return "c"

    with tracer.start_span("block", attributes={"k": "v"}) as span:
        enrich_span(metadata={"step": 1})
        child()
        with tracer.trace("stage", event_type="chain"):
            pass
    with pytest.raises(KeyError), tracer.start_span("failing"):
        raise KeyError("x")

    found = named(exporter)
    block = found["block"]
    assert block.attributes["k"] == "v" and namespace(block, "metadata") == {"step": 1}
    assert session_of(block) == tracer.session_id
    assert parent_id(found["child"]) == parent_id(found["stage"]) == span.get_span_context().span_id
    assert found["stage"].attributes[A.EVENT_TYPE] == "chain"
    assert found["failing"].attributes[A.ERROR] == "KeyError: 'x'"


def test_create_event_records_a_finished_event_under_the_current_span(
    tracer: HoneyHiveTracer, exporter: InMemorySpanExporter
) -> None:
    @trace
    def handler() -> str:
        return tracer.create_event("retrieval", event_type="tool", inputs={"q": 1}, outputs={"docs": 2}, duration=250)

    event_id = handler()
    other = tracer.create_event({"event_name": "from-dict", "event_type": "model", "metrics": {"m": 1}, "extra": 3})
    found = named(exporter)
    retrieval = found["retrieval"]
    assert event_id == format(retrieval.context.span_id, "016x")
    assert parent_id(retrieval) == found["handler"].context.span_id
    assert (retrieval.end_time - retrieval.start_time) == 250_000_000
    assert namespace(retrieval, "inputs") == {"q": 1} and namespace(retrieval, "outputs") == {"docs": 2}
    assert found["from-dict"].attributes[A.EVENT_TYPE] == "model" and other
    assert namespace(found["from-dict"], "metrics") == {"m": 1}


def test_with_session_scopes_the_session_and_follows_plain_threads(
    tracer: HoneyHiveTracer, exporter: InMemorySpanExporter
) -> None:
    @trace
    def work(tag: str) -> str:
        return tag

    with tracer.with_session(session_name="req", user_properties={"user_id": "u1"}) as request_session:
        work("inside")
        thread = threading.Thread(target=work, args=("thread",))
        thread.start()
        thread.join()
        tracer.enrich_session(metadata={"route": "/x"})
    work("after")

    assert flush(timeout=10)
    by_tag = {namespace(s, "inputs")["tag"]: session_of(s) for s in spans_named(exporter, "work")}
    assert by_tag == {"inside": request_session, "thread": request_session, "after": tracer.session_id}
    start, enriched = (r for r in records(exporter) if session_of(r) == request_session)
    assert start.attributes[A.SESSION_NAME] == "req" and namespace(start, "user_properties") == {"user_id": "u1"}
    assert namespace(enriched, "metadata") == {"route": "/x"}


def test_create_session_session_start_and_enrich_by_id(tracer: HoneyHiveTracer, exporter: InMemorySpanExporter) -> None:
    @trace
    def work() -> None:
        pass

    joined = tracer.create_session(session_id="existing", skip_api_call=True)
    work()
    enrich_session("elsewhere", metadata={"k": 1})
    restarted = tracer.session_start()
    work()

    assert joined == "existing" and restarted == tracer.session_id != "existing"
    assert flush(timeout=10)
    assert [session_of(s) for s in spans_named(exporter, "work")] == ["existing", restarted]
    recorded = {session_of(r): r for r in records(exporter)}
    assert "existing" not in recorded  # skip_api_call: joined, not started
    assert namespace(recorded["elsewhere"], "metadata") == {"k": 1}
    assert recorded[restarted].attributes[A.SESSION_NAME] == "unit"


def test_default_tracer_applies_where_no_session_is_current(exporter: InMemorySpanExporter) -> None:
    @trace
    def work() -> None:
        pass

    def in_fresh_context() -> str:
        token = otel_context.attach(otel_context.Context())
        try:
            work()
        finally:
            otel_context.detach(token)
        return session_of(list(exporter.get_finished_spans())[-1]) if flush(timeout_millis=10000) else ""

    first = HoneyHiveTracer.init(api_key="k", project="p", session_name="first")
    second = HoneyHiveTracer.init(api_key="k", project="p", session_name="second")
    assert in_fresh_context() == first.session_id  # the first init'ed tracer
    set_default_tracer(second)
    assert in_fresh_context() == second.session_id
    work()
    assert flush(second, 10000) and session_of(list(exporter.get_finished_spans())[-1]) == second.session_id


def test_init_inside_a_request_is_not_the_process_default(exporter: InMemorySpanExporter) -> None:
    made = []
    worker = threading.Thread(target=lambda: made.append(HoneyHiveTracer.init(api_key="k", project="p")))
    worker.start()
    worker.join()

    async def handler() -> None:
        made.append(HoneyHiveTracer.init(api_key="k", project="p"))

    asyncio.run(handler())
    assert len(made) == 2 and sessions.default_tracer() is None
    top = HoneyHiveTracer.init(api_key="k", project="p")
    assert sessions.default_tracer() is top


def test_context_crosses_services_through_headers(exporter: InMemorySpanExporter) -> None:
    caller = HoneyHiveTracer.init(api_key="k", project="caller-project", source="prod")
    callee = HoneyHiveTracer.init(api_key="k", project="callee-project")
    headers: dict[str, str] = {}

    @trace
    def call() -> None:
        caller.inject_context(headers)

    @trace
    def serve() -> None:
        pass

    call()
    assert set(headers) == {"traceparent", "baggage"}
    token = callee.link({key.title(): value for key, value in headers.items()})  # header case does not matter
    serve()
    callee.unlink(token)
    serve()
    ctx = callee.extract_context(headers)
    assert ctx is not None
    otel_context.detach(otel_context.attach(ctx))

    assert flush(timeout=10)
    spans = spans_named(exporter, "call", "serve")
    call_span, linked, unlinked = spans
    assert linked.parent.span_id == call_span.context.span_id and linked.parent.is_remote
    assert (session_of(linked), linked.attributes[A.PROJECT], linked.attributes[A.SOURCE]) == (
        caller.session_id, "caller-project", "prod",
    )  # fmt: skip
    assert session_of(unlinked) == callee.session_id and unlinked.parent is None
    assert callee.link({}) == ""  # no incoming context: it injects instead, as HoneyHive 1.7.0 does


def test_baggage_flush_and_shutdown(tracer: HoneyHiveTracer, exporter: InMemorySpanExporter) -> None:
    tracer.set_baggage("tenant", "acme")
    assert tracer.get_baggage("tenant") == "acme" and tracer.get_baggage("missing") is None
    assert tracer.force_flush(5000) and tracer.flush(timeout=5) and HoneyHiveTracer.flush_all(5000)
    assert tracer.is_initialized
    tracer.shutdown()
    assert not tracer.is_initialized


def test_misuse_of_the_session_api_warns(
    tracer: HoneyHiveTracer, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tracehive")
    set_default_tracer("nope")
    assert tracer.extract_context("not headers") is None
    tracer.inject_context(None)
    assert tracer.link(42) == ""
    tracer.unlink(object())
    with tracer.with_session(user_properties=["not", "a", "dict"]) as session_id:
        assert isinstance(session_id, str)
    assert "set_default_tracer expects a HoneyHiveTracer" in caplog.text
    assert "expects a dict" in caplog.text
    assert "headers" in caplog.text


def test_honeyhive_style_config_objects_are_read(exporter: InMemorySpanExporter) -> None:
    class TracerConfig:  # the fields of HoneyHive's TracerConfig that init reads
        api_key = "k"
        project = "from-config"
        source = "staging"

        @property
        def session_name(self) -> str:
            raise RuntimeError("a broken config field")

    class SessionConfig:
        def __init__(self) -> None:
            self.session_id = "sid-from-config"
            self.inputs = {"q": "hi"}

    tracer = HoneyHiveTracer.init(TracerConfig(), SessionConfig(), source="explicit")
    assert (tracer.project, tracer.source, tracer.session_id) == ("from-config", "explicit", "sid-from-config")
    (start,) = records(exporter)
    assert namespace(start, "inputs") == {"q": "hi"}
