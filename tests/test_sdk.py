"""The SDK end to end through the real OpenTelemetry SDK pipeline, captured by an in-memory exporter."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic import BaseModel

import tracehive
from tracehive import HoneyHiveTracer, atrace, enrich_session, enrich_span, flush, trace
from tracehive import attributes as A
from tracehive.sdk import decorators, pipeline, sessions

USER_PROPERTIES = {
    "preferences": {"theme": "dark", "langs": ["en", "fr"]},
    "age": 25,
    "is_beta": True,
    "tags": ["a", "b"],
    "n": None,
    "f": 1.5,
    "objs": [{"k": 1}, {"k": False}],
}


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Pipelines built around an in-memory exporter; no default tracer before the test starts."""
    memory = InMemorySpanExporter()
    pipeline.use_exporter(memory)
    monkeypatch.setattr(sessions, "_default", None)
    token = otel_context.attach(otel_context.Context())  # no session from an earlier test
    yield memory
    otel_context.detach(token)
    pipeline.use_exporter(None)


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> HoneyHiveTracer:
    return HoneyHiveTracer.init(api_key="test-key", project="sdk-tests", session_name="unit")


def finished(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    assert flush(timeout=10)
    return list(exporter.get_finished_spans())


def events(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    """Event spans (not session records) by name; names are unique within each test."""
    found = {s.name: s for s in finished(exporter) if s.attributes.get(A.RECORD) is None}
    return found


def records(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in finished(exporter) if s.attributes.get(A.RECORD) == A.RECORD_SESSION]


def namespace(span: ReadableSpan, name: str) -> Any:
    raw = span.attributes.get(f"{A.NAMESPACE_PREFIX}{name}")
    return None if raw is None else json.loads(raw)


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


def test_public_api_matches_honeyhive_names() -> None:
    assert tracehive.trace is trace and tracehive.HoneyHiveTracer is HoneyHiveTracer
    assert set(tracehive.sdk.__all__) == {
        "HoneyHiveTracer",
        "atrace",
        "enrich_session",
        "enrich_span",
        "flush",
        "set_default_tracer",
        "trace",
        "trace_class",
    }


def test_init_records_session_without_network(tracer: HoneyHiveTracer, exporter: InMemorySpanExporter) -> None:
    (record,) = records(exporter)
    assert record.name == "session"
    assert record.parent is None
    assert record.start_time == record.end_time
    assert dict(record.attributes) == {
        A.RECORD: A.RECORD_SESSION,
        A.SESSION_ID: tracer.session_id,
        A.PROJECT: "sdk-tests",
        A.SESSION_NAME: "unit",
        A.SOURCE: "dev",
    }
    assert len(tracer.session_id) == 36 and tracer.project == "sdk-tests"


def test_init_reads_environment_and_ignores_unknown_arguments(
    exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HH_PROJECT", "from-env")
    monkeypatch.setenv("HH_API_URL", "http://127.0.0.1:9")
    tracer = HoneyHiveTracer.init(api_key="k", source="prod", session_id="fixed-id", disable_batch=True)
    assert (tracer.project, tracer.source, tracer.session_id) == ("from-env", "prod", "fixed-id")
    assert tracer.server_url == "http://127.0.0.1:9"
    assert sessions.resolve().tracer is tracer
    (record,) = records(exporter)
    assert record.attributes[A.SESSION_ID] == "fixed-id"


def test_every_value_type_round_trips_through_the_json_attribute(
    tracer: HoneyHiveTracer, exporter: InMemorySpanExporter
) -> None:
    @trace
    def handle() -> str:
        tracer.enrich_span(user_properties=USER_PROPERTIES, metrics={"score": 0.25, "tokens": 12})
        return "ok"

    assert handle() == "ok"
    tracer.enrich_session(user_properties=USER_PROPERTIES)
    span = events(exporter)["test_every_value_type_round_trips_through_the_json_attribute.<locals>.handle"]
    stored = namespace(span, "user_properties")
    assert stored == USER_PROPERTIES
    assert stored["is_beta"] is True and isinstance(stored["age"], int) and isinstance(stored["f"], float)
    assert stored["objs"][1]["k"] is False
    assert namespace(span, "metrics") == {"score": 0.25, "tokens": 12}
    assert namespace(records(exporter)[-1], "user_properties") == USER_PROPERTIES


def test_span_carries_session_type_name_inputs_and_outputs(
    tracer: HoneyHiveTracer, exporter: InMemorySpanExporter
) -> None:
    class Agent:
        @trace(event_type="model", event_name="answer", metadata={"v": 2}, config={"temperature": 0.1})
        def run(self, question: str, *extra: int, top_k: int = 3, **options: Any) -> dict[str, Any]:
            return {"answer": question.upper(), "top_k": top_k}

    assert Agent().run("hi", 7, top_k=5, style="terse") == {"answer": "HI", "top_k": 5}
    span = events(exporter)["answer"]
    attrs = span.attributes
    assert attrs[A.SESSION_ID] == tracer.session_id
    assert (attrs[A.PROJECT], attrs[A.SOURCE]) == ("sdk-tests", "dev")
    assert (attrs[A.EVENT_TYPE], attrs[A.EVENT_NAME]) == ("model", "answer")
    assert namespace(span, "inputs") == {"question": "hi", "extra": [7], "top_k": 5, "options": {"style": "terse"}}
    assert namespace(span, "outputs") == {"result": {"answer": "HI", "top_k": 5}}
    assert namespace(span, "metadata") == {"v": 2}
    assert namespace(span, "config") == {"temperature": 0.1}
    assert A.ERROR not in attrs


def test_default_event_type_and_name(tracer: HoneyHiveTracer, exporter: InMemorySpanExporter) -> None:
    @trace()
    def plain() -> None:
        return None

    plain()
    (span,) = events(exporter).values()
    assert span.attributes[A.EVENT_TYPE] == "tool"
    assert span.attributes[A.EVENT_NAME] == span.name == plain.__qualname__
    assert namespace(span, "inputs") is None
    assert namespace(span, "outputs") == {"result": None}


def test_inputs_are_recorded_when_the_call_starts(tracer: HoneyHiveTracer, exporter: InMemorySpanExporter) -> None:
    @trace
    def add_reply(messages: list[str]) -> int:
        messages.append("reply")
        return len(messages)

    assert add_reply(["question"]) == 2
    (span,) = events(exporter).values()
    assert namespace(span, "inputs") == {"messages": ["question"]}


def test_nested_sync_calls_are_parent_and_child(tracer: HoneyHiveTracer, exporter: InMemorySpanExporter) -> None:
    @trace(event_name="inner")
    def inner(x: int) -> int:
        return x + 1

    @trace(event_type="chain", event_name="outer")
    def outer(x: int) -> int:
        return inner(x) * 2

    assert outer(1) == 4
    spans = events(exporter)
    assert parent_id(spans["inner"]) == spans["outer"].context.span_id
    assert spans["inner"].context.trace_id == spans["outer"].context.trace_id
    assert spans["outer"].parent is None
    assert spans["outer"].start_time <= spans["inner"].start_time <= spans["inner"].end_time <= spans["outer"].end_time


def test_async_calls_and_gathered_tasks_nest(tracer: HoneyHiveTracer, exporter: InMemorySpanExporter) -> None:
    @trace(event_name="leaf")
    async def leaf(i: int) -> int:
        await asyncio.sleep(0.001 * (3 - i))
        enrich_span(metrics={"i": i})
        return i

    @atrace(event_name="fan_out")
    async def fan_out() -> list[int]:
        return list(await asyncio.gather(*(leaf(i) for i in range(3))))

    assert asyncio.run(fan_out()) == [0, 1, 2]
    spans = [s for s in finished(exporter) if s.attributes.get(A.RECORD) is None]
    root = next(s for s in spans if s.name == "fan_out")
    leaves = [s for s in spans if s.name == "leaf"]
    assert len(leaves) == 3
    assert {parent_id(s) for s in leaves} == {root.context.span_id}
    assert sorted(namespace(s, "metrics")["i"] for s in leaves) == [0, 1, 2]
    assert all(namespace(s, "metrics")["i"] == namespace(s, "inputs")["i"] for s in leaves)


def test_threads_and_thread_pools_nest_under_the_starting_call(
    tracer: HoneyHiveTracer, exporter: InMemorySpanExporter
) -> None:
    @trace(event_name="work")
    def work(i: int) -> int:
        return i * i

    @trace(event_name="parent")
    def parent() -> list[int]:
        results: list[int] = []
        thread = threading.Thread(target=lambda: results.append(work(10)))
        thread.start()
        thread.join()
        with ThreadPoolExecutor(max_workers=2) as pool:
            results.extend(pool.map(work, [1, 2, 3]))
        return results

    assert parent() == [100, 1, 4, 9]
    spans = [s for s in finished(exporter) if s.attributes.get(A.RECORD) is None]
    root = next(s for s in spans if s.name == "parent")
    works = [s for s in spans if s.name == "work"]
    assert len(works) == 4
    assert {parent_id(s) for s in works} == {root.context.span_id}


def test_pool_threads_started_in_a_call_do_not_keep_its_context(
    tracer: HoneyHiveTracer, exporter: InMemorySpanExporter
) -> None:
    @trace(event_name="job")
    def job() -> int:
        return 1

    pool = ThreadPoolExecutor(max_workers=1)

    @trace(event_name="starter")
    def starter() -> int:
        return pool.submit(job).result()

    assert starter() == 1
    assert pool.submit(job).result() == 1  # same worker thread, outside any traced call
    pool.shutdown()
    jobs = [s for s in finished(exporter) if s.name == "job"]
    assert sorted(parent_id(s) is None for s in jobs) == [False, True]


def test_generator_span_covers_the_whole_iteration(tracer: HoneyHiveTracer, exporter: InMemorySpanExporter) -> None:
    @trace(event_name="step")
    def step(i: int) -> int:
        return i

    @trace(event_name="stream")
    def stream(n: int) -> Iterator[int]:
        for i in range(n):
            yield step(i)
        enrich_span(metadata={"done": True})

    outside: list[object] = []
    for item in stream(3):
        outside.append(otel_trace.get_current_span())
        assert item in (0, 1, 2)
    spans = events(exporter)
    gen_span = spans["stream"]
    assert namespace(gen_span, "outputs") == {"result": [0, 1, 2]}
    assert namespace(gen_span, "metadata") == {"done": True}
    assert parent_id(spans["step"]) == gen_span.context.span_id
    # Between items the caller's context is current, not the generator's span.
    assert all(not span.is_recording() for span in outside)


def test_generator_closed_early_and_capped(tracer: HoneyHiveTracer, exporter: InMemorySpanExporter) -> None:
    @trace(event_name="endless")
    def endless() -> Iterator[int]:
        i = 0
        while True:
            yield i
            i += 1

    for item in endless():
        if item == decorators.MAX_YIELDED_ITEMS + 5:
            break
    span = events(exporter)["endless"]
    outputs = namespace(span, "outputs")
    assert outputs["result"] == list(range(decorators.MAX_YIELDED_ITEMS))
    assert outputs["yielded"] == decorators.MAX_YIELDED_ITEMS + 6
    assert span.status.status_code is not StatusCode.ERROR


def test_generator_send_and_throw_pass_through(tracer: HoneyHiveTracer, exporter: InMemorySpanExporter) -> None:
    @trace(event_name="echo")
    def echo() -> Iterator[str]:
        received = yield "ready"
        try:
            yield f"got {received}"
        except KeyError:
            yield "recovered"

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("x") == "got x"
    assert gen.throw(KeyError("k")) == "recovered"
    with pytest.raises(StopIteration):
        next(gen)
    assert namespace(events(exporter)["echo"], "outputs") == {"result": ["ready", "got x", "recovered"]}


def test_async_generator_is_one_span(tracer: HoneyHiveTracer, exporter: InMemorySpanExporter) -> None:
    @trace(event_name="tokens")
    async def tokens(text: str) -> Any:
        for word in text.split():
            await asyncio.sleep(0)
            yield word

    async def collect() -> list[str]:
        return [word async for word in tokens("a b c")]

    assert asyncio.run(collect()) == ["a", "b", "c"]
    span = events(exporter)["tokens"]
    assert namespace(span, "inputs") == {"text": "a b c"}
    assert namespace(span, "outputs") == {"result": ["a", "b", "c"]}


@pytest.mark.parametrize("is_async", [False, True])
def test_exception_is_recorded_and_reraised_unchanged(
    tracer: HoneyHiveTracer, exporter: InMemorySpanExporter, is_async: bool
) -> None:
    error = ValueError("boom")

    @trace(event_name="fails")
    def fails() -> None:
        raise error

    @trace(event_name="fails")
    async def afails() -> None:
        raise error

    with pytest.raises(ValueError) as caught:
        asyncio.run(afails()) if is_async else fails()
    assert caught.value is error
    span = events(exporter)["fails"]
    assert span.attributes[A.ERROR] == "ValueError: boom"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: boom"
    assert [e.name for e in span.events] == ["exception"]
    assert span.events[0].attributes["exception.type"] == "ValueError"
    assert namespace(span, "outputs") is None


def test_exception_in_generator_is_recorded(tracer: HoneyHiveTracer, exporter: InMemorySpanExporter) -> None:
    @trace(event_name="broken")
    def broken() -> Iterator[int]:
        yield 1
        raise RuntimeError("mid-stream")

    with pytest.raises(RuntimeError, match="mid-stream"):
        list(broken())
    span = events(exporter)["broken"]
    assert span.attributes[A.ERROR] == "RuntimeError: mid-stream"
    assert namespace(span, "outputs") == {"result": [1]}


def test_enrich_span_merges_repeated_calls(tracer: HoneyHiveTracer, exporter: InMemorySpanExporter) -> None:
    @trace(event_name="merged", metadata={"static": 1, "nested": {"a": 1}})
    def merged(query: str) -> str:
        enrich_span(user_properties={"user_id": "u1", "prefs": {"theme": "dark"}})
        tracer.enrich_span(user_properties={"prefs": {"lang": "en"}}, metadata={"nested": {"b": 2}})
        enrich_span(outputs={"tokens": 3, "result": "overridden"}, inputs={"extra": True}, error="soft failure")
        enrich_span(attributes={"route": "fast"}, request_id="r-1")
        return "answer"

    assert merged("q") == "answer"
    span = events(exporter)["merged"]
    assert namespace(span, "user_properties") == {"user_id": "u1", "prefs": {"theme": "dark", "lang": "en"}}
    assert namespace(span, "metadata") == {
        "static": 1,
        "nested": {"a": 1, "b": 2},
        "route": "fast",
        "request_id": "r-1",
    }
    assert namespace(span, "outputs") == {"tokens": 3, "result": "answer"}
    assert namespace(span, "inputs") == {"query": "q", "extra": True}
    assert span.attributes[A.ERROR] == "soft failure"
    assert span.status.status_code is not StatusCode.ERROR


def test_enrich_session_emits_one_record_per_call(tracer: HoneyHiveTracer, exporter: InMemorySpanExporter) -> None:
    @trace
    def inside() -> None:
        enrich_session(metadata={"step": "inside"})

    tracer.enrich_session(user_properties={"user_id": "u1"}, metrics={"n": 1})
    inside()
    enrich_session(user_properties={"plan": "pro"})
    tracer.enrich_session(feedback={"rating": 5}, session_id="other-session")
    tracer.enrich_session()  # nothing to say: no record
    start, *updates = records(exporter)
    assert A.SESSION_NAME in start.attributes
    assert [namespace(r, "user_properties") for r in updates] == [{"user_id": "u1"}, None, {"plan": "pro"}, None]
    assert namespace(updates[0], "metrics") == {"n": 1}
    assert namespace(updates[1], "metadata") == {"step": "inside"}
    assert all(r.parent is None for r in updates)
    assert [r.attributes[A.SESSION_ID] for r in updates] == [tracer.session_id] * 3 + ["other-session"]
    assert namespace(updates[3], "feedback") == {"rating": 5}


def test_non_json_arguments_and_results(tracer: HoneyHiveTracer, exporter: InMemorySpanExporter) -> None:
    class Query(BaseModel):
        text: str
        k: int = 2

    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque " + "x" * 2000 + ">"

    lock = threading.Lock()

    @trace(event_name="odd")
    def odd(query: Query, raw: bytes, lock: Any, thing: Opaque, pair: tuple[int, str]) -> Any:
        return {1: {"set": {3}}, "lock": lock}

    odd(Query(text="hi"), b"\x00\x01", lock, Opaque(), (1, "a"))
    span = events(exporter)["odd"]
    inputs = namespace(span, "inputs")
    assert inputs["query"] == {"text": "hi", "k": 2}
    assert inputs["raw"] == "<bytes: 2 bytes>"
    assert inputs["lock"].startswith("<unlocked _thread.lock")
    assert inputs["thing"].startswith("<Opaque xxx") and len(inputs["thing"]) <= 500
    assert inputs["pair"] == [1, "a"]
    outputs = namespace(span, "outputs")["result"]
    assert outputs["1"] == {"set": [3]}


def test_two_tracers_keep_their_sessions(exporter: InMemorySpanExporter) -> None:
    first = HoneyHiveTracer.init(api_key="k", project="p1", session_name="one")
    second = HoneyHiveTracer.init(api_key="k", project="p2", session_name="two")

    @trace(event_name="helper")
    def helper() -> str:
        return "h"

    @trace(event_name="in_first", tracer=first)
    def in_first() -> str:
        return helper()

    assert in_first() == "h"  # helper follows its caller's tracer
    helper()  # on its own: the latest tracer
    spans = [s for s in finished(exporter) if s.attributes.get(A.RECORD) is None]
    by_session = {(s.name, s.attributes[A.SESSION_ID], s.attributes[A.PROJECT]) for s in spans}
    assert by_session == {
        ("in_first", first.session_id, "p1"),
        ("helper", first.session_id, "p1"),
        ("helper", second.session_id, "p2"),
    }
    assert first.session_id != second.session_id
    assert len(pipeline._pipelines) == 1  # same server and key: one shared pipeline


def test_own_otel_spans_are_enriched_directly_and_global_provider_untouched(
    tracer: HoneyHiveTracer, exporter: InMemorySpanExporter
) -> None:
    assert all(otel_trace.get_tracer_provider() is not p.provider for p in pipeline._pipelines.values())
    own_memory = InMemorySpanExporter()
    own_provider = TracerProvider()
    own_provider.add_span_processor(BatchSpanProcessor(own_memory))
    own_tracer = own_provider.get_tracer("app")

    @trace(event_name="traced_child")
    def traced_child() -> int:
        return 1

    @trace(event_name="traced_outer")
    def traced_outer() -> int:
        with own_tracer.start_as_current_span("app-span"):
            enrich_span(metadata={"a": {"x": 1}})
            enrich_span(metadata={"a": {"y": 2}})
            return traced_child()

    assert traced_outer() == 1
    own_provider.force_flush()
    (app_span,) = own_memory.get_finished_spans()
    assert namespace(app_span, "metadata") == {"a": {"x": 1, "y": 2}}
    spans = events(exporter)
    assert namespace(spans["traced_outer"], "metadata") is None
    assert parent_id(spans["traced_child"]) == app_span.context.span_id
    assert parent_id(app_span) == spans["traced_outer"].context.span_id


def test_misuse_warns_and_never_breaks_the_program(
    exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tracehive")

    @trace(event_name="early")
    def early(x: int) -> int:
        return x + 1

    assert early(1) == 2  # no tracer yet: runs untraced
    assert enrich_span(metadata={"a": 1}) is False
    enrich_session(metadata={"a": 1})
    assert "before HoneyHiveTracer.init" in caplog.text
    assert "outside any traced span" in caplog.text

    tracer = HoneyHiveTracer.init(api_key=123, project="p", session_name=["bad"])
    caplog.clear()

    @trace(event_type="bogus", event_name=42, metadata="not a dict", tracer="nope")
    def wrong_options(x: int) -> int:
        enrich_span(metadata="oops", metrics={"ok": 1})
        tracer.enrich_session(user_properties=["not", "a", "dict"])
        enrich_session(session_id=5, user_properties={"fine": True})
        return x * 3

    assert wrong_options(2) == 6
    assert trace("not callable")(5) == 5
    for message in (
        "unknown event_type",
        "event_name must be a string",
        "trace(metadata=...) expects a dict",
        "tracer= must be a HoneyHiveTracer",
        "enrich_span(metadata=...) expects a dict",
        "enrich_session(user_properties=...) expects a dict",
        "@trace needs a function",
    ):
        assert message in caplog.text
    span = events(exporter)[wrong_options.__qualname__]
    assert span.attributes[A.EVENT_TYPE] == "tool"
    assert namespace(span, "metrics") == {"ok": 1}
    assert namespace(records(exporter)[-1], "user_properties") == {"fine": True}


def test_enrich_after_span_ended_is_ignored(
    tracer: HoneyHiveTracer, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    late: list[Any] = []

    @trace(event_name="starts_thread")
    def starts_thread() -> threading.Thread:
        thread = threading.Thread(target=lambda: (started.wait(5), late.append(enrich_span(metadata={"x": 1}))))
        thread.start()
        return thread

    started = threading.Event()
    thread = starts_thread()
    started.set()
    thread.join()
    assert late == [False]
    assert "after its span ended" in caplog.text
    assert namespace(events(exporter)["starts_thread"], "metadata") is None
