"""The real Langfuse Python SDK (v5) against a real server, changed only in its host and keys."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from tests.conftest import Server, create_key, start_server
from tests.instrumentors import run_sdk

from tracehive.model import Batch, Event
from tracehive.server.scores import MAX_WAIT_SECONDS, PENDING_FILE, PendingScores
from tracehive.store.columns import Rows

PROJECT = "shop"
PROGRAM = """
    from langfuse import get_client, observe, propagate_attributes

    langfuse = get_client()
    assert langfuse.auth_check()

    @observe(as_type="generation", name="answer")
    def call_model(question):
        langfuse.update_current_generation(
            model="gpt-4o-mini",
            model_parameters={"temperature": 0.2},
            input=[{"role": "user", "content": question}],
            usage_details={"input": 120, "output": 45},
            cost_details={"input": 0.0012, "output": 0.0027},
            metadata={"attempt": 1},
        )
        langfuse.score_current_span(name="relevance", value=1, data_type="BOOLEAN")
        return "Try the Trailblazer 2."

    @observe(name="handle-request")
    def handle_request(question):
        with propagate_attributes(user_id="user_12345", session_id="chat-42", trace_name="support",
                                  tags=["beta"], metadata={"plan": "premium", "region": "eu"}):
            answer = call_model(question)
            langfuse.score_current_trace(name="helpfulness", value=0.9, comment="to the point")
            return answer

    print(handle_request("best hiking boots?"))
    langfuse.flush()
