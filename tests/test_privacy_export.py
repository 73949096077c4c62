"""Data out and retention on a real server. ``tracehive export`` of 100k events streams in flat
memory and reads back into pandas with the API's values; ``Client.sessions`` gives plain dicts and
frames. Retention removes exactly the expired sessions while ingest goes on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime

import pandas as pd
import polars as pl
import pytest
from tests.conftest import start_server, start_server_on
from tests.otlp_payloads import json_request, new_span_id, new_trace_id

from tracehive.client import Client
from tracehive.model import Batch, Event, SessionUpdate, empty_namespaces
from tracehive.store import DUCKDB_FILE
from tracehive.store.columns import Rows
from tracehive.store.duckdb import DuckDBStore

T0 = 1_767_225_600_000_000_000  # 2026-01-01
EVENTS_PER_SESSION = 10
DAY_NS = 86_400 * 10**9


def seed(store: DuckDBStore, project: str, events: int) -> None:
    """``events`` events in sessions of ten, written straight into the store (fast)."""
    for first in range(0, events // EVENTS_PER_SESSION, 2000):
        batch = Batch()
        for s in range(first, min(first + 2000, events // EVENTS_PER_SESSION)):
            sid = f"{project}-s{s:06d}"
            start = T0 + s * 10**9
            props = {"user_id": f"u{s % 97}", "plan": ["free", "pro"][s % 2], "score": s / 7}
            batch.sessions.append(
                SessionUpdate(
                    project,
                    sid,
                    session_name="chat",
                    source="app",
                    start_ns=start,
                    namespaces={**empty_namespaces(), "user_properties": props},
                )
            )
            for e in range(EVENTS_PER_SESSION):
                ns = {**empty_namespaces(), "inputs": {"q": f"question {s}.{e}"}, "metrics": {"tokens": e}}
                batch.events.append(
                    Event(
                        project,
                        f"{sid}-e{e}",
                        sid,
                        sid,
                        None,
                        "model",
                        f"call{e}",
                        start + e * 1000,
                        start + e * 1000 + 500_000,
                        None,
                        ns,
                    )
                )
        store.write(Rows.of(batch))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    store = DuckDBStore(folder / DUCKDB_FILE)
    seed(store, "big", 100_000)
    seed(store, "small", 20_000)  # two Parquet batches, so the comparison is between like and like
    store.close()
    server = start_server(folder, "--ingest-workers", "0")
    yield server, folder
    server.stop()


def peak_rss_of_export(server, out, *args: str) -> int:
    """Run ``tracehive export`` in a process of its own; its peak resident memory in KiB."""
    wrapper = (
        "import resource, subprocess, sys; "
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "assert done.returncode == 0, done.stderr; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    env = {**os.environ, "TRACEHIVE_URL": server.url, "TRACEHIVE_API_KEY": server.key}
    done = subprocess.run(
        [sys.executable, "-c", wrapper, sys.executable, "-m", "tracehive", "export", "--out", str(out), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


def test_export_100k_events_in_flat_memory_reads_back_like_the_api(exported):
    server, folder = exported
    small = peak_rss_of_export(server, folder / "small.parquet", "--project", "small", "--format", "parquet")
    big = peak_rss_of_export(server, folder / "big.parquet", "--project", "big", "--format", "parquet")
    assert big < small + 40 * 1024, f"export memory grew with size: {small} KiB for 20k, {big} KiB for 100k"
    frame = pd.read_parquet(folder / "big.parquet")
    assert len(frame) == 100_000 and frame["event_id"].is_unique
    assert str(frame["start_time"].dtype) == "datetime64[us, UTC]" and frame["duration_ms"].dtype == "float64"
    assert frame["event_count"].dtype == "int64"
    for session_id in ("big-s000000", "big-s004321", "big-s009999"):
        api = server.get(f"/api/v1/sessions/{session_id}")
        rows = frame[frame["session_id"] == session_id].sort_values("event_id")
        assert len(rows) == len(api["events"]) == EVENTS_PER_SESSION
        for (_, row), event in zip(rows.iterrows(), sorted(api["events"], key=lambda e: e["event_id"]), strict=True):
            assert row["event_id"] == event["event_id"] and row["event_name"] == event["event_name"]
            assert row["start_time"] == pd.Timestamp(event["start_time"])
            assert row["duration_ms"] == event["duration_ms"]
            assert json.loads(row["inputs"]) == event["inputs"] and json.loads(row["metrics"]) == event["metrics"]
            assert row["session_start_time"] == pd.Timestamp(api["start_time"])
            assert json.loads(row["session_user_properties"]) == api["user_properties"]
            assert row["user_id"] == api["user_properties"]["user_id"] and row["event_count"] == api["event_count"]


def test_export_jsonl_of_one_users_data(exported):
    server, folder = exported
    out = folder / "u5.jsonl"
    peak_rss_of_export(server, out, "--project", "small", "--filter", 'user_properties.user_id = "u5"')
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    sessions = Client(server.url, server.key).sessions(project="small", filter='user_properties.user_id = "u5"')
    assert len(rows) == len(sessions) * EVENTS_PER_SESSION and {r["user_id"] for r in rows} == {"u5"}
    with Client(server.url, server.key) as client:  # a time range: sessions 100 to 199 of "small"
        ranged = list(client.events(project="small", from_="2026-01-01T00:01:40Z", to="2026-01-01T00:03:20Z"))
    assert {r["session_id"] for r in ranged} == {f"small-s{s:06d}" for s in range(100, 200)}
    api = server.get(f"/api/v1/sessions/{rows[0]['session_id']}")
    event = next(e for e in api["events"] if e["event_id"] == rows[0]["event_id"])
    assert {k: rows[0][k] for k in ("start_time", "inputs", "metrics", "duration_ms")} == {
        k: event[k] for k in ("start_time", "inputs", "metrics", "duration_ms")
    }


def test_client_sessions_as_dicts_and_frames(exported):
    server, _ = exported
    with Client(server.url, server.key) as client:
        found = client.sessions(project="small", filter='user_properties.plan = "pro"', limit=1500)
        assert len(found) == 1000 and all(isinstance(s, dict) and s["user_properties"]["plan"] == "pro" for s in found)
        frame = found.to_pandas()
        assert list(frame["session_id"]) == [s["session_id"] for s in found]
        assert json.loads(frame["user_properties"][0]) == found[0]["user_properties"]
        polar = found.to_polars()
    # The same columns, values and types as pandas gives (pandas' NaN/NaT are polars' None).
    assert polar.columns == list(frame.columns) and polar.height == len(frame)
    assert polar.to_pandas().equals(frame), "polars and pandas frames differ"
    assert dict(polar.schema)["start_time"] == pl.Datetime("us", "UTC") and polar["event_count"].dtype == pl.Int64
    assert polar["duration_ms"].dtype == pl.Float64 and polar["user_properties"].dtype == pl.String
    first = polar.row(0, named=True)
    assert first["session_id"] == found[0]["session_id"] and first["event_count"] == found[0]["event_count"]
    assert json.loads(first["user_properties"]) == found[0]["user_properties"]
    assert first["start_time"] == datetime.fromisoformat(found[0]["start_time"].replace("Z", "+00:00"))


@pytest.mark.parametrize("backend", ["duckdb", "clickhouse"])
def test_retention_removes_exactly_the_expired_sessions_while_ingest_goes_on(tmp_path, backend):
    server = start_server_on(backend, tmp_path, "--ingest-workers", "0", "--housekeeping-seconds", "0.3")
    now = time.time_ns()
    old = [new_trace_id() for _ in range(30)]
    fresh: list[str] = []
    stop = threading.Event()

    def send(traces: list[str], start_ns: int) -> None:
        spans = [
            {"trace_id": t, "span_id": new_span_id(), "start_ns": start_ns, "end_ns": start_ns + 10**6} for t in traces
        ]
        with server.client() as client:
            answer = client.post("/v1/traces", json=json_request(spans, {"tracehive.project": "ret"}))
        assert answer.status_code == 200, answer.text

    def keep_ingesting() -> None:
        while not stop.is_set():
            trace = new_trace_id()
            send([trace], time.time_ns())
            fresh.append(trace)

    try:
        send(old, now - 10 * DAY_NS)
        send([fresh_one := new_trace_id()], now - 2 * DAY_NS)
        fresh.append(fresh_one)
        ingest = threading.Thread(target=keep_ingesting)
        ingest.start()
        env = {**os.environ, "TRACEHIVE_URL": server.url, "TRACEHIVE_API_KEY": server.key}
        done = subprocess.run(
            [sys.executable, "-m", "tracehive", "privacy", "set", "--project", "ret", "--retention-days", "5"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            left = {s["session_id"] for s in Client(server.url, server.key).sessions(project="ret")}
            if not left & set(old):
                break
            time.sleep(0.2)
        stop.set()
        ingest.join()
        left = {s["session_id"] for s in Client(server.url, server.key).sessions(project="ret")}
        assert left == set(fresh) and len(fresh) > 5
        (entry,) = [e for e in server.get("/api/v1/audit", project="ret")["entries"] if e["action"] == "retention"]
        assert (entry["sessions"], entry["events"]) == (30, 30)
    finally:
        stop.set()
        server.stop()


def test_arrow_columns_keep_types_of_fields_the_export_does_not_know():
    from tracehive.privacy.export import export_row, to_arrow

    session = {
        "project": "p",
        "session_id": "s",
        "start_time": "2026-01-01T00:00:00Z",
        "event_count": 2,
        "metadata": {"a": [1, None]},
        "cost": 0,
        "model_calls": 3,
        "flagged": True,
        "user_id": None,
    }
    event = {"event_id": "e", "session_id": "s", "start_time": "2026-01-01T00:00:00.5Z", "duration_ms": 1,
             "metadata": {}, "error": None}  # fmt: skip
    rows = [export_row(session, event), export_row({**session, "cost": 0.25, "user_id": "u"}, event)]
    table = to_arrow(rows)
    types = {field.name: str(field.type) for field in table.schema}
    assert types["cost"] == "double" and types["model_calls"] == "int64" and types["flagged"] == "bool"
    assert types["session_start_time"] == types["start_time"] == "timestamp[us, tz=UTC]"
    assert types["session_metadata"] == types["metadata"] == types["user_id"] == "string"
    assert table.column("cost").to_pylist() == [0.0, 0.25] and table.column("session_metadata")[0].as_py() == (
        '{"a":[1,null]}'
    )
