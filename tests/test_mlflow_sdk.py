"""The real ``mlflow-tracing`` SDK exporting OTLP to a real server (its documented OpenTelemetry
environment variables), with its OpenAI autolog calling a fake OpenAI on loopback."""

from __future__ import annotations

import subprocess

from tests.conftest import Server, create_key
from tests.instrumentors import FAKE_MODEL, FAKE_USAGE, FakeOpenAI, run_sdk

PROGRAM = """
    import mlflow
    from openai import OpenAI

    mlflow.openai.autolog()

    @mlflow.trace(span_type="TOOL")
    def get_weather(city):
        return "sunny"

    @mlflow.trace(name="plan-trip", span_type="AGENT")
    def plan_trip(question):
        client = OpenAI()
        messages = [{"role": "user", "content": question}]
        first = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        call = first.choices[0].message.tool_calls[0]
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "content": get_weather("Paris"), "tool_call_id": call.id})
        return client.chat.completions.create(model="gpt-4o-mini", messages=messages).choices[0].message.content

    print(plan_trip("Weather in Paris?"))
"""


def run_mlflow(server: Server, key: str, fake: FakeOpenAI, **extra: str) -> subprocess.CompletedProcess:
    env = {
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "sk-fake",
        # mlflow-tracing 3.17 reads its tracking URI even when it only exports OTLP; unset, it
        # imports modules it does not ship. It is not contacted when the export is OTLP.
        "MLFLOW_TRACKING_URI": server.url,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{server.url}/v1/traces",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"authorization=Bearer {key}",
        **extra,
    }
    done = run_sdk("peers", PROGRAM, env)
    assert done.stdout.strip() == "It is sunny in Paris."
    return done


def test_a_traced_program_lands_as_its_session_with_nested_events(served_with_fake_openai) -> None:
    server, fake = served_with_fake_openai
    key = create_key(server, "ml-shop")
    done = run_mlflow(server, key, fake)
    assert "Failed to export" not in done.stderr, done.stderr
    (listed,) = server.get("/api/v1/sessions", project="ml-shop")["sessions"]
    assert listed["session_id"].startswith("tr-")  # MLflow's own trace id
    (root,) = server.get(f"/api/v1/sessions/{listed['session_id']}")["events"]
    assert (root["event_type"], root["event_name"], root["metadata"]["span_kind"]) == ("chain", "plan-trip", "AGENT")
    assert root["inputs"] == {"question": "Weather in Paris?"}
    assert root["outputs"] == {"value": "It is sunny in Paris."}
    first, tool, second = root["children"]
    assert (tool["event_type"], tool["event_name"], tool["inputs"]) == ("tool", "get_weather", {"city": "Paris"})
    for model in (first, second):
        assert (model["event_type"], model["metadata"]["span_kind"]) == ("model", "CHAT_MODEL")
        assert model["config"]["model"] == FAKE_MODEL
        assert [model["metadata"][k] for k in FAKE_USAGE] == list(FAKE_USAGE.values())
    assert first["inputs"]["chat_history"] == [{"role": "user", "content": "Weather in Paris?"}]
    assert first["outputs"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert [m["role"] for m in second["inputs"]["chat_history"]] == ["user", "assistant", "tool"]
    assert second["outputs"] == {"role": "assistant", "content": "It is sunny in Paris."}


def test_a_project_key_cannot_send_to_another_project(served_with_fake_openai) -> None:
    server, fake = served_with_fake_openai
    key = create_key(server, "ml-own")
    done = run_mlflow(server, key, fake, OTEL_RESOURCE_ATTRIBUTES="tracehive.project=ml-other")
    assert "Failed to export spans batch code: 403" in done.stderr, done.stderr  # the app runs on
    for project in ("ml-other", "ml-own"):
        assert server.get("/api/v1/sessions", project=project)["sessions"] == []
