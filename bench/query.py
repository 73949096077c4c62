"""Query benchmark: the HTTP API over 1,000,000 events in 100,000 sessions from 10,000 users.

    python bench/query.py [--calls 50] [--reload]

The data is loaded through the store's own write path (``DuckDBStore.write``, the call the server's
bulk writer makes) in batches of 10,000 sessions, before the server starts; the file is kept under
bench/.data and reused while the generator's version is unchanged (``--reload`` rebuilds it).
Then a tracehive server opens it and each query is timed over repeated HTTP calls (p50, p95, and
the server's CPU time per call), and the server's memory is read (RSS now, and its peak).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import time
import uuid
from pathlib import Path

import httpx

from common import ADMIN_KEY, DATA, percentile, proc_cpu_seconds, start_tracehive, table, write_section
from tracehive.model import Batch, Event, SessionUpdate
from tracehive.store import DUCKDB_FILE
from tracehive.store.columns import Rows
from tracehive.store.duckdb import DuckDBStore

VERSION = "2"  # bump when the generated data changes, so cached files are rebuilt
EVENTS_PER_SESSION = 10
SESSIONS, USERS = 100_000, 10_000
SESSIONS_PER_WRITE = 10_000
PLANS = ("free", "pro", "premium", "enterprise")
EVENT_TYPES = ("chain", "model", "tool")
SPACING_NS = 30 * 86_400 * 10**9 // SESSIONS  # 30 days of traffic
START_NS = 1_767_225_600 * 10**9  # 2026-01-01


def session_id(n: int) -> str:
    """A UUID, as SDKs make them: random-looking, so no lookup gets help from the ids' order."""
    return str(uuid.UUID(bytes=hashlib.md5(f"session {n}".encode()).digest()))


def make_batch(first: int, count: int, rng: random.Random) -> Batch:
    """Sessions ``first .. first+count``: a session update with the user's properties and metadata,
    and ten events each (a root chain and its children) with inputs, outputs and metadata."""
    batch = Batch()
    for n in range(first, first + count):
        user = n % USERS
        sid = session_id(n)
        start = START_NS + n * SPACING_NS + rng.randrange(60 * 10**9)  # arrival order, as in production
        batch.sessions.append(
            SessionUpdate(
                project="bench",
                session_id=sid,
                session_name="chat",
                source="prod",
                start_ns=start,
                namespaces={
                    "user_properties": {
                        "user_id": f"user_{user:05d}",
                        "email": f"user_{user}@example.com",
                        "plan": PLANS[user % 4],
                        "is_beta": user % 3 == 0,
                    },
                    "metadata": {
                        "request_id": f"req-{n}",
                        "env": "prod",
                        "flags": {"new_ui": n % 2 == 0, "variant": f"v{n % 5}"},
                    },
                },
            )
        )
        root = f"{n:012x}0000"
        for i in range(EVENTS_PER_SESSION):
            begin = start + i * 2_000_000
            batch.events.append(
                Event(
                    project="bench",
                    event_id=f"{n:012x}{i:04x}",
                    session_id=sid,
                    trace_id=f"{n:032x}",
                    parent_id=None if i == 0 else root,
                    event_type=EVENT_TYPES[0 if i == 0 else 1 + i % 2],
                    event_name=f"step_{i}",
                    start_ns=begin,
                    end_ns=begin + rng.randrange(1, 3000) * 1_000_000,
                    error="TimeoutError: upstream" if rng.random() < 0.01 else None,
                    namespaces={
                        "inputs": {"query": f"question {n}.{i}"},
                        "outputs": {"answer": f"answer {n}.{i}"},
                        "metadata": {"model": "gpt-4o", "step": i},
                    },
                )
            )
    return batch


def load(data_dir: Path) -> float:
    """Write the data set through the store; returns the seconds it took."""
    rng = random.Random(7)
    store = DuckDBStore(data_dir / DUCKDB_FILE)
    started = time.monotonic()
    try:
        for first in range(0, SESSIONS, SESSIONS_PER_WRITE):
            store.write(Rows.of(make_batch(first, SESSIONS_PER_WRITE, rng)))
            done = (first + SESSIONS_PER_WRITE) * EVENTS_PER_SESSION
            print(f"  {done:,} events written ({time.monotonic() - started:.0f} s)", flush=True)
    finally:
        store.close()
    return time.monotonic() - started


