"""LLM calls end to end: real instrumentors and the real openai client, each in its own venv,
calling a fake OpenAI server on loopback and exporting to a real tracehive server (OTLP/HTTP and
OTLP/gRPC); the stored model events, their sessions, costs and the price overrides."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tests.browser import log_in, needs_chromium
from tests.conftest import Server, free_port, start_server
from tests.instrumentors import FAKE_MODEL, FAKE_USAGE, FakeOpenAI, run_python, venv_python
from tests.otlp_payloads import new_span_id, new_trace_id, protobuf_request

from tracehive.server.grpc_ingest import SERVICE
from tracehive.server.prices import Prices, Usage

SOURCE = Path(__file__).parent.parent / "src"  # tracehive's SDK, run by test (a) in a venv of its own

# The conversation the programs below have with the fake: a tool call, then an answer.
CHAT = """
import openai
client = openai.OpenAI(base_url=os.environ["FAKE_OPENAI"], api_key="sk-fake")
messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Weather in Paris?"}]
tools = [{"type": "function", "function": {"name": "get_weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools, temperature=0.2)
messages.append(first.choices[0].message.model_dump(exclude_none=True))
messages.append({"role": "tool", "tool_call_id": first.choices[0].message.tool_calls[0].id, "content": "sunny"})
second = client.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0.2)
print(second.choices[0].message.content)
"""

# A plain OpenTelemetry program: the instrumentor named by INSTRUMENTOR on an SDK provider whose
# spans go one by one (SimpleSpanProcessor) to tracehive; session.id on the root span only.
OTEL_PROGRAM = (
    """
import importlib, os
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

provider = TracerProvider(resource=Resource.create({"service.name": "weather-bot"}))
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
    endpoint=os.environ["TRACEHIVE_URL"] + "/v1/traces",
    headers={"Authorization": "Bearer " + os.environ["TRACEHIVE_KEY"], "tracehive-project": "x"})))
module, name = os.environ["INSTRUMENTOR"].rsplit(":", 1)
getattr(importlib.import_module(module), name)().instrument(tracer_provider=provider)
tracer = provider.get_tracer("app")
with tracer.start_as_current_span("answer", attributes={"session.id": os.environ["SESSION"], "user.id": "u-7"}):
"""
    + "\n".join("    " + line for line in CHAT.strip().splitlines())
    + "\nprovider.shutdown()\n"
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    running = FakeOpenAI()
    yield running
    running.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[Server, int]]:
    grpc_port = free_port()
    # A 1 MB body limit (instrumented calls are far smaller) lets a test pass it over gRPC cheaply.
    running = start_server(tmp_path_factory.mktemp("llm-data"), "--grpc-port", str(grpc_port), "--max-body-mb", "1")
    yield running, grpc_port
    running.stop()


def flat(events: list[dict]) -> list[dict]:
    return [e for event in events for e in (event, *flat(event.get("children", [])))]


def table_cost(model: str = FAKE_MODEL) -> float:
    cost = Prices().cost("any", "openai", model, Usage(FAKE_USAGE["prompt_tokens"], FAKE_USAGE["completion_tokens"]))
    assert cost is not None and cost > 0
    return cost


def check_model_events(session: dict, parent_name: str) -> list[dict]:
    """The two model calls sit under ``parent_name`` in the session, in HoneyHive's schema."""
    events = flat(session["events"])
    parent = next(e for e in events if e["event_name"] == parent_name)
    models = sorted((e for e in events if e["event_type"] == "model"), key=lambda e: e["start_time"])
    assert len(models) == 2, [(e["event_name"], e["event_type"]) for e in events]
    for event in models:
        assert event["parent_id"] == parent["event_id"]
        assert event["session_id"] == session["session_id"]
        assert event["config"]["model"] == FAKE_MODEL
        assert event["config"]["provider"] == "openai"
        assert event["config"]["hyperparameters"]["temperature"] == 0.2
        metadata = event["metadata"]
        assert metadata["prompt_tokens"] == FAKE_USAGE["prompt_tokens"]
        assert metadata["completion_tokens"] == FAKE_USAGE["completion_tokens"]
        assert metadata["total_tokens"] == FAKE_USAGE["total_tokens"]
        assert metadata["cost"] == pytest.approx(table_cost())
    first, second = models
    assert [m["role"] for m in first["inputs"]["chat_history"]] == ["system", "user"]
    assert first["inputs"]["chat_history"][1]["content"] == "Weather in Paris?"
    call = first["outputs"]["tool_calls"][0]
    assert (call["id"], call["function"]["name"]) == ("call_weather_1", "get_weather")
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert [m["role"] for m in second["inputs"]["chat_history"]] == ["system", "user", "assistant", "tool"]
    assert second["inputs"]["chat_history"][3] == {"role": "tool", "content": "sunny", "tool_call_id": "call_weather_1"}
    assert second["outputs"]["role"] == "assistant"
    assert second["outputs"]["content"] == "It is sunny in Paris."
    return models


