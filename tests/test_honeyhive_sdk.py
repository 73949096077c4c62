"""The real HoneyHive SDK (PyPI ``honeyhive``) against a real tracehive server, unchanged: only
``HH_API_KEY``, ``HH_PROJECT`` and ``HH_API_URL`` point it at us."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from tests.honeyhive_sdk import Run, honeyhive_python, run_program

OUR_IMPORT = "from tracehive import HoneyHiveTracer, trace"
THEIR_IMPORT = "from honeyhive import HoneyHiveTracer, trace"


@pytest.fixture(scope="module")
def hh_python() -> Path:
    return honeyhive_python()


def typed(value) -> str:
    """JSON with sorted keys: equal only if the values and their types are (True is not 1)."""
    return json.dumps(value, sort_keys=True)


def project_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def run(server, python: Path, tmp_path: Path, source: str, project: str | None, key: str | None = None, **env) -> Run:
    settings = {"HH_API_KEY": key or server.key, "HH_API_URL": server.url, **env}
    if project is not None:
        settings["HH_PROJECT"] = project
    done = run_program(python, source, settings, tmp_path, name=env.pop("name", "program"))
    assert done.problems == [], done.problems
    return done


def only_session(server, project: str) -> dict:
    (found,) = server.get("/api/v1/sessions", project=project)["sessions"]
    return server.get(f"/api/v1/sessions/{found['session_id']}")


def tree(events: list[dict]) -> list:
    """The event tree as (name, type, user_properties, inputs, outputs, error, children)."""
    return [
        (e["event_name"], e["event_type"], typed(e["user_properties"]), typed(e["inputs"]), typed(e["outputs"]),
         e["error"], tree(e["children"]))
        for e in events
    ]  # fmt: skip


def test_seed_program_gives_the_same_data_as_our_sdk(server, hh_python, tmp_path):
    # Read the program without importing it: importing would run it in this process.
    source = Path(importlib.util.find_spec("tracehive.examples.seed").origin).read_text()
    assert OUR_IMPORT in source
    theirs, ours = project_name("seed-hh"), project_name("seed-th")
    (tmp_path / "hh").mkdir()
    (tmp_path / "th").mkdir()
    run(server, hh_python, tmp_path / "hh", source.replace(OUR_IMPORT, THEIR_IMPORT), theirs, name="seed")
    run(server, Path(sys.executable), tmp_path / "th", source, ours, name="seed")

    hh, th = only_session(server, theirs), only_session(server, ours)
    assert hh["user_properties"] == {"user_id": "user_12345", "email": "user@example.com", "plan": "premium",
                                     "is_beta": True}  # fmt: skip
    assert typed(hh["user_properties"]) == typed(th["user_properties"])
    assert hh["metadata"] == th["metadata"] == {}
    assert (hh["session_name"], hh["source"]) == (th["session_name"], th["source"]) == ("seed", "dev")
    assert tree(hh["events"]) == tree(th["events"])
    (event,) = hh["events"]
    assert event["event_name"] == "process_request"
    assert event["user_properties"] == {"user_id": "user_12345", "last_action": "search"}
    assert hh["event_count"] == th["event_count"] == 1


FEATURES = """
    import asyncio, os
    from honeyhive import HoneyHiveTracer, trace

    tracer = HoneyHiveTracer.init(session_name="features", source="test")
    tracer.enrich_session(user_properties={"user_id": "u1", "plan": "free", "prefs": {"theme": "dark"}})
    tracer.enrich_session(user_properties={"plan": "pro", "prefs": {"lang": "en"}}, metadata={"env": "prod"})
    tracer.enrich_session(inputs={"q": "hi"}, outputs={"a": "yo"}, metrics={"tokens": 150},
                          feedback={"rating": 5, "helpful": True}, config={"model": "gpt-4o"})

    @trace(event_type="model", event_name="llm-call", metadata={"static": 1})
    def llm(prompt):
        tracer.enrich_span(
            inputs={"extra": [1, 2]},
            user_properties={"prefs": {"theme": "dark", "langs": ["en", "fr"]}, "score": 1.5, "objs": [{"k": 1}],
                             "ok": True, "gone": None},
            metadata={"deep": {"a": {"b": 2}}, "tags": ["x", "y"], "prompt_tokens": 40, "completion_tokens": 8,
                      "cost": 0.00025},
            metrics={"latency_ms": 12.5, "tokens": 7},
            feedback={"thumbs": False},
            config={"temperature": 0.2, "stop": ["END"]},
        )
        return {"answer": prompt.upper(), "list": [1, 2]}

    @trace
    def tool(q):
        return len(q)

    @trace(event_type="chain")
    def pipeline(question):
        return {"llm": llm(question)["answer"], "tool": tool(question)}

    @trace
    async def fetch(n):
        await asyncio.sleep(0)
        return n * 2

    @trace
    def fail():
        raise ValueError("bad thing")

    pipeline("hello")
    asyncio.run(fetch(21))
    try:
        fail()
    except ValueError:
        pass
    print(tracer.session_id)
