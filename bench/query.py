"""Query benchmark: the HTTP API over 1,000,000 events in 100,000 sessions from 10,000 users.

    python bench/query.py [--events 1000000] [--calls 50] [--reload]

The data is loaded through the store's own write path (``DuckDBStore.write``, the call the server's
bulk writer makes) in batches of 10,000 sessions, before the server starts; the file is kept under
bench/.data and reused while the generator's version is unchanged (``--reload`` rebuilds it).
Then a tracehive server opens it and each query is timed over repeated HTTP calls (p50, p95, and
the server's CPU time per call), and the server's memory is read (RSS now, and its peak).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from common import ADMIN_KEY, DATA, percentile, proc_cpu_seconds, start_tracehive, table, write_section
from tracehive.model import COST, NAMESPACES, USAGE_FIELDS
from tracehive.store import DUCKDB_FILE
from tracehive.store.base import QueryBudget
from tracehive.store.columns import EVENT_COLUMNS
from tracehive.store.duckdb import DuckDBStore
from tracehive.store.duckdb_schema import INSERT_SESSIONS  # the store's own statement

VERSION = "3"  # bump when the generated data changes, so cached files are rebuilt
EVENTS_PER_SESSION = 10
SESSIONS_PER_WRITE = 100_000
LOAD_MEMORY_MB = 4096  # the load's DuckDB bound: the server's default (256 MB) is too small for one write
PLANS = ("free", "pro", "premium", "enterprise")
EVENT_TYPES = ("chain", "model", "tool")
START_NS = 1_767_225_600 * 10**9  # 2026-01-01
DAYS = 30


def session_id(n: int) -> str:
    """A UUID, as SDKs make them: random-looking, so no lookup gets help from the ids' order."""
    return str(uuid.UUID(bytes=hashlib.md5(f"session {n}".encode()).digest()))


def _text(*parts) -> pa.Array:
    """Strings joined element-wise from constants and arrays (numbers are written in decimal)."""
    arrays = [p if isinstance(p, str) else pc.cast(pa.array(p), pa.string()) for p in parts]
    return pc.binary_join_element_wise(*arrays, "")


