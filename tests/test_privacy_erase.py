"""Erasing a user on a real server, on DuckDB and on ClickHouse (chDB): afterwards no filter, users
view, export or byte scan of the data folder finds them, every other user is as before, and the
audit log has the erase (without the user's data). A server killed with -9 during an erase
finishes it when it starts again, before it answers anyone."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest
from tests.conftest import ADMIN_KEY, files_holding, start_server, start_server_on
from tests.otlp_payloads import json_request, new_span_id, new_trace_id

from tracehive.client import Client


def send_user(server, project: str, user_id: str, marker: str, sessions: int = 3) -> None:
    """``sessions`` sessions of two events each for one user; ``marker`` is in their email and inputs."""
    spans = []
    for _ in range(sessions):
        trace = new_trace_id()
        profile = json.dumps({"user_id": user_id, "email": f"{marker}@example.com", "plan": "pro"})
        spans.append(
            {
                "trace_id": trace,
                "span_id": new_span_id(),
                "attributes": {
                    "tracehive.record": "session",
                    "tracehive.session_id": trace,
                    "tracehive.user_properties": profile,
                },
            }
        )
        for step in range(2):
            spans.append(
                {
                    "trace_id": trace,
                    "span_id": new_span_id(),
                    "name": f"step{step}",
                    "attributes": {
                        "tracehive.session_id": trace,
                        "tracehive.inputs": json.dumps({"q": f"asked by {marker}"}),
                    },
                }
            )
    with server.client() as client:
        answer = client.post("/v1/traces", json=json_request(spans, {"tracehive.project": project}))
    assert answer.status_code == 200, answer.text


def snapshot(server, project: str, user_id: str) -> dict:
    """What the API shows of one user."""
    sessions = server.get("/api/v1/sessions", project=project, filter=f'user_properties.user_id = "{user_id}"')
    full = [server.get(f"/api/v1/sessions/{s['session_id']}") for s in sessions["sessions"]]
    users = [u for u in server.get("/api/v1/users", project=project)["users"] if u["user_id"] == user_id]
    return {"sessions": sorted(full, key=lambda s: s["session_id"]), "users": users}


@pytest.fixture(scope="module", params=["duckdb", "clickhouse"])
def served(request, tmp_path_factory):
    server = start_server_on(request.param, tmp_path_factory.mktemp(f"erase-{request.param}"), "--ingest-workers", "0")
    yield server
    server.stop()


def test_erase_leaves_nothing_of_the_user_and_everyone_else_intact(served):
    project = f"e-{uuid.uuid4().hex[:8]}"
    gone, kept = f"gone-{uuid.uuid4().hex[:6]}", f"kept-{uuid.uuid4().hex[:6]}"
    gone_marker, kept_marker = f"gm{uuid.uuid4().hex}", f"km{uuid.uuid4().hex}"
    send_user(served, project, gone, gone_marker)
    send_user(served, project, kept, kept_marker)
    before = snapshot(served, project, kept)
    assert len(before["sessions"]) == 3 and len(snapshot(served, project, gone)["sessions"]) == 3
    done = subprocess.run(
        [sys.executable, "-m", "tracehive", "users", "erase", "--project", project, "--user-id", gone],
        env={**os.environ, "TRACEHIVE_URL": served.url, "TRACEHIVE_API_KEY": served.key},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "erased 3 sessions and 6 events" in done.stderr
    assert snapshot(served, project, gone) == {"sessions": [], "users": []}
    with Client(served.url, served.key) as client:
        assert list(client.events(project=project, filter=f'user_properties.user_id = "{gone}"')) == []
        assert {row["user_id"] for row in client.events(project=project)} == {kept}
    assert snapshot(served, project, kept) == before
    assert files_holding(served.data_dir, gone_marker.encode()) == []
    assert files_holding(served.data_dir, kept_marker.encode()), "the scan sees data that is there"
    (entry,) = [e for e in served.get("/api/v1/audit", project=project)["entries"] if e["action"] == "erase_user"]
    assert (entry["sessions"], entry["events"], entry["who"], entry["scrubbed"]) == (
        3,
        6,
        "admin (from --api-key)",
        True,
    )
    assert gone not in json.dumps(entry) and gone.encode() not in (served.data_dir / "audit.jsonl").read_bytes()


def test_erase_needs_the_projects_key(served):
    with httpx.Client(base_url=served.url, headers={"Authorization": "Bearer nope"}) as client:
        assert client.post("/api/v1/projects/p/erase", json={"user_id": "x"}).status_code == 401
    with served.client() as client:
        bad = client.post("/api/v1/projects/p/erase", json={"user_id": ""})
    assert bad.status_code == 400 and "user_id" in bad.json()["detail"]


@pytest.mark.parametrize("backend", ["duckdb", "clickhouse"])
def test_kill_9_during_an_erase_is_finished_on_restart(tmp_path, backend):
    server = start_server_on(backend, tmp_path, "--ingest-workers", "0")
    project, gone, kept = "k9", "victim", "bystander"
    marker = f"vm{uuid.uuid4().hex}"
    try:
        for _ in range(10):  # enough data that the erase's file rewrite takes a moment
            send_user(server, project, gone, marker, sessions=10)
        send_user(server, project, kept, "keep" + uuid.uuid4().hex)
        kept_before = snapshot(server, project, kept)
        journal = tmp_path / "erase-journal"
        eraser = threading.Thread(target=_erase_quietly, args=(server.url, project, gone), daemon=True)
        eraser.start()
        deadline = time.monotonic() + 30
        while not (journal.is_dir() and any(journal.glob("*.json"))) and time.monotonic() < deadline:
            time.sleep(0.002)
        assert any(journal.glob("*.json")), "the erase was journalled before it began"
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
    finally:
        server.stop()
    restarted = start_server_on(backend, tmp_path, "--ingest-workers", "0")
    try:
        assert snapshot(restarted, project, gone) == {"sessions": [], "users": []}
        assert snapshot(restarted, project, kept) == kept_before
        assert list(journal.iterdir()) == []
        assert files_holding(tmp_path, marker.encode()) == []
        entries = restarted.get("/api/v1/audit", project=project)["entries"]
        assert any(e["action"] == "erase_user" and e["redone"] for e in entries)
    finally:
        restarted.stop()


_ERASE_CUT_SHORT = """
import os, sys
from pathlib import Path
import orjson
from tracehive.server.erase import user_filter
from tracehive.store import open_store