"""


@pytest.fixture(scope="module")
def features(server, hh_python, tmp_path_factory) -> dict:
    project = project_name("features")
    done = run(server, hh_python, tmp_path_factory.mktemp("features"), FEATURES, project)
    session = only_session(server, project)
    assert done.printed[-1] == session["session_id"]
    return session


def test_enrich_session_merges_every_namespace(features):
    assert (features["session_name"], features["source"]) == ("features", "test")
    assert typed(features["user_properties"]) == typed({"user_id": "u1", "plan": "pro",
                                                        "prefs": {"theme": "dark", "lang": "en"}})  # fmt: skip
    # The SDK sends session inputs as metadata.inputs; they land in inputs.
    assert features["metadata"] == {"env": "prod"}
    assert features["inputs"] == {"q": "hi"}
    assert features["outputs"] == {"a": "yo"}
    assert typed(features["metrics"]) == typed({"tokens": 150})
    assert typed(features["feedback"]) == typed({"rating": 5, "helpful": True})
    assert features["config"] == {"model": "gpt-4o"}


def test_nested_async_and_failing_calls_make_the_event_tree(features):
    shape = [(e["event_name"], e["event_type"], e["error"], [c["event_name"] for c in e["children"]])
             for e in features["events"]]  # fmt: skip
    assert shape == [
        ("pipeline", "chain", None, ["llm-call", "tool"]),
        ("fetch", "tool", None, []),
        ("fail", "tool", "ValueError: bad thing", []),
    ]
    assert (features["event_count"], features["error_count"]) == (5, 1)
    fetch = features["events"][1]
    assert typed((fetch["inputs"], fetch["outputs"])) == typed(({"n": 21}, {"result": 42}))


def test_its_model_event_rolls_up_into_the_session(features):
    usage = [features[name] for name in ("model_calls", "prompt_tokens", "completion_tokens", "total_tokens", "cost")]
    assert usage == [1, 40, 8, 48, 0.00025]


def test_enrich_span_keeps_nested_objects_lists_and_types(features):
    llm = features["events"][0]["children"][0]
    assert typed(llm["user_properties"]) == typed(
        {"prefs": {"theme": "dark", "langs": ["en", "fr"]}, "score": 1.5, "objs": [{"k": 1}], "ok": True}
    )
    # No copies of the event type and name in metadata.
    # total_tokens is added by the server to a model event that has prompt and completion tokens.
    assert typed(llm["metadata"]) == typed({"static": 1, "deep": {"a": {"b": 2}}, "tags": ["x", "y"],
                                            "prompt_tokens": 40, "completion_tokens": 8, "total_tokens": 48,
                                            "cost": 0.00025})  # fmt: skip
    assert typed(llm["metrics"]) == typed({"latency_ms": 12.5, "tokens": 7})
    assert typed(llm["feedback"]) == typed({"thumbs": False})
    assert typed(llm["config"]) == typed({"temperature": 0.2, "stop": ["END"]})
    assert typed(llm["inputs"]) == typed({"prompt": "hello", "extra": [1, 2]})
    assert typed(llm["outputs"]) == typed({"result": {"answer": "HELLO", "list": [1, 2]}})


READ_BACK = """
    import json, os
    from honeyhive import HoneyHive
    from honeyhive.models import EventFilter

    client = HoneyHive(api_key=os.environ["HH_API_KEY"], server_url=os.environ["HH_API_URL"])
    session = EventFilter(field="session_id", operator="is", value="{session_id}", type="string")
    found = {{}}
    everything = client.events.export(filters=[session])
    found["all"] = [everything.total_events, sorted(e.event_name for e in everything.events)]
    models = client.events.export(filters=[session, EventFilter(field="event_type", operator="is", value="model")])
    found["model"] = [e.event_name for e in models.events]
    slow = client.events.export(
        filters=[session, EventFilter(field="metrics.latency_ms", operator="greater than", value="10", type="number")])
    found["slow"] = [e.event_name for e in slow.events]
    page = client.events.export(filters=[session], limit=2, page=3)
    found["page3"] = [page.total_events, len(page.events)]
    print(json.dumps(found))