def run_otel(served, fake, tmp_path, venv: str, instrumentor: str, **env: str) -> dict:
    server, _ = served
    session_id = f"weather-{uuid.uuid4()}"
    settings = {"PATH": os.environ["PATH"], "TRACEHIVE_URL": server.url, "TRACEHIVE_KEY": server.key,
                "FAKE_OPENAI": fake.base_url, "SESSION": session_id, "INSTRUMENTOR": instrumentor, **env}  # fmt: skip
    printed = run_python(venv_python(venv), OTEL_PROGRAM, settings, tmp_path)
    assert "sunny" in printed
    session = server.get(f"/api/v1/sessions/{session_id}")
    assert session["event_count"] == 3  # the root and two model calls, nothing left as a stray session
    assert session["user_properties"] == {"user_id": "u-7"}
    listed = server.get("/api/v1/sessions", filter='user_properties.user_id = "u-7"', limit=100)["sessions"]
    assert session_id in [s["session_id"] for s in listed]
    return session


def test_openllmetry_instrumentor(served, fake, tmp_path):
    """(b) Traceloop's opentelemetry-instrumentation-openai: GenAI keys plus its own."""
    session = run_otel(served, fake, tmp_path, "openllmetry", "opentelemetry.instrumentation.openai:OpenAIInstrumentor")
    check_model_events(session, "answer")


def test_otel_genai_instrumentor_span_by_span(served, fake, tmp_path):
    """(c) opentelemetry-instrumentation-openai-v2 with messages on the span: only gen_ai.* keys,
    session.id on the root alone, each span its own request, the model calls first."""
    session = run_otel(
        served, fake, tmp_path, "otel-genai", "opentelemetry.instrumentation.openai_v2:OpenAIInstrumentor",
        OTEL_SEMCONV_STABILITY_OPT_IN="gen_ai_latest_experimental",
        OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="span_only",
    )  # fmt: skip
    models = check_model_events(session, "answer")
    assert {m["metadata"]["span_kind"] for m in models} == {"chat"}


def test_otel_genai_instrumentor_default_mode_has_no_messages(served, fake, tmp_path):
    """Without the opt-in the instrumentor sends messages as log records, which tracehive does not
    take (docs/llm-calls.md): the model call is there with model, tokens and cost, without messages."""
    session = run_otel(
        served, fake, tmp_path, "otel-genai", "opentelemetry.instrumentation.openai_v2:OpenAIInstrumentor"
    )
    models = [e for e in flat(session["events"]) if e["event_type"] == "model"]
    assert len(models) == 2
    for event in models:
        assert event["config"]["model"] == FAKE_MODEL
        assert event["metadata"]["cost"] == pytest.approx(table_cost())
        assert "chat_history" not in event["inputs"] and "content" not in event["outputs"]


def test_openinference_instrumentor_on_plain_otel(served, fake, tmp_path):
    session = run_otel(
        served, fake, tmp_path, "openinference", "openinference.instrumentation.openai:OpenAIInstrumentor"
    )
    models = check_model_events(session, "answer")
    assert {m["metadata"]["span_kind"] for m in models} == {"LLM"}


GRPC_PROGRAM = """
import os
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

provider = TracerProvider()
exporter = OTLPSpanExporter(endpoint=os.environ["GRPC"], insecure=True, compression=None,
                            headers={"authorization": "Bearer " + os.environ["KEY"]})
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("grpc-app")
with tracer.start_as_current_span("request", attributes={"session.id": os.environ["SESSION"]}):
    with tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 120,
            "gen_ai.usage.output_tokens": 30}):
        pass
provider.shutdown()
"""


