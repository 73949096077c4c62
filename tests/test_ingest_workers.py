"""Ingest's worker processes: a dead worker is replaced (the request it held answers 503 and loses
nothing acknowledged), no workers at all still ingests, and workers never outlive their server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
from tests.conftest import ADMIN_KEY, start_server
from tests.otlp_payloads import new_span_id, new_trace_id, protobuf_request

from tracehive.server.workers import INLINE_BODY_BYTES, default_ingest_workers

SPANS = 200
HEADERS = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {ADMIN_KEY}"}


def descendants(root: int) -> list[int]:
    """Every process below ``root``, from each process's parent in /proc (Linux)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        found += sorted(frontier)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def send_session(url: str, spans: int = SPANS) -> tuple[str, httpx.Response]:
    """A request big enough to go to a worker process (smaller ones are mapped where they arrive)."""
    session = new_trace_id()
    body = protobuf_request([{"trace_id": session, "span_id": new_span_id()} for _ in range(spans)])
    assert spans == 1 or len(body) > INLINE_BODY_BYTES
    return session, httpx.post(f"{url}/v1/traces", content=body, headers=HEADERS, timeout=30)


def worker_pids(server_pid: int) -> list[int]:
    """The pool's workers (the server's other child, multiprocessing's resource tracker, is left out)."""
    return [
        pid for pid in descendants(server_pid) if "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_text()
    ]


def wait_for_workers(server_pid: int, count: int) -> list[int]:
    deadline = time.monotonic() + 20
    while len(workers := worker_pids(server_pid)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(workers) == count, workers
    return workers


def test_a_dead_worker_is_replaced(tmp_path):
    server = start_server(tmp_path, "--ingest-workers", "2")
    try:
        assert worker_pids(server.process.pid) == []  # no ingest yet, no workers
        first, answer = send_session(server.url)
        assert answer.status_code == 200, answer.text
        workers = wait_for_workers(server.process.pid, 2)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        _, answer = send_session(server.url)
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "1"
        assert "worker" in answer.json()["detail"]
        deadline = time.monotonic() + 20
        while True:  # the replacement pool is up within moments
            second, answer = send_session(server.url)
            if answer.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert answer.status_code == 200, answer.text
        assert not set(worker_pids(server.process.pid)) & set(workers)
        for session in (first, second):
            assert server.get(f"/api/v1/sessions/{session}")["event_count"] == SPANS
    finally:
        server.stop()


def test_a_small_request_is_mapped_without_starting_workers(tmp_path):
    server = start_server(tmp_path, "--ingest-workers", "2")
    try:
        session, answer = send_session(server.url, spans=1)
        assert answer.status_code == 200, answer.text
        assert server.get(f"/api/v1/sessions/{session}")["event_count"] == 1
        assert worker_pids(server.process.pid) == []
    finally:
        server.stop()


def test_without_workers_the_server_ingests_on_a_thread(tmp_path):
    server = start_server(tmp_path, "--ingest-workers", "0")
    try:
        session, answer = send_session(server.url)
        assert answer.status_code == 200, answer.text
        assert server.get(f"/api/v1/sessions/{session}")["event_count"] == SPANS
        assert descendants(server.process.pid) == []
    finally:
        server.stop()


def test_workers_do_not_outlive_a_killed_server(tmp_path):
    server = start_server(tmp_path, "--ingest-workers", "2")
    _, answer = send_session(server.url)
    assert answer.status_code == 200, answer.text
    wait_for_workers(server.process.pid, 2)
    below = descendants(server.process.pid)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in below) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [pid for pid in below if alive(pid)] == []


def test_the_default_leaves_the_server_process_a_core(monkeypatch):
    for cores, workers in ((None, 1), (1, 1), (2, 1), (4, 3), (16, 4)):
        monkeypatch.setattr("os.cpu_count", lambda cores=cores: cores)
        assert default_ingest_workers() == workers
