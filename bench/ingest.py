"""Ingest benchmark: spans stored and queryable per second, tracehive against Arize Phoenix.

    python bench/ingest.py [--sessions 10000] [--phoenix-sessions 300] [--clients 4]

Both servers get the same OTLP/HTTP protobuf load (sessions of 10 spans with user properties,
metadata, inputs and outputs, 50 sessions per request, a few concurrent clients), one after the
other. The clock runs from the first request to the moment the server's own read API shows every
span; peak memory sums the high-water marks (VmHWM) of the server's processes. Phoenix (SQLite)
stores slowly, so it gets a smaller load and a deadline; its rate is computed over what it had
stored by then.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from common import ADMIN_KEY, DATA, Server, free_port, start_tracehive, table, venv, wait_http, write_section
from otlp_load import SPANS_PER_SESSION, build_requests, send

PHOENIX = "arize-phoenix==20.26.1"
SESSIONS_PER_REQUEST = 50
USERS = 100  # few enough that the users view lists them all, so its counts add up to every span


@dataclass
class Outcome:
    name: str
    spans_sent: int
    spans_stored: int
    seconds: float
    ack_seconds: float
    peak_rss_mb: float
    failures: int
    cpu_seconds: float  # the server's processes, from the first request until all was queryable

    @property
    def rate(self) -> float:
        return self.spans_stored / self.seconds


def wait_stored(count: Callable[[], int], expected: int, deadline: float) -> tuple[int, float]:
    """Poll ``count`` until it reaches ``expected`` or the deadline passes; (count, when)."""
    while True:
        stored = count()
        now = time.monotonic()
        if stored >= expected or now >= deadline:
            return stored, now
        time.sleep(0.2)


def run_load(name: str, server: Server, endpoint: str, headers: dict, count: Callable[[], int],
             sessions: int, clients: int, timeout: float) -> Outcome:  # fmt: skip
    bodies = build_requests(run=1, sessions=sessions, sessions_per_request=SESSIONS_PER_REQUEST, users=USERS)
    expected = sessions * SPANS_PER_SESSION
    print(f"{name}: sending {expected} spans in {len(bodies)} requests from {clients} clients...")
    cpu_before = server.cpu_seconds()
    sent = send(endpoint, headers, bodies, clients)
    stored, done = wait_stored(count, expected, sent.first_request + timeout)
    outcome = Outcome(name, expected, stored, done - sent.first_request, sent.last_answer - sent.first_request,
                      server.peak_rss_mb(), sent.failures, server.cpu_seconds() - cpu_before)  # fmt: skip
    print(f"  acknowledged in {outcome.ack_seconds:.1f} s, {stored}/{expected} queryable after "
          f"{outcome.seconds:.1f} s: {outcome.rate:,.0f} spans/s, peak RSS {outcome.peak_rss_mb:.0f} MB")  # fmt: skip
    return outcome


def bench_tracehive(sessions: int, clients: int) -> Outcome:
    data_dir = DATA / "ingest-tracehive"
    shutil.rmtree(data_dir, ignore_errors=True)
    server = start_tracehive(data_dir)
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}

    def count() -> int:
        users = httpx.get(f"{server.url}/api/v1/users", params={"limit": 1000}, headers=auth, timeout=60)
        return sum(user["event_count"] for user in users.json()["users"])

    try:
        return run_load("tracehive", server, f"{server.url}/v1/traces", auth, count, sessions, clients, 600)
    finally:
        server.stop()


def start_phoenix(data_dir: Path) -> Server:
    python = venv("phoenix", PHOENIX)
    port = free_port()
    env = {**os.environ, "PHOENIX_WORKING_DIR": str(data_dir), "PHOENIX_PORT": str(port),
           "PHOENIX_GRPC_PORT": str(free_port()), "PHOENIX_HOST": "127.0.0.1",
           "PHOENIX_TELEMETRY_ENABLED": "false"}  # fmt: skip
    log = data_dir.parent / "phoenix.log"
    process = subprocess.Popen([str(python.parent / "phoenix"), "serve"], env=env, stdout=log.open("wb"),
                               stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", 180, process)
    return Server(url, process, log)


def bench_phoenix(sessions: int, clients: int, timeout: float) -> Outcome:
    data_dir = DATA / "ingest-phoenix"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    server = start_phoenix(data_dir)
    query = "{ projects { edges { node { recordCount } } } }"

    def count() -> int:
        answer = httpx.post(f"{server.url}/graphql", json={"query": query}, timeout=60).json()
        return sum(edge["node"]["recordCount"] for edge in answer["data"]["projects"]["edges"])

    try:
        return run_load("phoenix", server, f"{server.url}/v1/traces", {}, count, sessions, clients, timeout)
    finally:
        server.stop()


def report(ours: Outcome, phoenix: Outcome, clients: int) -> str:
    ratio = ours.rate / phoenix.rate
    rows = [
        (o.name, f"{o.spans_sent:,}", f"{o.spans_stored:,}", f"{o.ack_seconds:.1f}", f"{o.seconds:.1f}",
         f"**{o.rate:,.0f}**", f"{o.cpu_seconds / max(o.spans_stored, 1) * 1e6:.0f}", f"{o.peak_rss_mb:.0f}",
         o.failures)
        for o in (ours, phoenix)
    ]  # fmt: skip
    verdict = "met" if ratio >= 300 else "NOT met"
    return (
        f"Load: sessions of {SPANS_PER_SESSION} spans (user properties, metadata, inputs, outputs), "
        f"{SESSIONS_PER_REQUEST} sessions per OTLP/HTTP protobuf request, {clients} concurrent clients, "
        f"{USERS} users. Phoenix: {PHOENIX}, `phoenix serve` with SQLite.\n\n"
        + table(
            (
                "server",
                "spans sent",
                "spans queryable",
                "acked (s)",
                "queryable (s)",
                "spans/s",
                "server CPU (us/span)",
                "peak RSS (MB)",
                "failed requests",
            ),
            rows,
        )
        + f"\n\n**tracehive / Phoenix: {ratio:,.0f}x** stored-and-queryable spans per second "
        f"(target at least 300x: {verdict}); peak memory {ours.peak_rss_mb:.0f} MB vs {phoenix.peak_rss_mb:.0f} MB."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000, help="sessions sent to tracehive")
    parser.add_argument("--phoenix-sessions", type=int, default=300, help="sessions sent to Phoenix")
    parser.add_argument("--phoenix-timeout", type=float, default=90, help="seconds Phoenix gets to store them")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    ours = bench_tracehive(args.sessions, args.clients)
    phoenix = bench_phoenix(args.phoenix_sessions, args.clients, args.phoenix_timeout)
    body = report(ours, phoenix, args.clients)
    print("\n" + body)
    write_section("ingest", "Ingest (`python bench/ingest.py`)", body)


if __name__ == "__main__":
    main()
