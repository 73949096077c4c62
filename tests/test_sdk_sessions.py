"""One session per request: real servers (uvicorn), real processes, concurrent users, our tracehive server.

Every test checks, per user, that exactly one session holds exactly that user's events, nested as the
code called them, across asyncio tasks and worker threads.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from tests.conftest import Server, free_port
from tests.honeyhive_sdk import honeyhive_python, with_packages

TESTS = Path(__file__).parent
USERS = [f"user-{i:02d}" for i in range(30)]


def flatten(events: list[dict]) -> list[dict]:
    return [found for event in events for found in (event, *flatten(event["children"]))]


def event_name(event: dict) -> str:
    """HoneyHive's SDK names a function's event ``module.function``, ours ``function``."""
    return event["event_name"].removeprefix("session_app.")


def shape(event: dict) -> tuple:
    """An event tree by name, type, inputs and outputs, children in a stable order."""
    children = sorted(shape(child) for child in event["children"])
    return (event_name(event), event["event_type"], repr(event["inputs"]), repr(event["outputs"]), children)


def user_sessions(server: Server, project: str, users: list[str]) -> dict[str, dict]:
    """The one session of each of ``users`` in ``project``, with its events; no other user has one."""
    listed = server.get("/api/v1/sessions", project=project, limit=1000)["sessions"]
    ids: dict[str, list[str]] = {}
    for session in listed:
        user = session["user_properties"].get("user_id")
        if user is not None:
            ids.setdefault(user, []).append(session["session_id"])
    assert all(len(found) == 1 for found in ids.values()), ids
    assert set(ids) == set(users), sorted(ids)
    return {user: server.get(f"/api/v1/sessions/{found[0]}") for user, found in ids.items()}


def sdk_env(server: Server, project: str, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HH_", "HONEYHIVE_"))}
    return {**clean, "HH_API_KEY": server.key, "HH_API_URL": server.url, "HH_PROJECT": project, **extra}


@contextmanager
def uvicorn(python: Path | str, env: dict[str, str], app: str = "session_app:app") -> Iterator[str]:
    """``app`` served by uvicorn in its own process on a loopback port; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [str(python), "-m", "uvicorn", app, "--app-dir", str(TESTS), "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(process.stdout.read().decode(errors="replace"))
            try:
                httpx.get(url + "/docs", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _ask_all(url: str, users: list[str]) -> list[dict]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        answers = await asyncio.gather(*(client.get("/ask", params={"user": user}) for user in users))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
    return [a.json() for a in answers]


def serve_30_users(python: Path | str, server: Server, project: str, mode: str, **env: str) -> None:
    """30 concurrent clients, one user each; then the app flushes."""
    with uvicorn(python, sdk_env(server, project, SESSION_MODE=mode, **env)) as url:
        answers = asyncio.run(_ask_all(url, USERS))
        flushed = httpx.post(url + "/flush", timeout=60)
    assert flushed.json() == {"flushed": True}
    for user, answer in zip(USERS, answers, strict=True):
        assert answer["parts"][:2] == [f"{user}:1", f"{user}:2"]


def check_request_sessions(server: Server, project: str, executor: bool = True) -> dict[str, tuple]:
    """Each user: one session named after the request, holding that user's events only, nested."""
    shapes = {}
    found = user_sessions(server, project, USERS)
    for user in USERS:
        session = found[user]
        assert session["session_name"] == f"req-{user}"
        (root,) = session["events"]
        assert event_name(root) == "handle" and root["inputs"] == {"user": user}
        steps = sorted(root["children"], key=lambda e: e["inputs"].get("part", 3))
        assert [event_name(e) for e in steps] == ["step", "step"] + (["lookup"] if executor else [])
        for part, step in enumerate(steps[:2], 1):
            (helper,) = step["children"]
            assert (event_name(helper), helper["inputs"], helper["outputs"]) == (
                "lookup", {"user": user, "part": part}, {"result": f"{user}:{part}"},
            )  # fmt: skip
        events = flatten(session["events"])
        assert len(events) == (6 if executor else 5)
        assert {e["inputs"]["user"] for e in events} == {user}
        # Without the executor's part, which HoneyHive's SDK does not follow (see below).
        shared = {"result": root["outputs"]["result"][:2]}
        shapes[user] = shape({**root, "children": steps[:2], "outputs": shared})
    return shapes


def project_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def run_in_new_project(server: Server, prefix: str, program: str, **env: str) -> tuple[str, str]:
    """Run ``program`` with our SDK into a project of its own; (the project, the last word it printed)."""
    project = project_name(prefix)
    done = server.run_program(program, project=project, **env)
    assert done.returncode == 0, done.stderr
    return project, (done.stdout.split() or [""])[-1]


# with_session: see test_with_session_per_request_stores_what_honeyhive_sdk_stores.
@pytest.mark.parametrize("mode", ["create_session", "init"])
def test_fastapi_app_gives_each_concurrent_user_one_session(server: Server, mode: str) -> None:
    project = project_name(f"fastapi-{mode}")
    serve_30_users(sys.executable, server, project, mode, TRACE_SDK="tracehive")
    check_request_sessions(server, project)
    names = {s["session_name"] for s in server.get("/api/v1/sessions", project=project, limit=100)["sessions"]}
    assert names - {"app-start"} == {f"req-{user}" for user in USERS}


def test_with_session_per_request_stores_what_honeyhive_sdk_stores(server: Server) -> None:
    """Ours with ``with_session`` per request, and the real honeyhive 1.7.0 SDK on the same app and
    server. HoneyHive's does not carry its session into ``run_in_executor`` (that event lands in the
    app's start session), so it runs without that part and the rest is compared."""
    theirs, ours = project_name("fastapi-hh"), project_name("fastapi-th")
    serve_30_users(sys.executable, server, ours, "with_session", TRACE_SDK="tracehive")
    python = with_packages(honeyhive_python(), "fastapi", "uvicorn")
    serve_30_users(python, server, theirs, "with_session", TRACE_SDK="honeyhive", USE_EXECUTOR="0")
    assert check_request_sessions(server, ours) == check_request_sessions(server, theirs, executor=False)


TEN_THREADS = """
import threading
from tracehive import HoneyHiveTracer, enrich_session, flush, trace

@trace
def handler(i):
    return f"done {i}"

overlap = threading.Barrier(10)  # the ten requests are in flight together

def request(i):
    HoneyHiveTracer.init(session_name=f"req-{i}")
    overlap.wait()
    enrich_session(user_properties={"user_id": f"u{i}"})
    handler(i)

threads = [threading.Thread(target=request, args=(i,)) for i in range(10)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert flush()
"""


def test_ten_threads_each_calling_init_get_ten_sessions(server: Server) -> None:
    """Issue 11's first finding: all ten handlers landed in one session (one user's)."""
    project, _ = run_in_new_project(server, "threads", TEN_THREADS)
    found = user_sessions(server, project, [f"u{i}" for i in range(10)])
    for i in range(10):
        session = found[f"u{i}"]
        assert session["session_name"] == f"req-{i}"
        assert [(e["event_name"], e["inputs"]) for e in flatten(session["events"])] == [("handler", {"i": i})]


FIFTY_TASKS = """
import asyncio
from tracehive import HoneyHiveTracer, trace

tracer = HoneyHiveTracer.init(session_name="tasks")

@trace
async def leaf(user, n):
    await asyncio.sleep(0.001 * (n % 3))
    return f"{user}-{n}"

@trace
async def job(user):
    inner = [asyncio.create_task(leaf(user, n)) for n in range(3)]
    return await asyncio.gather(*inner)

async def task(i):
    with tracer.with_session(session_name=f"task-{i}", user_properties={"user_id": f"t{i}"}):
        await asyncio.sleep(0.001 * (i % 5))
        return await job(f"t{i}")

async def main():
    return await asyncio.gather(*(task(i) for i in range(50)))

asyncio.run(main())
# Outside every with_session block: the tracer's own session again.
asyncio.run(job("outside"))
assert tracer.flush()
print(tracer.session_id)
"""


def test_fifty_asyncio_tasks_each_in_its_own_session(server: Server) -> None:
    project, own_session = run_in_new_project(server, "tasks", FIFTY_TASKS)
    found = user_sessions(server, project, [f"t{i}" for i in range(50)])
    for i in range(50):
        session = found[f"t{i}"]
        (root,) = session["events"]
        assert (root["event_name"], root["inputs"]) == ("job", {"user": f"t{i}"})
        assert sorted(c["outputs"]["result"] for c in root["children"]) == [f"t{i}-{n}" for n in range(3)]
        assert len(flatten(session["events"])) == 4
    (own,) = server.get(f"/api/v1/sessions/{own_session}")["events"]
    assert own["inputs"] == {"user": "outside"}


SERVICE_A = """
import httpx, os
from tracehive import HoneyHiveTracer, trace

tracer = HoneyHiveTracer.init(session_name="service-a")
tracer.enrich_session(user_properties={"user_id": "a-user", "plan": "pro"})

@trace(event_type="chain")
def ask_b(question):
    headers = {}
    tracer.inject_context(headers)
    return httpx.get(os.environ["SERVICE_B"] + "/work", params={"q": question}, headers=headers).json()

print(ask_b("hello"))
assert tracer.flush()
print(tracer.session_id)
"""


def test_two_processes_continue_one_session_over_http(server: Server) -> None:
    project = project_name("cross")
    with uvicorn(sys.executable, sdk_env(server, project), app="service_b:app") as url_b:
        done = server.run_program(SERVICE_A, project=project, SERVICE_B=url_b)
        assert done.returncode == 0, done.stderr
        assert httpx.post(url_b + "/flush", timeout=60).json() == {"flushed": True}
    session = server.get(f"/api/v1/sessions/{done.stdout.split()[-1]}")
    assert session["user_properties"] == {"user_id": "a-user", "plan": "pro"}
    (root,) = session["events"]
    assert root["event_name"] == "ask_b"
    (handler,) = root["children"]
    assert (handler["event_name"], handler["inputs"]) == ("serve", {"q": "hello"})
    assert [c["event_name"] for c in handler["children"]] == ["compute"]
    # B's own session (from its init) holds nothing of A's request.
    b_sessions = server.get("/api/v1/sessions", project=project, filter='session_name = "service-b"')["sessions"]
    assert [s["event_count"] for s in b_sessions] == [0]


def test_misuse_never_raises_into_the_app() -> None:
    program = textwrap.dedent("""
        import asyncio, logging
        from tracehive import HoneyHiveTracer, enrich_session, flush, set_default_tracer, trace, trace_class
        logging.basicConfig(level=logging.WARNING)
        tracer = HoneyHiveTracer.init(server_url="http://127.0.0.1:9", test_mode=True)
        set_default_tracer("not a tracer")
        with tracer.with_session(session_name=42, user_properties="bad") as sid:
            assert isinstance(sid, str)
        assert tracer.create_session(session_id=7) is not None
        tracer.unlink(None); tracer.unlink("unknown")
        assert tracer.link({"traceparent": "garbage"}) != ""
        assert tracer.extract_context(None) is None
        tracer.inject_context(None)
        enrich_session(session_id=5, metadata="x")
        assert tracer.create_event({"event_name": "e", "duration": "long"}) is not None
        with tracer.start_span(None) as span:
            pass
        @trace_class
        class C:
            def go(self, x):
                return x * 2
        assert C().go(2) == 4
        assert trace_class(3) == 3
        assert flush(timeout_millis="soon") in (True, False)
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert "set_default_tracer expects a HoneyHiveTracer" in done.stderr


def test_web_server_example_has_a_session_per_request(server: Server) -> None:
    project = project_name("example")
    with uvicorn(sys.executable, sdk_env(server, project), app="tracehive.examples.web_server:app") as url:

        async def chat_all() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                return await asyncio.gather(
                    *(client.get("/chat", params={"user_id": f"ex{i}", "message": f"hello {i}"}) for i in range(3))
                )

        replies = asyncio.run(chat_all())
        assert [r.status_code for r in replies] == [200, 200, 200]
        # The example has no flush route: it flushes when uvicorn shuts it down.
    found = user_sessions(server, project, [f"ex{i}" for i in range(3)])
    for i in range(3):
        session = found[f"ex{i}"]
        assert session["inputs"] == {"message": f"hello {i}"}
        assert session["outputs"] == {"reply": f"answer to 'hello {i}' from 2 documents"}
        (root,) = session["events"]
        assert root["event_name"] == "answer"
        assert sorted(c["event_name"] for c in root["children"]) == ["generate", "search_documents"]


CREATE_EVENT = """
from {sdk} import HoneyHiveTracer

tracer = HoneyHiveTracer.init(session_name="events")
tracer.enrich_session(user_properties={{"user_id": "ev-user"}})
tracer.create_event("lookup", event_type="tool", inputs={{"q": 1}}, outputs={{"a": 2}}, metadata={{"k": True}},
                    duration=250)
assert tracer.force_flush()
"""


def test_create_event_from_both_sdks_is_stored_alike(server: Server, tmp_path: Path) -> None:
    """HoneyHive's SDK posts the event over REST (``POST /events``); ours sends it as a span. (Inside
    ``with_session`` HoneyHive's puts it in the tracer's own session, ours in the current one.)"""
    theirs, ours = project_name("event-hh"), project_name("event-th")
    python = honeyhive_python()
    done = subprocess.run([str(python), "-c", CREATE_EVENT.format(sdk="honeyhive")], env=sdk_env(server, theirs),
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    done = server.run_program(CREATE_EVENT.format(sdk="tracehive"), project=ours)
    assert done.returncode == 0, done.stderr
    stored = []
    for project in (theirs, ours):
        (event,) = user_sessions(server, project, ["ev-user"])["ev-user"]["events"]
        stored.append((event["event_name"], event["event_type"], event["inputs"], event["outputs"],
                       event["metadata"], round(event["duration_ms"])))  # fmt: skip
    assert stored[0] == stored[1] == ("lookup", "tool", {"q": 1}, {"a": 2}, {"k": True}, 250)


def test_verbose_shows_the_sdk_debug_lines() -> None:
    program = "from tracehive import HoneyHiveTracer; HoneyHiveTracer.init(test_mode=True, {}disable_batch=True)"
    quiet, verbose = (
        subprocess.run([sys.executable, "-c", program.format(flag)], capture_output=True, text=True, timeout=60)
        for flag in ("", "verbose=True, ")
    )
    assert quiet.stderr == ""
    assert "init ignores unsupported arguments ['disable_batch']" in verbose.stderr
