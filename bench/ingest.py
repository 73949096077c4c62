"""Ingest benchmark: four shapes of OTLP/HTTP traffic against tracehive, Arize Phoenix and MLflow.

    python bench/ingest.py [--scale 1.0] [--peer-seconds 20] [--only tracehive]

Each server is started as a user starts it and gets, one after another, the four shapes real apps
send: (1) 4 clients sending 500-span requests; (2) 16 clients sending 10-span requests; (3) one
client sending one span per request, one after another, timed against the server's cheapest GET;
(4) long sessions, 200 spans each arriving in 20 requests over the run, interleaved with other
sessions. A shape's clock runs from its first request until the server's own read API shows every
span it acknowledged. The peers store about a hundred spans per second, so they get a smaller load
and a time limit; their rate is what they stored over the time it took.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

from common import DATA, percentile, table, write_section
from otlp_load import SPANS_PER_TURN, build_long_sessions, build_requests, build_single_spans, get_latencies, send
from peers import MLFLOW, PHOENIX, STARTERS, Peer

USERS = 100


@dataclass
class Shape:
    key: str
    title: str
    clients: int
    spans_per_request: int
    bodies: Callable[[int, float], list[bytes]]  # (run, scale) -> request bodies


def _long(run: int, scale: float) -> list[bytes]:
    return build_long_sessions(run, max(5, int(100 * scale)), 20, 5, USERS)


SHAPES = (
    Shape("1", "4 clients, 500-span requests", 4, 500,
          lambda run, scale: build_requests(run, max(50, int(10_000 * scale)), 50, USERS)),
    Shape("2", "16 clients, 10-span requests", 16, 10,
          lambda run, scale: build_requests(run, max(16, int(2_000 * scale)), 1, USERS)),
    Shape("3", "1 client, 1 span per request, sequential", 1, 1,
          lambda run, scale: build_single_spans(run, max(50, int(1_000 * scale)), USERS)),
    Shape("4", "long sessions: 200 spans in 20 requests each, 5 sessions per 50-span request, 4 clients", 4, 50,
          _long),
)  # fmt: skip


@dataclass
class Result:
    spans_sent: int
    spans_stored: int
    seconds: float
    cpu_seconds: float
    latencies: list[float]
    failures: int
    load: float
    health_p50: float | None = None

    @property
    def rate(self) -> float:
        # A peer still storing an earlier shape's spans can count more than this shape sent.
        return min(self.spans_stored, self.spans_sent) / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_span(self) -> float:
        return self.cpu_seconds / max(self.spans_stored, 1) * 1e6


def wait_stored(count: Callable[[], int], expected: int, deadline: float) -> tuple[int, float]:
    """Poll ``count`` until it reaches ``expected`` or the deadline passes; (count, when)."""
    while True:
        stored = count()
        now = time.monotonic()
        if stored >= expected or now >= deadline:
            return stored, now
        time.sleep(0.1)


def settled_count(count: Callable[[], int], deadline_seconds: float = 60) -> int:
    """The stored count once it stops moving: a peer that stores after answering may still be
    storing the previous shape, which must not count toward the next."""
    deadline = time.monotonic() + deadline_seconds
    last = count()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = count()
        if now == last:
            return now
        last = now
    return last


def run_shape(peer: Peer, shape: Shape, run: int, scale: float, budget: float) -> Result:
    bodies = shape.bodies(run, scale)
    before = settled_count(peer.count)
    health = None
    if shape.key == "3":
        health = get_latencies(peer.health, 100)
    cpu_before = peer.server.cpu_seconds()
    started = time.monotonic()
    sent = send(peer.endpoint, peer.headers, bodies, shape.clients, deadline=started + budget)
    acked = (len(sent.latencies) - sent.failures) * shape.spans_per_request
    stored, done = wait_stored(peer.count, before + acked, sent.last_answer + budget)
    cpu = peer.server.cpu_seconds() - cpu_before
    if health is not None:
        health += get_latencies(peer.health, 100)
    result = Result(len(sent.latencies) * shape.spans_per_request, stored - before, done - sent.first_request,
                    cpu, sent.latencies, sent.failures, os.getloadavg()[0],
                    None if health is None else percentile(health, 0.5))  # fmt: skip
    print(f"  shape {shape.key}: {result.spans_stored:,}/{result.spans_sent:,} stored in {result.seconds:.1f} s, "
          f"{result.rate:,.0f} spans/s, p50 {percentile(sent.latencies, 0.5) * 1e3:.1f} ms, "
          f"p95 {percentile(sent.latencies, 0.95) * 1e3:.1f} ms, {result.cpu_us_per_span:,.0f} us CPU/span, "
          f"{sent.failures} failed, load {result.load:.1f}", flush=True)  # fmt: skip
    return result


def disk_bytes(path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@dataclass
class PeerRun:
    name: str
    results: dict[str, Result]
    peak_rss_mb: float
    bytes_per_span: float
    spans_stored: int


def bench_peer(name: str, scale: float, budget: float) -> PeerRun:
    data_dir = DATA / f"ingest-{name}"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    print(f"{name}: starting...", flush=True)
    peer = STARTERS[name](data_dir)
    empty = disk_bytes(data_dir)
    results = {}
    try:
        for number, shape in enumerate(SHAPES):
            results[shape.key] = run_shape(peer, shape, run=number + 1, scale=scale, budget=budget)
        peak = peer.server.peak_rss_mb()
        stored = peer.count()
    finally:
        peer.server.stop()
    size = disk_bytes(data_dir) - empty  # after a clean stop: write-ahead logs folded in
    return PeerRun(name, results, peak, size / max(stored, 1), stored)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def report(runs: list[PeerRun]) -> str:
    ours = runs[0]
    peers = runs[1:]
    lines = []
    rows = []
    for shape in SHAPES:
        for run in runs:
            r = run.results[shape.key]
            extra = f" (health {_ms(r.health_p50)})" if r.health_p50 is not None else ""
            rows.append((shape.key, run.name, f"{r.spans_stored:,}/{r.spans_sent:,}", f"{r.seconds:.1f}",
                         f"**{r.rate:,.0f}**", _ms(percentile(r.latencies, 0.5)) + extra,
                         _ms(percentile(r.latencies, 0.95)), f"{r.cpu_us_per_span:,.0f}", r.failures,
                         f"{r.load:.1f}"))  # fmt: skip
    header = ("shape", "server", "spans stored/sent", "s", "spans/s", "p50 ms", "p95 ms", "CPU us/span",
              "failed", "load avg")  # fmt: skip
    lines.append(table(header, rows))
    res = ours.results
    shape2_ratio = res["2"].rate / res["1"].rate
    shape3_ratio = percentile(res["3"].latencies, 0.5) / res["3"].health_p50
    shape4_ratio = res["4"].cpu_us_per_span / res["1"].cpu_us_per_span
    shape4_rate = res["1"].rate / res["4"].rate
    verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    lines.append("")
    lines.append("| target | measured | status |\n|---|---|---|")
    lines.append(f"| shape 2 at least 0.4x shape 1's spans/s | {shape2_ratio:.2f}x | {verdict(shape2_ratio >= 0.4)} |")
    lines.append(
        f"| shape 3 p50 at most 5x `GET /api/v1/health` p50 | {shape3_ratio:.1f}x | {verdict(shape3_ratio <= 5)} |"
    )
    lines.append(f"| shape 4 per span at most 2x shape 1 | CPU {shape4_ratio:.2f}x, time {shape4_rate:.2f}x | "
                 f"{verdict(max(shape4_ratio, shape4_rate) <= 2)} |")  # fmt: skip
    for shape in SHAPES:
        best = max(peers, key=lambda p: p.results[shape.key].rate) if peers else None
        if best is None:
            continue
        ratio = res[shape.key].rate / max(best.results[shape.key].rate, 1e-9)
        lines.append(f"| shape {shape.key} at least 30x the better peer | {ratio:,.0f}x {best.name} | "
                     f"{verdict(ratio >= 30)} |")  # fmt: skip
    rss = " ".join(f"{run.name} {run.peak_rss_mb:.0f} MB;" for run in runs)
    lines.append("")
    lines.append(f"Peak memory (sum of each process's VmHWM, server and its workers): {rss}")
    disk = " ".join(f"{run.name} {run.bytes_per_span:,.0f} B/span over {run.spans_stored:,} spans;" for run in runs)
    lines.append(f"Disk (data folder after a clean stop, less the empty server's): {disk}")
    return (
        f"Shapes: {'; '.join(f'({s.key}) {s.title}' for s in SHAPES)}. Each turn is a trace of "
        f"{SPANS_PER_TURN} spans with user properties, metadata, inputs and outputs. Peers: {PHOENIX} "
        f"(`phoenix serve`, SQLite), {MLFLOW} (`mlflow server --workers 1`, SQLite). Shape 3's p50 is "
        "next to the p50 of the server's health GET (tracehive `GET /api/v1/health`, Phoenix "
        "`/healthz`, MLflow `/health`) measured before and after it.\n\n" + "\n".join(lines)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="tracehive's load, 1.0 = 100k + 20k + 1k + 20k spans")
    parser.add_argument("--peer-scale", type=float, default=0.05, help="the peers' load relative to tracehive's")
    parser.add_argument("--peer-seconds", type=float, default=20, help="seconds each peer gets per shape")
    parser.add_argument("--only", choices=sorted(STARTERS), action="append", help="run only these servers")
    args = parser.parse_args()
    names = args.only or ["tracehive", "phoenix", "mlflow"]
    runs = []
    for name in names:
        ours = name == "tracehive"
        runs.append(bench_peer(name, args.scale if ours else args.scale * args.peer_scale,
                               600 if ours else args.peer_seconds))  # fmt: skip
    body = report(runs)
    print("\n" + body)
    if names[0] == "tracehive" and len(names) == 3:
        write_section("ingest", "Ingest (`python bench/ingest.py`)", body)


if __name__ == "__main__":
    main()
