"""A real server process on the ClickHouse store (chDB in the server's process), chosen through
TRACEHIVE_STORE: the seed example goes in over OTLP and comes back through the query API."""

from __future__ import annotations

import subprocess
import sys
import uuid

from tests.conftest import start_server
from tests.otlp_payloads import json_request, new_span_id, new_trace_id

SEED_USER = {"user_id": "user_12345", "email": "user@example.com", "plan": "premium", "is_beta": True}


def test_seed_example_through_a_clickhouse_backed_server(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEHIVE_STORE", f"chdb://{tmp_path / 'chdb'}?database=served")
    server = start_server(tmp_path / "data")
    try:
        assert server.get("/api/v1/health")["store"] == "ClickHouseStore"
        # The first insert into a new chDB folder is slow; the seed program only waits 2 s at exit.
        warm_up = json_request([{"trace_id": new_trace_id(), "span_id": new_span_id(), "name": "warm-up"}])
        with server.client() as client:
            assert client.post("/v1/traces", json=warm_up).status_code == 200
        project = f"seed-{uuid.uuid4().hex[:8]}"
        done = server.run_program("import runpy; runpy.run_module('tracehive.examples.seed', run_name='__main__')",
                                  project=project)  # fmt: skip
        assert done.returncode == 0, done.stderr
        premium = 'user_properties.plan = "premium"'
        (found,) = server.get("/api/v1/sessions", project=project, filter=premium)["sessions"]
        assert found["user_properties"] == SEED_USER
        session = server.get(f"/api/v1/sessions/{found['session_id']}")
        (event,) = session["events"]
        assert event["event_name"] == "process_request"
        assert event["inputs"] == {"query": "best hiking boots", "user_id": "user_12345"}
        (user,) = server.get("/api/v1/users", project=project)["users"]
        assert (user["user_id"], user["session_count"], user["event_count"]) == ("user_12345", 1, 1)
        (group,) = server.get("/api/v1/groups", project=project, by="user_properties.plan")["groups"]
        assert (group["value"], group["sessions"], group["users"]) == ("premium", 1, 1)
        series = server.get("/api/v1/timeseries", project=project, split_by="user_properties.is_beta")
        assert [(p["value"], p["sessions"]) for p in series["points"]] == [(True, 1)]
    finally:
        server.stop()


def test_a_store_url_it_cannot_use_is_a_message_not_a_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tracehive", "serve", "--data-dir", str(tmp_path), "--api-key", "k",
         "--store", "mysql://somewhere/db"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "unknown store URL" in done.stderr and "Traceback" not in done.stderr
