"""The core promise, end to end: programs using our SDK, a real server process, the query API."""

from __future__ import annotations

import textwrap
import uuid

import httpx

SEED_USER = {"user_id": "user_12345", "email": "user@example.com", "plan": "premium", "is_beta": True}


def run(server, source: str, project: str) -> str:
    """Run a program; it prints its session id last."""
    done = server.run_program(textwrap.dedent(source), project=project)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout.strip().splitlines()[-1]


def sessions(server, project: str, filter_text: str) -> list[dict]:
    return server.get("/api/v1/sessions", project=project, filter=filter_text)["sessions"]


def test_seed_example_is_found_by_user_property(server):
    project = f"seed-{uuid.uuid4().hex[:8]}"
    done = server.run_program("import runpy; runpy.run_module('tracehive.examples.seed', run_name='__main__')",
                              project=project)  # fmt: skip
    assert done.returncode == 0, done.stderr

    (found,) = sessions(server, project, 'user_properties.user_id = "user_12345"')
    assert found["user_properties"] == SEED_USER
    assert found["user_properties"]["is_beta"] is True
    assert "user_id" not in found["metadata"] and "email" not in found["metadata"]

    session = server.get(f"/api/v1/sessions/{found['session_id']}")
    (event,) = session["events"]
    assert event["event_name"] == "process_request"
    assert event["user_properties"] == {"user_id": "user_12345", "last_action": "search"}
    assert event["inputs"] == {"query": "best hiking boots", "user_id": "user_12345"}

    assert len(sessions(server, project, 'user_properties.plan = "premium"')) == 1
    assert sessions(server, project, "user_properties.is_beta = false") == []
    assert sessions(server, project, 'user_properties.is_beta = "true"') == []


TYPES = {
    "s": "text",
    "i": 25,
    "f": 1.5,
    "whole_float": 2.0,
    "t": True,
    "b": False,
    "n": None,
    "list": ["a", 1, None, {"k": [True]}],
    "nested": {"preferences": {"theme": "dark"}, "deep": {"er": {"est": 3}}},
    "unicode": "héllo ✓ 日本",
}


def test_every_value_type_round_trips_through_session_and_span(server):
    session_id = run(server, f"""
        from tracehive import HoneyHiveTracer, trace
        tracer = HoneyHiveTracer.init()
        values = {TYPES!r}
        tracer.enrich_session(user_properties=values, metadata={{"same": values}})

        @trace
        def step():
            tracer.enrich_span(user_properties=values, metrics={{"score": 0.25}}, feedback={{"ok": True}},
                               config={{"model": "m"}})
            return values

        step()
        tracer.flush()
        print(tracer.session_id)
    """, "types")  # fmt: skip
    session = server.get(f"/api/v1/sessions/{session_id}")
    assert session["user_properties"] == TYPES
    assert session["metadata"] == {"same": TYPES}
    assert isinstance(session["user_properties"]["whole_float"], float)
    (event,) = session["events"]
    assert event["user_properties"] == TYPES
    assert event["outputs"] == {"result": TYPES}
    assert (event["metrics"], event["feedback"], event["config"]) == ({"score": 0.25}, {"ok": True}, {"model": "m"})


def test_nested_async_and_errors_form_the_tree(server):
    session_id = run(server, """
        import asyncio
        from tracehive import HoneyHiveTracer, trace
        tracer = HoneyHiveTracer.init(session_name="tree")

        @trace(event_type="tool")
        async def fetch(n):
            await asyncio.sleep(0.01)
            return n * 2

        @trace(event_type="chain", event_name="pipeline")
        async def pipeline():
            return await asyncio.gather(fetch(1), fetch(2))

        @trace(event_type="model")
        def failing():
            raise ValueError("bad thing")

        @trace
        def main():
            asyncio.run(pipeline())
            try:
                failing()
            except ValueError as exc:
                assert str(exc) == "bad thing"

        main()
        tracer.flush()
        print(tracer.session_id)
    """, "tree")  # fmt: skip
    session = server.get(f"/api/v1/sessions/{session_id}")
    assert session["session_name"] == "tree"
    assert session["event_count"] == 5 and session["error_count"] == 1
    (main,) = session["events"]
    pipeline, failing = main["children"]
    assert (pipeline["event_name"], pipeline["event_type"]) == ("pipeline", "chain")
    assert sorted(c["outputs"]["result"] for c in pipeline["children"]) == [2, 4]
    assert all(c["event_type"] == "tool" for c in pipeline["children"])
    assert failing["error"] == "ValueError: bad thing"
    assert failing["event_type"] == "model"