def test_grpc_exporter_delivers_a_session(served, tmp_path):
    server, grpc_port = served
    session_id = f"grpc-{uuid.uuid4()}"
    env = {**os.environ, "GRPC": f"127.0.0.1:{grpc_port}", "KEY": server.key, "SESSION": session_id}
    done = subprocess.run([sys.executable, "-c", GRPC_PROGRAM], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    session = server.get(f"/api/v1/sessions/{session_id}")
    assert session["event_count"] == 2
    (model,) = [e for e in flat(session["events"]) if e["event_type"] == "model"]
    assert model["metadata"]["cost"] == pytest.approx(table_cost("gpt-4o-mini"))


def test_grpc_refuses_a_wrong_key_and_a_bad_body_and_stores_nothing(served):
    server, grpc_port = served
    session_id = f"grpc-bad-{uuid.uuid4()}"
    body = protobuf_request([{"trace_id": new_trace_id(), "span_id": new_span_id(),
                              "attributes": {"session.id": session_id}}])  # fmt: skip
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        export = channel.unary_unary(f"/{SERVICE}/Export")  # raw bytes both ways
        with pytest.raises(grpc.RpcError) as raised:
            export(body, metadata=[("authorization", "Bearer th-wrong")], timeout=10)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as raised:
            export(b"\xff\xff not protobuf", metadata=[("authorization", f"Bearer {server.key}")], timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "protobuf" in raised.value.details()
        with pytest.raises(grpc.RpcError) as raised:  # past the body limit (1 MB for this server)
            export(b"\x00" * (1024 * 1024 + 1), metadata=[("authorization", f"Bearer {server.key}")], timeout=10)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with server.client() as client:
        assert client.get(f"/api/v1/sessions/{session_id}").status_code == 404


def send_model_call(server: Server, project: str, model: str) -> str:
    trace_id, span_id = new_trace_id(), new_span_id()
    body = protobuf_request([{"trace_id": trace_id, "span_id": span_id, "attributes": {
        "tracehive.project": project, "gen_ai.operation.name": "chat", "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 500}}])  # fmt: skip
    with server.client() as client:
        assert (
            client.post("/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}).status_code
            == 200
        )
    return span_id


def tracehive_cli(server: Server, *args: str) -> subprocess.CompletedProcess:
    # rich fits tables to the terminal; a wide one keeps names whole.
    return subprocess.run([sys.executable, "-m", "tracehive", *args, "--url", server.url, "--api-key", server.key],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})  # fmt: skip


def test_unpriced_models_are_listed_until_a_price_is_set_with_the_cli(served, tmp_path):
    server, _ = served
    project, model = f"priced-{uuid.uuid4().hex[:8]}", "Acme-Private-7B"
    unknown = send_model_call(server, project, model)
    assert server.get(f"/api/v1/events/{unknown}")["metadata"]["cost"] is None  # unknown: null, not 0
    assert server.get("/api/v1/models/unpriced", project=project)["models"] == [
        {"project": project, "model": model, "provider": None, "calls": 1,
         "last_seen": server.get(f"/api/v1/events/{unknown}")["start_time"]}]  # fmt: skip
    done = tracehive_cli(server, "prices", "set", project, model, "--input", "2", "--output", "8")
    assert done.returncode == 0, done.stderr
    assert server.get("/api/v1/models/unpriced", project=project)["models"] == []
    assert server.get("/api/v1/prices", project=project)["prices"] == [
        {"project": project, "model": model.lower(), "input_mtok": 2.0, "output_mtok": 8.0,
         "cache_read_mtok": None, "cache_write_mtok": None}]  # fmt: skip
    priced = send_model_call(server, project, model)
    assert server.get(f"/api/v1/events/{priced}")["metadata"]["cost"] == pytest.approx((1000 * 2 + 500 * 8) / 1e6)
    listed = tracehive_cli(server, "prices", "list")
    assert model.lower() in listed.stdout
    assert tracehive_cli(server, "prices", "unset", project, model).returncode == 0
    again = send_model_call(server, project, model)
    assert server.get(f"/api/v1/events/{again}")["metadata"]["cost"] is None


def test_price_input_is_checked_and_kept_to_a_keys_project(served):
    server, _ = served
    from tracehive.server.auth import KEYS_FILE, KeyRing

    key = KeyRing(server.data_dir / KEYS_FILE).create("llm-prices", "mine")
    with server.client(key) as client:
        response = client.put("/api/v1/prices/theirs/gpt-4o", json={"input_mtok": 1, "output_mtok": 1})
        assert response.status_code == 403
        response = client.put("/api/v1/prices/mine/gpt-4o", json={"input_mtok": -1, "output_mtok": 1})
        assert response.status_code == 400 and "input_mtok" in response.json()["detail"]
        response = client.put("/api/v1/prices/mine/gpt-4o", json={"input_mtok": 1, "output_mtok": 1, "x": 2})
        assert response.status_code == 400 and "'x'" in response.json()["detail"]
        assert client.put("/api/v1/prices/mine/gpt-4o", json={"input_mtok": 1, "output_mtok": 1}).status_code == 200
        assert [p["project"] for p in client.get("/api/v1/prices").json()["prices"]] == ["mine"]


# HoneyHive's documented way to trace OpenAI: OpenInference's instrumentor on the tracer's provider,
# inside a @trace'd function of a session with user properties. CHAT_SDK is the same for our SDK.
SDK_PROGRAM = """
import os
from openinference.instrumentation.openai import OpenAIInstrumentor
{import_line}

tracer = HoneyHiveTracer.init(session_name="weather", source="test")
tracer.enrich_session(user_properties={{"user_id": "u-7", "plan": "premium"}})
OpenAIInstrumentor().instrument(tracer_provider=tracer.provider)


@trace
def answer():
{chat}
    return second.choices[0].message.content


print(answer())
tracer.flush()
"""


def sdk_program(import_line: str) -> str:
    chat = "\n".join("    " + line for line in CHAT.strip().splitlines() if not line.startswith("print("))
    return SDK_PROGRAM.format(import_line=import_line, chat=chat)


def run_sdk(served, fake, tmp_path, python, import_line: str, **extra: str) -> dict:
    server, _ = served
    project = f"sdk-{uuid.uuid4().hex[:8]}"
    env = {**extra, "PATH": os.environ["PATH"], "HH_API_KEY": server.key, "HH_API_URL": server.url,
           "HH_PROJECT": project, "FAKE_OPENAI": fake.base_url}  # fmt: skip
    printed = run_python(python, sdk_program(import_line), env, tmp_path)
    assert "sunny" in printed
    (found,) = server.get("/api/v1/sessions", project=project)["sessions"]
    session = server.get(f"/api/v1/sessions/{found['session_id']}")
    assert session["user_properties"] == {"user_id": "u-7", "plan": "premium"}
    listed = server.get("/api/v1/sessions", project=project, filter='user_properties.plan = "premium"')
    assert [s["session_id"] for s in listed["sessions"]] == [session["session_id"]]
    return session


@pytest.fixture(scope="module")
def sdk_model_events(served, fake, tmp_path_factory) -> dict[str, list[dict]]:
    """The model events of the same program run with (a) our SDK, from this source tree, and (d) the
    real honeyhive 1.7.0 SDK, each with OpenInference on ``tracer.provider`` as HoneyHive's docs show."""
    ours = run_sdk(served, fake, tmp_path_factory.mktemp("ours"), venv_python("openinference"),
                   "from tracehive import HoneyHiveTracer, trace", PYTHONPATH=str(SOURCE))  # fmt: skip
    theirs = run_sdk(served, fake, tmp_path_factory.mktemp("theirs"), venv_python("honeyhive-openinference"),
                     "from honeyhive import HoneyHiveTracer, trace")  # fmt: skip
    return {"ours": check_model_events(ours, "answer"), "honeyhive": check_model_events(theirs, "answer")}


def test_our_sdk_with_openinference_on_its_provider(sdk_model_events):
    """(a) checked in the fixture: under the @trace'd call, in the session with user properties."""
    assert len(sdk_model_events["ours"]) == 2


def test_honeyhive_sdk_with_openinference_on_its_provider(sdk_model_events):
    """(d) checked in the fixture, the same way."""
    assert len(sdk_model_events["honeyhive"]) == 2


# What differs between two runs of one program, whichever SDK: ids, times and the session.
RUN_FIELDS = ("event_id", "session_id", "trace_id", "parent_id", "project", "start_time", "end_time",
              "duration_ms", "children")  # fmt: skip


def test_our_sdk_and_honeyhives_give_the_same_model_event(sdk_model_events):
    def same_parts(event: dict) -> dict:
        return {k: v for k, v in event.items() if k not in RUN_FIELDS}

    ours, theirs = ([same_parts(e) for e in sdk_model_events[name]] for name in ("ours", "honeyhive"))
    assert ours == theirs


@needs_chromium
def test_models_page_lists_unpriced_models_literally(served, browser):
    server, _ = served
    project = f"page-{uuid.uuid4().hex[:8]}"
    hostile = "<img src=x onerror=alert(1)>-llm"
    send_model_call(server, project, hostile)
    context = browser.new_context(base_url=server.url)
    tab = context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    log_in(tab, server.key)
    tab.goto(f"/models?project={project}")
    assert tab.locator("table.unpriced td.model").all_inner_texts() == [hostile]
    assert tab.locator("table.unpriced img").count() == 0 and dialogs == []
    context.close()


def test_a_model_event_recorded_through_honeyhives_create_event_gets_a_cost(served):
    server, _ = served
    event = {"project": f"create-{uuid.uuid4().hex[:8]}", "event_name": "chat", "event_type": "model",
             "config": {"model": "gpt-4o-mini", "provider": "openai"},
             "metadata": {"prompt_tokens": 120, "completion_tokens": 30}}  # fmt: skip
    with server.client() as client:
        answer = client.post("/events", json={"event": event})
    assert answer.status_code == 200, answer.text
    stored = server.get(f"/api/v1/events/{answer.json()['event_id']}")
    assert stored["metadata"]["total_tokens"] == 150
    assert stored["metadata"]["cost"] == pytest.approx(table_cost("gpt-4o-mini"))
