"""What the server acknowledged is on disk: kill -9 under load, restart, everything acknowledged
is readable; a full disk answers 507 and corrupts nothing."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from tests.conftest import ADMIN_KEY, start_server
from tests.otlp_payloads import new_span_id, new_trace_id, protobuf_request

SPANS_PER_REQUEST = 20
HEADERS = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {ADMIN_KEY}"}


def load_until_refused(url: str, acknowledged: list[str], stop: threading.Event) -> None:
    """Send sessions of 20 spans, one request each; record every session whose request got a 200."""
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            session = new_trace_id()
            body = protobuf_request([{"trace_id": session, "span_id": new_span_id()} for _ in range(SPANS_PER_REQUEST)])
            try:
                response = client.post(f"{url}/v1/traces", content=body, headers=HEADERS)
            except httpx.HTTPError:
                return
            if response.status_code == 200:
                acknowledged.append(session)


def stored_counts(server, project: str = "default") -> dict[str, int]:
    counts, cursor = {}, None
    while True:
        params = {"project": project, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = server.get("/api/v1/sessions", **params)
        counts.update({s["session_id"]: s["event_count"] for s in page["sessions"]})
        cursor = page["next_cursor"]
        if cursor is None:
            return counts


def kill_9_under_load(tmp_path, client: Callable[[str, int, threading.Event], None], acknowledged: Callable[[], int],
                      clients: int = 3, rounds: int = 3) -> None:  # fmt: skip
    """``rounds`` times: start the server, run ``clients`` threads of ``client(url, number, stop)``
    and kill -9 the server at a random moment once ``acknowledged()`` has grown by five."""
    rng = random.Random(7)
    for round_ in range(rounds):
        server = start_server(tmp_path)
        stop = threading.Event()
        threads = [
            threading.Thread(target=client, args=(server.url, round_ * clients + n, stop)) for n in range(clients)
        ]
        before = acknowledged()
        for thread in threads:
            thread.start()
        # Kill at a random moment once the load is flowing (on a busy machine it takes a while to start).
        deadline = time.monotonic() + 60
        while acknowledged() < before + 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        stop.set()
        for thread in threads:
            thread.join()


def test_acknowledged_spans_survive_kill_9(tmp_path):
    acknowledged: list[str] = []
    kill_9_under_load(tmp_path, lambda url, _, stop: load_until_refused(url, acknowledged, stop), acknowledged.__len__)
    server = start_server(tmp_path)
    try:
        counts = stored_counts(server)
    finally:
        server.stop()
    lost = [s for s in acknowledged if counts.get(s) != SPANS_PER_REQUEST]
    print(f"kill -9 x3: {len(acknowledged) * SPANS_PER_REQUEST} spans acknowledged, {len(lost)} sessions short")
    assert len(acknowledged) >= 10, "the load never got going"
    assert lost == [], f"{len(lost)} of {len(acknowledged)} acknowledged sessions incomplete after kill -9"


def can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not can_mount_tmpfs(), reason="needs unshare and user namespaces to mount a small tmpfs")
def test_full_disk_answers_507_and_keeps_what_was_stored(tmp_path):
    """The server runs in its own mount namespace on an 8 MB tmpfs, then the disk fills up."""
    data = tmp_path / "data"
    data.mkdir()
    script = f'mount -t tmpfs -o size=8m tmpfs "{data}" && exec "$@"'
    wrapper = tmp_path / "unshare-python"
    wrapper.write_text(f'#!/bin/sh\nexec unshare -rm sh -c \'{script}\' sh "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    server = start_server(data, python=str(wrapper))
    statuses = []
    try:
        first = new_trace_id()
        with httpx.Client(timeout=30) as client:
            ok = client.post(f"{server.url}/v1/traces", headers=HEADERS,
                             content=protobuf_request([{"trace_id": first, "span_id": new_span_id()}]))  # fmt: skip
            assert ok.status_code == 200
            payload = {"tracehive.inputs": '{"blob": "' + "y" * 60_000 + '"}'}
            for _ in range(400):
                spans = [{"trace_id": new_trace_id(), "span_id": new_span_id(), "attributes": payload}
                         for _ in range(20)]  # fmt: skip
                response = client.post(f"{server.url}/v1/traces", headers=HEADERS, content=protobuf_request(spans))
                statuses.append(response.status_code)
                if response.status_code != 200:
                    break
        assert statuses[-1] == 507, statuses[-5:]
        assert "space" in response.json()["detail"]
        assert server.get(f"/api/v1/sessions/{first}")["event_count"] == 1
    finally:
        server.stop()


FULL_STORE = """
import os, sys
from pathlib import Path
from tracehive.model import Batch, Event
from tracehive.store.base import StoreFullError
from tracehive.store.columns import Rows
from tracehive.store.duckdb import DuckDBStore
from tracehive.store.durable import write_synced