data_dir, project, user_id, word, nth = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
store = open_store(f"chdb://{data_dir / 'chdb'}?database=served", data_dir)
journal = data_dir / "erase-journal"
journal.mkdir()
(journal / "cut.json").write_bytes(orjson.dumps({"id": "cut", "project": project, "user_id": user_id, "who": "a"}))
command, seen = store._client.command, []

def command_then_die(sql, *args, **kwargs):  # the process dies right after the nth statement with word
    done = command(sql, *args, **kwargs)
    seen.extend([sql] if word in sql else [])
    if len(seen) == nth:
        os._exit(9)
    return done

store._client.command = command_then_die
store.delete_sessions(project, user_filter(user_id), events_where=user_filter(user_id))
store.reclaim(scrub=True)
"""


@pytest.mark.parametrize("word,nth", [("DELETE", 1), ("DELETE", 2), ("TRUNCATE", 1), ("TRUNCATE", 3)])
def test_chdb_erase_cut_short_at_each_step_is_redone_whole(tmp_path, word, nth):
    """An erase on chDB killed right after each of its steps (the delete mutations; a scrub's
    truncate, after which the clean parts are only in the scratch table) is redone on restart: the
    user is gone from every view and from disk, and nobody else lost anything."""
    server = start_server_on("clickhouse", tmp_path, "--ingest-workers", "0")
    project, gone, kept, marker = "cut", "victim", "bystander", "v" + uuid.uuid4().hex
    try:
        send_user(server, project, gone, marker)
        send_user(server, project, kept, "k" + uuid.uuid4().hex)
        kept_before = snapshot(server, project, kept)
    finally:
        server.stop()
    cut = subprocess.run([sys.executable, "-c", _ERASE_CUT_SHORT, str(tmp_path), project, gone, word, str(nth)],
                         timeout=120)  # fmt: skip
    assert cut.returncode == 9, "the erase was cut short where the test meant"
    restarted = start_server_on("clickhouse", tmp_path, "--ingest-workers", "0")
    try:
        assert snapshot(restarted, project, kept) == kept_before
        assert snapshot(restarted, project, gone) == {"sessions": [], "users": []}
        with Client(restarted.url, restarted.key) as client:
            assert {row["user_id"] for row in client.events(project=project)} == {kept}
        assert list((tmp_path / "erase-journal").iterdir()) == []
        assert files_holding(tmp_path, marker.encode()) == []
    finally:
        restarted.stop()


def _erase_quietly(url: str, project: str, user_id: str) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the server is killed under it
        httpx.post(
            f"{url}/api/v1/projects/{project}/erase",
            json={"user_id": user_id},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=60,
        )


def test_an_erase_journal_entry_cut_short_is_dropped_at_start(tmp_path):
    journal = tmp_path / "erase-journal"
    journal.mkdir()
    (journal / "cut.json").write_bytes(b'{"id": "cut", "proj')  # a damaged entry
    (journal / "cut.partial").write_bytes(b"{")  # killed before the entry was whole
    server = start_server(tmp_path, "--ingest-workers", "0")
    try:
        assert list(journal.iterdir()) == []
        assert server.get("/api/v1/health")["status"] == "ok"
    finally:
        server.stop()


def test_chdb_erase_cut_short_inside_a_bystanders_recount_is_redone_whole(tmp_path):
    """The victim's event sits in the bystander's session, so the erase first counts that session
    again without it. Killed right after the recount deleted the session's aggregate rows (the first
    DELETE), the restart redoes it: the bystander still has every session, the one that held the
    victim's event counts one event less, and nothing of the victim is on disk."""
    server = start_server_on("clickhouse", tmp_path, "--ingest-workers", "0")
    project, gone, kept, marker = "cut", "victim", "bystander", "v" + uuid.uuid4().hex
    try:
        send_user(server, project, kept, "k" + uuid.uuid4().hex)
        before = {s["session_id"]: s["event_count"] for s in snapshot(server, project, kept)["sessions"]}
        shared = sorted(before)[0]
        span = {
            "trace_id": shared,
            "span_id": new_span_id(),
            "name": "asked for the victim",
            "attributes": {
                "tracehive.session_id": shared,
                "tracehive.user_properties": json.dumps({"user_id": gone}),
                "tracehive.inputs": json.dumps({"q": f"asked by {marker}"}),
            },
        }
        with server.client() as client:
            answer = client.post("/v1/traces", json=json_request([span], {"tracehive.project": project}))
        assert answer.status_code == 200, answer.text
        assert server.get(f"/api/v1/sessions/{shared}")["event_count"] == before[shared] + 1
    finally:
        server.stop()
    cut = subprocess.run([sys.executable, "-c", _ERASE_CUT_SHORT, str(tmp_path), project, gone, "DELETE", "1"],
                         timeout=120)  # fmt: skip
    assert cut.returncode == 9, "the erase was cut short where the test meant"
    restarted = start_server_on("clickhouse", tmp_path, "--ingest-workers", "0")
    try:
        after = {s["session_id"]: s["event_count"] for s in snapshot(restarted, project, kept)["sessions"]}
        assert after == before
        assert list((tmp_path / "erase-journal").iterdir()) == []
        assert files_holding(tmp_path, marker.encode()) == []
    finally:
        restarted.stop()