def test_enrich_session_before_and_after_spans_and_across_batches(server):
    session_id = run(server, """
        from tracehive import HoneyHiveTracer, trace, enrich_session
        tracer = HoneyHiveTracer.init()
        tracer.enrich_session(metadata={"flags": {"a": 1}}, user_properties={"user_id": "u-merge"})
        tracer.flush()

        @trace
        def work():
            return "ok"

        work()
        tracer.flush()
        enrich_session(metadata={"flags": {"b": 2}}, user_properties={"plan": "free"})
        tracer.flush()
        tracer.enrich_session(user_properties={"plan": "pro"}, metrics={"cost": 0.1})
        print(tracer.session_id)
    """, "merge")  # fmt: skip
    session = server.get(f"/api/v1/sessions/{session_id}")
    assert session["metadata"] == {"flags": {"a": 1, "b": 2}}
    assert session["user_properties"] == {"user_id": "u-merge", "plan": "pro"}
    assert session["metrics"] == {"cost": 0.1}
    assert session["event_count"] == 1


def test_users_view_and_paging(server):
    project = f"users-{uuid.uuid4().hex[:8]}"
    run(server, """
        from tracehive import HoneyHiveTracer, trace
        for i in range(5):
            tracer = HoneyHiveTracer.init(session_name=f"s{i}")
            tracer.enrich_session(user_properties={"user_id": f"user-{i % 2}", "plan": "pro" if i % 2 else "free"})
        tracer.flush()
        print(tracer.session_id)
    """, project)  # fmt: skip
    users = {u["user_id"]: u for u in server.get("/api/v1/users", project=project)["users"]}
    assert set(users) == {"user-0", "user-1"}
    assert users["user-0"]["session_count"] == 3 and users["user-1"]["session_count"] == 2
    assert users["user-1"]["user_properties"] == {"user_id": "user-1", "plan": "pro"}

    seen, cursor = [], None
    while True:
        page = server.get("/api/v1/sessions", project=project, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [s["session_name"] for s in page["sessions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"s{i}" for i in range(5)]


def test_query_errors_are_400_naming_the_problem(server):
    with server.client() as client:
        bad_syntax = client.get("/api/v1/sessions", params={"filter": "user_properties.plan = "})
        unknown = client.get("/api/v1/sessions", params={"filter": 'nope.x = "1"'})
        bad_time = client.get("/api/v1/sessions", params={"from": "yesterday"})
        bad_limit = client.get("/api/v1/sessions", params={"limit": 0})
        bad_cursor = client.get("/api/v1/sessions", params={"cursor": "%%%"})
        missing = client.get("/api/v1/sessions/does-not-exist")
    assert bad_syntax.status_code == 400 and "position" in bad_syntax.json()["detail"]
    assert unknown.status_code == 400 and "nope" in unknown.json()["detail"]
    assert bad_time.status_code == 400 and "from" in bad_time.json()["detail"]
    assert bad_limit.status_code == 400 and "limit" in bad_limit.json()["detail"]
    assert bad_cursor.status_code == 400 and "cursor" in bad_cursor.json()["detail"]
    assert missing.status_code == 404


def test_openapi_spec_lists_the_query_api(server):
    spec = httpx.get(f"{server.url}/openapi.json").json()
    for path in ("/api/v1/sessions", "/api/v1/sessions/{session_id}", "/api/v1/events/{event_id}",
                 "/api/v1/users", "/api/v1/health", "/v1/traces"):  # fmt: skip
        assert path in spec["paths"], path