def event(event_id):
    inputs = {"q": "y" * 100_000}
    return Event("p", event_id, "s-1", "t" * 32, None, "chain", "step", 1_000, 2_000, namespaces={"inputs": inputs})

data = Path(sys.argv[1])
store = DuckDBStore(data / "store.duckdb")
store.write(Rows.of(Batch(events=[event("e1")])))
journal = data / "journal.jsonl"
write_synced(journal, b"kept\\n")
filler = os.open(data / "filler", os.O_WRONLY | os.O_CREAT)
for size in (1 << 16, 1):  # every byte the disk has
    try:
        while True:
            os.write(filler, b"x" * size)
    except OSError:
        pass
writes = {
    "write": lambda: store.write(Rows.of(Batch(events=[event("e2")]))),
    "add_event_feedback": lambda: store.add_event_feedback("p", [("t" * 32, "e1", {"note": "y" * 200_000})]),
    "write_synced": lambda: write_synced(journal, b"z" * 200_000),
}
for name, write in writes.items():
    try:
        write()
        print(name, "written")
    except StoreFullError:
        print(name, "StoreFullError")
    except Exception as exc:
        print(name, type(exc).__name__, exc)
stored = store.get_session("s-1", ("p",))
print("stored", stored["event_count"], stored["events"][0]["feedback"], journal.read_bytes()[:16])
"""


@pytest.mark.skipif(not can_mount_tmpfs(), reason="needs unshare and user namespaces to mount a small tmpfs")
def test_every_store_write_on_a_full_disk_is_a_store_full_error(tmp_path):
    """A score (event feedback) or a line of a synced file (scores kept for later, the audit log)
    as well as a batch: on a full disk each fails as StoreFullError, which clients get as a 507,
    and changes nothing (no torn line)."""
    data = tmp_path / "data"
    data.mkdir()
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size=8m tmpfs "{data}" && exec "$@"', "sh",
         sys.executable, "-c", FULL_STORE, str(data)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    expected = [
        "write StoreFullError",
        "add_event_feedback StoreFullError",
        "write_synced StoreFullError",
        "stored 1 {} b'kept\\n'",
    ]
    assert lines == expected, done.stdout + done.stderr


def test_overload_answers_503_with_retry_after_and_loses_nothing_acknowledged(tmp_path):
    """One ingest request at a time: a burst of concurrent clients gets 503s with Retry-After for
    what the server cannot take, and everything it did acknowledge is stored."""
    server = start_server(tmp_path, "--max-ingest-in-flight", "1")
    sessions = [new_trace_id() for _ in range(24)]
    answers: dict[str, httpx.Response] = {}

    def send(session: str) -> None:
        spans = [{"trace_id": session, "span_id": new_span_id()} for _ in range(200)]
        with httpx.Client(timeout=60) as client:
            answers[session] = client.post(f"{server.url}/v1/traces", headers=HEADERS, content=protobuf_request(spans))

    try:
        threads = [threading.Thread(target=send, args=(session,)) for session in sessions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        counts = stored_counts(server)
    finally:
        server.stop()
    statuses = sorted(response.status_code for response in answers.values())
    assert set(statuses) <= {200, 503}, statuses
    assert 503 in statuses and 200 in statuses, statuses
    assert all(r.headers.get("retry-after") for r in answers.values() if r.status_code == 503)
    assert all(counts.get(s) == 200 for s, r in answers.items() if r.status_code == 200)
    assert all(s not in counts for s, r in answers.items() if r.status_code == 503)