"""


def test_the_sdk_client_reads_events_back(server, hh_python, tmp_path, features):
    done = run(server, hh_python, tmp_path, READ_BACK.format(session_id=features["session_id"]), None)
    found = json.loads(done.printed[-1])
    assert found == {
        "all": [5, ["fail", "fetch", "llm-call", "pipeline", "tool"]],
        "model": ["llm-call"],
        "slow": ["llm-call"],
        "page3": [5, 1],
    }


TWO_TRACERS = """
    from honeyhive import HoneyHiveTracer, trace

    one = HoneyHiveTracer.init(session_name="one")
    two = HoneyHiveTracer.init(session_name="two")
    one.enrich_session(user_properties={"user_id": "u1"})
    two.enrich_session(user_properties={"user_id": "u2"})

    @trace(tracer=one)
    def first():
        return 1

    @trace(tracer=two)
    def second():
        return 2

    first()
    second()
    print(one.session_id, two.session_id)
"""


def test_two_tracers_keep_their_sessions_apart(server, hh_python, tmp_path):
    project = project_name("two")
    done = run(server, hh_python, tmp_path, TWO_TRACERS, project)
    ids = done.printed[-1].split()
    assert len(set(ids)) == 2
    for session_id, name, user, event in zip(ids, ("one", "two"), ("u1", "u2"), ("first", "second"), strict=True):
        session = server.get(f"/api/v1/sessions/{session_id}")
        assert (session["project"], session["session_name"]) == (project, name)
        assert session["user_properties"] == {"user_id": user}
        assert [e["event_name"] for e in session["events"]] == [event]


SMALL = """
    from honeyhive import HoneyHiveTracer, trace

    tracer = HoneyHiveTracer.init()
    tracer.enrich_session(user_properties={"user_id": "u9"})

    @trace
    def step(x):
        return x + 1

    step(1)
"""


def test_project_key_decides_the_project_over_protobuf(server, hh_python, tmp_path):
    project = project_name("keyed")
    made = subprocess.run(
        [sys.executable, "-m", "tracehive", "keys", "create", "--project", project, "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    key = made.stdout.strip().splitlines()[-1]
    run(server, hh_python, tmp_path, SMALL, None, key=key, HH_OTLP_PROTOCOL="http/protobuf")
    session = only_session(server, project)
    assert session["user_properties"] == {"user_id": "u9"}
    assert [(e["event_name"], e["inputs"], e["outputs"]) for e in session["events"]] == [
        ("step", {"x": 1}, {"result": 2})
    ]


def test_problems_the_sdk_logs_are_seen(server, hh_python, tmp_path):
    """The check that the SDK logs nothing against us can fail: a wrong key makes it complain."""
    done = run_program(hh_python, SMALL, {"HH_API_KEY": "th-wrong", "HH_API_URL": server.url}, tmp_path)
    messages = " ".join(p["message"] for p in done.problems)
    assert "Session creation failed" in messages and "401" in messages
