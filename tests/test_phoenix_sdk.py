"""Arize Phoenix's ``phoenix.otel.register`` with the real OpenInference OpenAI instrumentor, pointed
at a real server by its endpoint and API key only, calling a fake OpenAI on loopback."""

from __future__ import annotations

import subprocess

from tests.conftest import Server, create_key
from tests.instrumentors import FAKE_MODEL, FAKE_USAGE, FakeOpenAI, run_sdk

PROGRAM = """
    import sys
    from openai import OpenAI
    from phoenix.otel import register

    register(endpoint=sys.argv[1], project_name=sys.argv[2], auto_instrument=True, verbose=False)
    answer = OpenAI().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Weather in Paris?"}]
    )
    print(answer.choices[0].finish_reason)
"""


def run_phoenix(server: Server, key: str, fake: FakeOpenAI, project: str) -> subprocess.CompletedProcess:
    env = {"PHOENIX_API_KEY": key, "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-fake"}
    done = run_sdk("peers", PROGRAM, env, f"{server.url}/v1/traces", project)
    assert done.stdout.strip() == "tool_calls"
    return done


def test_register_sends_the_model_call_to_the_named_project(served_with_fake_openai) -> None:
    server, fake = served_with_fake_openai
    done = run_phoenix(server, server.key, fake, "px-shop")
    assert "Failed to export" not in done.stderr, done.stderr
    (session,) = server.get("/api/v1/sessions", project="px-shop")["sessions"]
    (event,) = server.get(f"/api/v1/sessions/{session['session_id']}")["events"]
    assert (event["event_type"], event["metadata"]["span_kind"]) == ("model", "LLM")
    assert event["config"]["model"] == FAKE_MODEL
    assert event["inputs"]["chat_history"] == [{"role": "user", "content": "Weather in Paris?"}]
    assert event["outputs"]["tool_calls"][0]["function"]["name"] == "get_weather"
    metadata = event["metadata"]
    assert [metadata[k] for k in FAKE_USAGE] == list(FAKE_USAGE.values())


def test_a_project_key_cannot_send_to_another_project(served_with_fake_openai) -> None:
    server, fake = served_with_fake_openai
    key = create_key(server, "px-own")
    done = run_phoenix(server, key, fake, "px-other")  # the app runs on; its export is refused
    assert "Failed to export spans batch code: 403" in done.stderr, done.stderr
    assert server.get("/api/v1/sessions", project="px-other")["sessions"] == []
    assert server.get("/api/v1/sessions", project="px-own")["sessions"] == []
    run_phoenix(server, key, fake, "px-own")
    assert len(server.get("/api/v1/sessions", project="px-own")["sessions"]) == 1