def dataset(reload: bool) -> tuple[Path, str]:
    data_dir = DATA / "query-1m"
    marker = data_dir / "bench-version"
    if reload or not marker.exists() or marker.read_text() != VERSION:
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        print(f"loading {SESSIONS * EVENTS_PER_SESSION:,} events in {SESSIONS:,} sessions from {USERS:,} users...")
        seconds = load(data_dir)
        marker.write_text(VERSION)
        (data_dir / "load-seconds").write_text(f"{seconds:.0f}")
    return data_dir, (data_dir / "load-seconds").read_text()


PLAN_FILTER = 'user_properties.plan = "premium"'
NESTED_FILTER = "metadata.flags.new_ui = true"
QUERIES = {
    f"sessions where {PLAN_FILTER}": ("/api/v1/sessions", {"filter": PLAN_FILTER}),
    f"sessions where {NESTED_FILTER}": ("/api/v1/sessions", {"filter": NESTED_FILTER}),
    "users view": ("/api/v1/users", {}),
    "group by plan (sessions, users, p50/p95 duration)": ("/api/v1/groups", {"by": "user_properties.plan"}),
    "time series (the dashboard's sessions page)": ("/api/v1/timeseries", {}),
    "time series split by plan (the groups page)": ("/api/v1/timeseries", {"split_by": "user_properties.plan"}),
    "one session's event tree": ("/api/v1/sessions/{session_id}", {}),
}


def time_queries(url: str, pid: int, calls: int) -> list[tuple]:
    rng = random.Random(11)
    rows = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120) as client:
        for name, (path, params) in QUERIES.items():
            times, cpu = [], []
            for _ in range(calls + 2):  # the first two warm the caches and are not counted
                target = path.format(session_id=session_id(rng.randrange(SESSIONS)))
                cpu_before, started = proc_cpu_seconds(pid), time.perf_counter()
                response = client.get(target, params=params)
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((proc_cpu_seconds(pid) - cpu_before) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")
            times, cpu = times[2:], cpu[2:]
            p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
            cpu_ms = sum(cpu) / len(cpu)
            print(f"{name:>55}: p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  server CPU {cpu_ms:6.1f} ms/call")
            rows.append((name, f"{p50:.1f}", f"**{p95:.1f}**", f"{cpu_ms:.0f}", "met" if p95 <= 50 else "NOT met"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50, help="timed calls per query")
    parser.add_argument("--reload", action="store_true", help="rebuild the data set")
    args = parser.parse_args()
    data_dir, load_seconds = dataset(args.reload)
    server = start_tracehive(data_dir, log_name="query-tracehive.log")
    try:
        rows = time_queries(server.url, server.process.pid, args.calls)
        rss, peak, processes = server.rss_mb(), server.peak_rss_mb(), len(server.processes())
    finally:
        server.stop()
    print(f"server memory: {rss:.0f} MB RSS after the queries, peak {peak:.0f} MB")
    body = (
        f"{SESSIONS * EVENTS_PER_SESSION:,} events in {SESSIONS:,} sessions from {USERS:,} users, loaded through "
        f"`DuckDBStore.write` in batches of {SESSIONS_PER_WRITE:,} sessions ({load_seconds} s), "
        "in arrival order over 30 days, "
        "with UUID session ids. "
        f"{args.calls} timed HTTP calls per query (after 2 warm-up calls), default page size.\n\n"
        + "Server CPU is user plus system time of all the server's threads per call (DuckDB runs a "
        "query on both cores, so it can exceed the wall time); it is the cost of a query with the "
        "machine's other load taken out.\n\n"
        + table(("query", "p50 (ms)", "p95 (ms)", "server CPU (ms/call)", "p95 <= 50 ms"), rows)
        + f"\n\nServer memory: **{rss:.0f} MB** RSS after the queries, peak {peak:.0f} MB "
        f"(target at most 300 MB: {'met' if peak <= 300 else 'NOT met'}), over {processes} process(es): "
        "this server ingests nothing, and ingest workers start only with the first ingest request."
    )
    write_section("query", "Queries at 1M events (`python bench/query.py`)", body)


if __name__ == "__main__":
    main()