def make_chunk(
    first: int, count: int, sessions: int, users: int, rng: np.random.Generator
) -> tuple[pa.Table, pa.Table]:
    """Sessions ``first .. first+count`` as Arrow tables of whole session rows and their events:
    user properties and metadata on the session, ten events each (a root chain and its children)
    with inputs, outputs and metadata, in arrival order over 30 days, about 1% of events failed."""
    n = np.arange(first, first + count, dtype=np.int64)
    user = n % users
    spacing = DAYS * 86_400 * 10**9 // sessions
    start = START_NS + n * spacing + rng.integers(0, 60 * 10**9, count)
    steps = np.arange(EVENTS_PER_SESSION, dtype=np.int64)
    begin = (start[:, None] + steps[None, :] * 2_000_000).ravel()
    end = begin + rng.integers(1, 3000, begin.size) * 1_000_000
    failed = rng.random(begin.size) < 0.01
    sid = pa.array([session_id(int(i)) for i in n])
    en, ei = np.repeat(n, EVENTS_PER_SESSION), np.tile(steps, count)
    micros = pa.timestamp("us")
    events = pa.table({
        "project": pa.array(["bench"] * begin.size),
        "event_id": _text(en, "-", ei),
        "session_id": pc.take(sid, pa.array(np.repeat(np.arange(count), EVENTS_PER_SESSION))),
        "trace_id": _text("trace-", en),
        "parent_id": pc.if_else(pa.array(ei == 0), pa.scalar(None, pa.string()), _text(en, "-0")),
        "event_type": pc.take(pa.array(EVENT_TYPES), pa.array(np.where(ei == 0, 0, 1 + ei % 2))),
        "event_name": _text("step_", ei),
        "start_time": pa.array(begin // 1000, micros),
        "end_time": pa.array(end // 1000, micros),
        "duration_ms": pa.array((end - begin) / 1e6),
        "error": pc.if_else(pa.array(failed), "TimeoutError: upstream", pa.scalar(None, pa.string())),
    })  # fmt: skip
    namespaces = {
        "inputs": _text('{"query":"question ', en, ".", ei, '"}'),
        "outputs": _text('{"answer":"answer ', en, ".", ei, '"}'),
        "metadata": _text('{"model":"gpt-4o","step":', ei, "}"),
    }
    for ns in NAMESPACES:
        events = events.append_column(ns, namespaces.get(ns, pa.array(["{}"] * begin.size)))
    session_end = end.reshape(count, EVENTS_PER_SESSION).max(axis=1)
    user_properties = _text('{"user_id":"user_', pc.utf8_lpad(pc.cast(pa.array(user), pa.string()), 6, "0"),
                            '","email":"user_', user, '@example.com","plan":"',
                            pc.take(pa.array(PLANS), pa.array(user % 4)), '","is_beta":',
                            pc.if_else(pa.array(user % 3 == 0), "true", "false"), "}")  # fmt: skip
    metadata = _text('{"request_id":"req-', n, '","env":"prod","flags":{"new_ui":',
                     pc.if_else(pa.array(n % 2 == 0), "true", "false"), ',"variant":"v', n % 5, '"}}')  # fmt: skip
    sessions = pa.table({
        "project": pa.array(["bench"] * count),
        "session_id": sid,
        "session_name": pa.array(["chat"] * count),
        "source": pa.array(["prod"] * count),
        "user_id": _text("user_", pc.utf8_lpad(pc.cast(pa.array(user), pa.string()), 6, "0")),
        "start_time": pa.array(start // 1000, micros),
        "end_time": pa.array(session_end // 1000, micros),
        "duration_ms": pa.array((session_end - start) / 1e6),
        "event_count": pa.array(np.full(count, EVENTS_PER_SESSION)),
        "error_count": pa.array(failed.reshape(count, EVENTS_PER_SESSION).sum(axis=1).astype(np.int64)),
    })  # fmt: skip
    for name in USAGE_FIELDS:  # no model event here carries tokens; cost stays unknown
        sessions = sessions.append_column(
            name, pa.nulls(count, pa.float64()) if name == COST else pa.array(np.zeros(count, np.int64))
        )
    session_namespaces = {"user_properties": user_properties, "metadata": metadata}
    for ns in NAMESPACES:
        sessions = sessions.append_column(ns, session_namespaces.get(ns, pa.array(["{}"] * count)))
    return sessions, events


def load(data_dir: Path, sessions: int, users: int) -> float:
    """Write the data set straight into the store's tables, 100,000 sessions per transaction
    (bulk Arrow inserts: the write path's per-batch Python work would take most of an hour at
    ten million events); returns the seconds it took. A transaction of 100,000 sessions needs more
    than the server's default memory bound, so the load sets its own."""
    rng = np.random.default_rng(7)
    store = DuckDBStore(data_dir / DUCKDB_FILE, QueryBudget(memory_mb=LOAD_MEMORY_MB))
    cursor = store._cursor()
    started = time.monotonic()
    try:
        for first in range(0, sessions, SESSIONS_PER_WRITE):
            session_rows, events = make_chunk(first, min(SESSIONS_PER_WRITE, sessions - first), sessions, users, rng)
            cursor.register("incoming_events", events)
            cursor.register("incoming_sessions", session_rows)
            cursor.execute("BEGIN TRANSACTION")
            cursor.execute(f"INSERT INTO events SELECT {', '.join(EVENT_COLUMNS)} FROM incoming_events")
            cursor.execute(INSERT_SESSIONS)
            cursor.execute("COMMIT")
            cursor.unregister("incoming_events")
            cursor.unregister("incoming_sessions")
            done = (first + session_rows.num_rows) * EVENTS_PER_SESSION
            print(f"  {done:,} events written ({time.monotonic() - started:.0f} s)", flush=True)
    finally:
        store.close()
    return time.monotonic() - started


def dataset(events: int, reload: bool) -> tuple[Path, str]:
    sessions = events // EVENTS_PER_SESSION
    users = max(1, sessions // 10)
    data_dir = DATA / f"query-{events}"
    marker = data_dir / "bench-version"
    if reload or not marker.exists() or marker.read_text() != VERSION:
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        print(f"loading {events:,} events in {sessions:,} sessions from {users:,} users...")
        seconds = load(data_dir, sessions, users)
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


PAGES = {
    "sessions list": ("/", {}),
    f"filtered list ({PLAN_FILTER})": ("/", {"filter": PLAN_FILTER}),
    "users": ("/users", {}),
    "group by plan": ("/groups", {"by": "user_properties.plan"}),
    "one session": ("/sessions/{session_id}", {}),
}


def log_in(client: httpx.Client) -> None:
    """The dashboard's login form, as a browser posts it (double-submit CSRF token)."""
    client.get("/login")
    token = client.cookies["tracehive_csrf"]
    answer = client.post("/login", data={"key": ADMIN_KEY, "csrf": token, "next": "/"},
                         headers={"Origin": str(client.base_url).rstrip("/")})  # fmt: skip
    if answer.status_code not in (200, 303):
        raise RuntimeError(f"dashboard login: {answer.status_code} {answer.text[:300]}")


def time_calls(client: httpx.Client, targets: dict, pid: int, calls: int, sessions: int, limit_ms: float) -> list:
    rng = random.Random(11)
    rows = []
    for name, (path, params) in targets.items():
        times, cpu = [], []
        for _ in range(calls + 2):  # the first two warm the caches and are not counted
            target = path.format(session_id=session_id(rng.randrange(sessions)))
            cpu_before, started = proc_cpu_seconds(pid), time.perf_counter()
            response = client.get(target, params=params)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((proc_cpu_seconds(pid) - cpu_before) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")
        times, cpu = times[2:], cpu[2:]
        p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
        cpu_ms = sum(cpu) / len(cpu)
        print(f"{name:>55}: p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  server CPU {cpu_ms:6.1f} ms/call  load "
              f"{os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        rows.append((name, f"{p50:.1f}", f"**{p95:.1f}**", f"{cpu_ms:.0f}", f"{os.getloadavg()[0]:.1f}",
                     "met" if p95 <= limit_ms else "NOT met"))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events (sessions: a tenth; users: a hundredth)")
    parser.add_argument("--calls", type=int, default=50, help="timed calls per query")
    parser.add_argument("--page-calls", type=int, default=20, help="timed calls per dashboard page")
    parser.add_argument("--reload", action="store_true", help="rebuild the data set")
    args = parser.parse_args()
    sessions = args.events // EVENTS_PER_SESSION
    data_dir, load_seconds = dataset(args.events, args.reload)
    file_bytes = sum(f.stat().st_size for f in data_dir.glob(f"{DUCKDB_FILE}*"))
    server = start_tracehive(data_dir, log_name="query-tracehive.log")
    big = args.events >= 10_000_000
    query_limit, tree_limit = (100, 50) if big else (50, 50)
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120) as client:
            limits = {name: tree_limit if "tree" in name else query_limit for name in QUERIES}
            rows = []
            for name, target in QUERIES.items():
                rows += time_calls(client, {name: target}, server.process.pid, args.calls, sessions, limits[name])
        with httpx.Client(base_url=server.url, timeout=120) as browser:
            log_in(browser)
            pages = time_calls(browser, PAGES, server.process.pid, args.page_calls, sessions, 300)
        rss, peak, processes = server.rss_mb(), server.peak_rss_mb(), len(server.processes())
    finally:
        server.stop()
    print(f"server memory: {rss:.0f} MB RSS after the queries, peak {peak:.0f} MB; "
          f"{file_bytes / args.events:.0f} bytes on disk per event")  # fmt: skip
    header = ("query", "p50 (ms)", "p95 (ms)", "server CPU (ms/call)", "load avg", f"p95 <= {query_limit} ms")
    memory_limit = 500 if big else 300
    body = (
        f"{args.events:,} events in {sessions:,} sessions from {max(1, sessions // 10):,} users, written straight "
        f"into the store's tables as Arrow batches of {SESSIONS_PER_WRITE:,} sessions ({load_seconds} s), in "
        f"arrival order over {DAYS} days, with UUID session ids. {args.calls} timed HTTP calls per query and "
        f"{args.page_calls} per dashboard page (after 2 warm-up calls each), default page size. Server CPU is "
        "user plus system time of all the server's threads per call (DuckDB runs a query on both cores, so it "
        "can exceed the wall time).\n\n"
        + table(header, rows)
        + "\n\nThe dashboard's pages, logged in as a person is, whole HTML page each:\n\n"
        + table(("page", "p50 (ms)", "p95 (ms)", "server CPU (ms/call)", "load avg", "p95 <= 300 ms"), pages)
        + f"\n\nServer memory: **{rss:.0f} MB** RSS after the queries and pages, peak {peak:.0f} MB "
        f"(target at most {memory_limit} MB: {'met' if peak <= memory_limit else 'NOT met'}), over {processes} "
        f"process(es). On disk: {file_bytes / 2**20:,.0f} MiB, **{file_bytes / args.events:.0f} bytes per event** "
        "(the DuckDB file with its sessions, key maps and indexes)."
    )
    write_section(f"query-{args.events}", f"Queries at {args.events:,} events (`python bench/query.py --events "
                  f"{args.events}`)", body)  # fmt: skip


if __name__ == "__main__":
    main()
