"""Soak: two million spans at a steady rate; the server's memory must level off.

    python bench/soak.py [--spans 2000000] [--rate 8000]

Four clients send 500-span requests (sessions of ten spans) paced to ``--rate`` spans per second,
a fresh batch of sessions each time, for as long as ``--spans`` takes. Every 100,000 spans the
resident memory of the server and of its ingest workers is read; the verdict compares the sum
after the last request with its value at 500,000 spans (after warm-up), target within 10%.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

from common import ADMIN_KEY, DATA, proc_memory_mb, start_tracehive, table, write_section
from otlp_load import SPANS_PER_TURN, build_requests, send

SESSIONS_PER_REQUEST = 50
SPANS_PER_REQUEST = SESSIONS_PER_REQUEST * SPANS_PER_TURN
REQUESTS_PER_ROUND = 200  # 100,000 spans: built, sent at the rate, then memory is read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=2_000_000)
    parser.add_argument("--rate", type=float, default=8_000, help="spans per second sent")
    args = parser.parse_args()
    data_dir = DATA / "soak-tracehive"
    shutil.rmtree(data_dir, ignore_errors=True)
    server = start_tracehive(data_dir, log_name="soak-tracehive.log")
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    rows, readings = [], {}
    started = time.monotonic()
    failures = 0
    try:
        for round_ in range(args.spans // (REQUESTS_PER_ROUND * SPANS_PER_REQUEST)):
            bodies = build_requests(round_ + 1, REQUESTS_PER_ROUND * SESSIONS_PER_REQUEST, SESSIONS_PER_REQUEST, 100)
            round_start = time.monotonic()
            sent = send(f"{server.url}/v1/traces", auth, bodies, 4, interval=SPANS_PER_REQUEST / args.rate)
            failures += sent.failures
            took = time.monotonic() - round_start
            done = (round_ + 1) * REQUESTS_PER_ROUND * SPANS_PER_REQUEST
            main_mb = server_rss(server.process.pid)
            total = server.rss_mb()
            readings[done] = total
            rate = len(bodies) * SPANS_PER_REQUEST / took
            rows.append((f"{done:,}", f"{time.monotonic() - started:.0f}", f"{rate:,.0f}", f"{main_mb:.0f}",
                         f"{total - main_mb:.0f}", f"**{total:.0f}**", f"{os.getloadavg()[0]:.1f}"))  # fmt: skip
            print(" | ".join(rows[-1]), flush=True)
        peak = server.peak_rss_mb()
    finally:
        server.stop()
    warm = readings.get(500_000) or next(iter(readings.values()))
    last = list(readings.values())[-1]
    change = (last - warm) / warm * 100
    after = [mb for spans, mb in readings.items() if spans >= 500_000] or list(readings.values())
    body = (
        f"{args.spans:,} spans in 500-span OTLP/HTTP requests from 4 clients, paced to {args.rate:,.0f} spans/s "
        f"(sessions of {SPANS_PER_TURN} spans as in `ingest.py`), {failures} failed requests. Memory is the resident "
        "set of the server and of its ingest workers after each 100,000 spans.\n\n"
        + table(("spans", "s", "spans/s sent", "server MB", "workers MB", "total MB", "load avg"), rows)
        + f"\n\nAfter warm-up (500,000 spans) **{warm:.0f} MB**, at the end **{last:.0f} MB**: {change:+.1f}% "
        f"(target within 10%: {'met' if abs(change) <= 10 else 'NOT met'}); every reading from then on between "
        f"{min(after):.0f} and {max(after):.0f} MB ({(max(after) - warm) / warm * 100:+.1f}% at most); peak (sum "
        f"of each process's high-water mark) {peak:.0f} MB."
    )
    print("\n" + body)
    write_section("soak", "Soak (`python bench/soak.py`)", body)


def server_rss(pid: int) -> float:
    return proc_memory_mb(pid, "VmRSS")


if __name__ == "__main__":
    main()