"""


def langfuse_pair(server: Server, project: str) -> tuple[str, str]:
    """A key pair made as a user would: ``tracehive keys create --project P --langfuse``."""
    printed = dict(line.split("=", 1) for line in create_key(server, project, "--langfuse").splitlines())
    return printed["LANGFUSE_PUBLIC_KEY"], printed["LANGFUSE_SECRET_KEY"]


def basic(public: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{public}:{secret}".encode()).decode()}


def run_langfuse(server: Server, public: str, secret: str, source: str = PROGRAM) -> tuple[str, str]:
    """Run a Langfuse program with only its host and keys set; returns what it printed and logged."""
    env = {"LANGFUSE_BASE_URL": server.url, "LANGFUSE_PUBLIC_KEY": public, "LANGFUSE_SECRET_KEY": secret}
    done = run_sdk("peers", source, env)
    return done.stdout, done.stderr


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, tuple[str, str], str]]:
    server = start_server(tmp_path_factory.mktemp("langfuse-data"))
    try:
        pair = langfuse_pair(server, PROJECT)
        stdout, stderr = run_langfuse(server, *pair)
        assert stdout.strip() == "Try the Trailblazer 2."
        yield server, pair, stderr
    finally:
        server.stop()


def test_a_langfuse_program_lands_as_a_session_with_its_model_call_and_score(served) -> None:
    server, _, stderr = served
    # The SDK logs a failed export or a refused score at WARNING or ERROR; there is none.
    assert "WARNING" not in stderr and "ERROR" not in stderr, stderr
    found = server.get("/api/v1/sessions", filter='user_properties.user_id = "user_12345"')["sessions"]
    assert [s["session_id"] for s in found] == ["chat-42"]
    session = server.get("/api/v1/sessions/chat-42")
    assert session["project"] == PROJECT
    assert session["session_name"] == "support"
    assert session["user_properties"] == {"user_id": "user_12345"}
    assert session["metadata"] == {"plan": "premium", "region": "eu", "tags": ["beta"]}
    assert session["feedback"] == {"helpfulness": 0.9, "helpfulness_comment": "to the point"}
    (root,) = session["events"]
    assert (root["event_type"], root["event_name"]) == ("chain", "handle-request")
    assert root["inputs"] == {"args": ["best hiking boots?"], "kwargs": {}}
    (model,) = root["children"]
    assert (model["event_type"], model["event_name"]) == ("model", "answer")
    assert model["config"]["model"] == "gpt-4o-mini"
    assert model["config"]["hyperparameters"] == {"temperature": 0.2}
    assert model["inputs"]["chat_history"] == [{"role": "user", "content": "best hiking boots?"}]
    assert model["outputs"]["content"] == "Try the Trailblazer 2."
    metadata = model["metadata"]
    assert (metadata["prompt_tokens"], metadata["completion_tokens"], metadata["total_tokens"]) == (120, 45, 165)
    assert metadata["cost"] == pytest.approx(0.0039)
    assert (metadata["span_kind"], metadata["attempt"]) == ("generation", 1)
    assert model["feedback"] == {"relevance": True}  # score_current_span: the observation's own score
    # Trace-level keys are the session's, not copied onto every event.
    assert "langfuse" not in metadata and "plan" not in metadata


def test_wrong_keys_are_refused_and_other_routes_name_themselves(served) -> None:
    server, (public, secret), _ = served
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/api/public/projects", headers=basic(public, secret)).json()["data"][0]["id"] == PROJECT
        assert client.get("/api/public/projects", headers=basic(public, secret + "x")).status_code == 401
        assert client.get("/api/public/projects", headers=basic("pk-th-other", secret)).status_code == 401
        # An admin key is a Bearer key; Langfuse's routes take a key pair only.
        bearer = {"Authorization": f"Bearer {server.key}"}
        assert client.post("/api/public/otel/v1/traces", headers=bearer).status_code == 401
        # Bad input is a 4xx naming the problem, never a 5xx.
        assert client.get("/api/public/projects", headers={"Authorization": "Basic !!!"}).status_code == 401
        pair = basic(public, secret)
        for body in (b"not json", b"[1, 2]", b'[{"traceId": "t", "name": "x", "value": {"a": 1}}]'):
            answer = client.post("/api/public/scores", content=body, headers=pair)
            assert answer.status_code == 400 and answer.json()["detail"].startswith("scores:"), answer.text
        garbage = {**pair, "Content-Type": "application/x-protobuf"}
        answer = client.post("/api/public/otel/v1/traces", content=b"\xff\x00garbage", headers=garbage)
        assert answer.status_code == 400 and "protobuf" in answer.json()["detail"]
        for method, path in (("GET", "/api/public/traces"), ("POST", "/api/public/ingestion"),
                             ("GET", "/api/public/v2/prompts/greeting")):  # fmt: skip
            answer = client.request(method, path, headers=basic(public, secret))
            assert answer.status_code == 404
            assert f"{method} {path} is a Langfuse endpoint tracehive does not support" in answer.json()["detail"]


def test_a_pair_is_listed_by_its_public_key_and_revoked_at_once(served) -> None:
    server, _, _ = served
    public, secret = langfuse_pair(server, PROJECT)

    def keys(*args: str) -> str:
        command = [sys.executable, "-m", "tracehive", "keys", *args, "--data-dir", str(server.data_dir)]
        env = {**os.environ, "COLUMNS": "250"}  # a table wide enough to show the public key whole
        return subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout

    assert public in keys("list") and secret not in (server.data_dir / "keys.json").read_text()
    with httpx.Client(base_url=server.url, headers=basic(public, secret)) as client:
        assert client.get("/api/public/projects").status_code == 200
        keys("revoke", public)
        assert client.get("/api/public/projects").status_code == 401


def test_a_score_waits_for_its_trace_and_never_reaches_another_project(served) -> None:
    server, (public, secret), _ = served
    trace_id = "a1" * 16
    scores = [{"id": "s1", "traceId": trace_id, "name": "accuracy", "value": 1, "dataType": "BOOLEAN"},
              {"id": "s2", "sessionId": "elsewhere-1", "name": "stars", "value": 4},
              {"id": "s3", "traceId": trace_id, "observationId": "b2" * 8, "name": "tone", "value": "polite",
               "dataType": "CATEGORICAL", "comment": "kind"}]  # fmt: skip
    with httpx.Client(base_url=server.url, headers=basic(public, secret)) as client:
        answer = client.post("/api/public/scores", json=scores)
        assert (answer.status_code, answer.json()) == (202, {"message": "Accepted"})
        # The same trace id stored in another project by an admin gets nothing of the pair's score.
        span = {"traceId": trace_id, "spanId": "b2" * 8, "name": "step", "startTimeUnixNano": "1764690000000000000",
                "endTimeUnixNano": "1764690001000000000",
                "attributes": [{"key": "session.id", "value": {"stringValue": "later-session"}}]}  # fmt: skip
        other = {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "tracehive.project", "value": {"stringValue": "other"}}]},
                    "scopeSpans": [{"spans": [span]}],
                }
            ]
        }
        with server.client() as admin:
            assert admin.post("/v1/traces", json=other).status_code == 200
        assert server.get("/api/v1/sessions", project="other")["sessions"][0]["feedback"] == {}
        # The pair cannot write spans into another project either.
        assert client.post("/api/public/otel/v1/traces", json=other).status_code == 403
        # When the trace comes in the pair's own project, the waiting score lands on its session.
        own = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [span]}]}]}
        assert client.post("/api/public/otel/v1/traces", json=own).status_code == 200
        bad = client.post("/api/public/scores", json=[{"name": "x", "value": 1}, {"traceId": "t", "value": 1}])
        assert bad.status_code == 400 and "name" in bad.json()["detail"]
        partial = client.post("/api/public/scores", json=[{"name": "orphan", "value": 1}])
        assert partial.status_code == 207 and partial.json()["rejected"] == 1
    sessions = server.get("/api/v1/sessions", filter='session_id = "later-session"')["sessions"]
    expected = [("other", {}), (PROJECT, {"accuracy": True})]
    assert sorted((s["project"], s["feedback"]) for s in sessions) == expected
    # The observation's score is on its event, in the pair's project only.
    events = {p: server.get("/api/v1/sessions/later-session", project=p)["events"] for p in ("other", PROJECT)}
    assert [e["feedback"] for e in events["other"]] == [{}]
    assert [e["feedback"] for e in events[PROJECT]] == [{"tone": "polite", "tone_comment": "kind"}]
    assert server.get("/api/v1/sessions/elsewhere-1")["feedback"] == {"stars": 4.0}


def test_a_waiting_score_is_on_disk_until_its_trace_comes(tmp_path) -> None:
    """What the server acknowledged survives a restart: a new PendingScores reads the file back."""
    path = tmp_path / PENDING_FILE
    assert PendingScores(path).keep(PROJECT, [("c3" * 16, {"accuracy": 0.5}, None)]) == 1
    assert PendingScores(path).keep("other", [("c3" * 16, {"accuracy": 0.1}, None)]) == 1
    reopened = PendingScores(path)
    trace = Batch(events=[Event(PROJECT, "d4" * 8, "s-9", "c3" * 16, None, "chain", "step", 1, 2)])
    (update,), scored, applied = reopened.updates_for(Rows.of(trace))
    assert (update.project, update.session_id, update.namespaces["feedback"]) == (PROJECT, "s-9", {"accuracy": 0.5})
    assert scored == {}
    reopened.forget(applied)
    assert list(PendingScores(path).updates_for(Rows.of(trace))[0]) == []  # the other project's stays
    assert len(path.read_text().splitlines()) == 1
    # An observation's score waits for its own span, not only its trace's first, and keeps its id on disk.
    assert PendingScores(tmp_path / "events.jsonl").keep(PROJECT, [("e5" * 16, {"tone": "ok"}, "f6" * 8)]) == 1
    first = Batch(events=[Event(PROJECT, "a7" * 8, "s-3", "e5" * 16, None, "chain", "step", 1, 2)])
    assert PendingScores(tmp_path / "events.jsonl").updates_for(Rows.of(first)) == ([], {}, [])
    second = Batch(events=[Event(PROJECT, "f6" * 8, "s-3", "e5" * 16, None, "chain", "step", 1, 2)])
    _, scored, applied = PendingScores(tmp_path / "events.jsonl").updates_for(Rows.of(second))
    assert scored == {PROJECT: [("e5" * 16, "f6" * 8, {"tone": "ok"})]} and len(applied) == 1
    # A project that fills its share cannot crowd out another project's scores.
    full = PendingScores(tmp_path / "full.jsonl", limit=2)
    assert full.keep("a", [("t1", {"x": 1}, None), ("t2", {"x": 1}, None), ("t3", {"x": 1}, None)], now=1000.0) == 2
    assert full.keep("a", [("t4", {"x": 1}, None)], now=2000.0) == 0
    assert full.keep("b", [("t1", {"x": 1}, None)]) == 1
    # A day on, the scores whose traces never came make room.
    assert full.keep("a", [("t5", {"x": 1}, None)], now=1000.0 + MAX_WAIT_SECONDS + 1) == 1
    assert PendingScores(tmp_path / "full.jsonl").keep("a", [("t6", {"x": 1}, None)], now=3000.0) == 1
