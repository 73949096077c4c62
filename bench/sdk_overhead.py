"""SDK overhead benchmark: the cost of one traced call that enriches its span with user properties.

    python bench/sdk_overhead.py [--calls 2000] [--rounds 7]

For each SDK, a function decorated with the SDK's tracing decorator calls the SDK's span enrichment
with five user properties; the same function undecorated is the baseline. Each SDK runs in a
process of its own (the peers in venvs of their own under bench/.venvs) with its exporter pointed
at a live loopback server: tracehive's SDK and the bare OpenTelemetry span at a tracehive server,
HoneyHive's and Langfuse's SDKs (whose export paths tracehive does not serve) at a sink server that
accepts any export.

Two figures per SDK, each the median over rounds, minus the bare function's:
- CPU per call: the process's CPU time (every thread) for the calls plus the flush that exports
  them, so the exporter's serialising and sending count too. The ratios use this figure.
- latency per call: wall time of the calls alone, what the calling code waits.
Rounds are smaller than every SDK's export queue, so no SDK gets cheaper by dropping spans.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

from common import ADMIN_KEY, DATA, start_tracehive, table, venv, write_section
from sink import Sink

HONEYHIVE = "honeyhive==1.7.0"
LANGFUSE = "langfuse>=5,<6"

HARNESS = """
import json, os, time
URL, KEY = os.environ["BENCH_URL"], os.environ["BENCH_KEY"]
CALLS, ROUNDS = int(os.environ["BENCH_CALLS"]), int(os.environ["BENCH_ROUNDS"])
PROPS = {"user_id": "user_12345", "email": "user@example.com", "plan": "premium", "is_beta": True,
         "last_action": "search"}

def handle(query, user_id):
    return f"results for {query!r}"
"""

MEASURE = """
def loop(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(CALLS):
        fn("best hiking boots", "user_12345")
    return time.perf_counter() - wall, cpu

for _ in range(CALLS):
    traced("warm", "up")
flush()
rounds = []
for _ in range(ROUNDS):
    bare_wall, cpu0 = loop(handle)
    bare_cpu = time.process_time() - cpu0
    wall, cpu0 = loop(traced)
    flush()
    cpu = time.process_time() - cpu0
    rounds.append([(cpu - bare_cpu) / CALLS * 1e6, (wall - bare_wall) / CALLS * 1e6])
print("RESULT " + json.dumps(rounds))
"""

# The same program for both SDKs: tracehive's is a drop-in for HoneyHive's.
HONEYHIVE_API = """
from {module} import HoneyHiveTracer, trace
tracer = HoneyHiveTracer.init(api_key=KEY, project="bench", server_url=URL, source="bench")

@trace
def traced(query, user_id):
    tracer.enrich_span(user_properties=PROPS)
    return handle(query, user_id)

def flush():
    assert {flush}, "flush did not finish"
"""

SETUPS = {
    "tracehive": HONEYHIVE_API.format(module="tracehive", flush="tracer.flush(timeout=60)"),
    "honeyhive 1.7.0": HONEYHIVE_API.format(module="honeyhive", flush="tracer.flush(timeout_millis=60000)"),
    "langfuse 5": """
from langfuse import Langfuse, observe
langfuse = Langfuse(public_key="pk-lf-bench", secret_key="sk-lf-bench", base_url=URL)

@observe()
def traced(query, user_id):
    langfuse.update_current_span(metadata=PROPS)
    return handle(query, user_id)

def flush():
    langfuse.flush()
""",
    "bare OpenTelemetry": """
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(
    OTLPSpanExporter(endpoint=URL + "/v1/traces", headers={"Authorization": "Bearer " + KEY})))
otel = provider.get_tracer("bench")
ATTRIBUTES = {"user." + key: value for key, value in PROPS.items()}

def traced(query, user_id):
    with otel.start_as_current_span("traced") as span:
        span.set_attributes(ATTRIBUTES)
        return handle(query, user_id)

def flush():
    assert provider.force_flush(60000), "flush did not finish"
""",
}


def run_sdk(name: str, python: str, url: str, calls: int, rounds: int) -> tuple[float, float]:
    """(CPU us per call, latency us per call), medians over rounds."""
    env = {**os.environ, "BENCH_URL": url, "BENCH_KEY": ADMIN_KEY, "BENCH_CALLS": str(calls),
           "BENCH_ROUNDS": str(rounds), "HH_API_KEY": ADMIN_KEY}  # fmt: skip
    program = HARNESS + SETUPS[name] + MEASURE
    done = subprocess.run([python, "-c", program], env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{name} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    measured = json.loads(lines[-1].removeprefix("RESULT "))
    cpu = statistics.median(r[0] for r in measured)
    latency = statistics.median(r[1] for r in measured)
    print(f"{name:>20}: {cpu:7.1f} us CPU per call, {latency:7.1f} us latency per call")
    return cpu, latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per round (below every export queue)")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    pythons = {
        "tracehive": sys.executable,
        "bare OpenTelemetry": sys.executable,
        "honeyhive 1.7.0": str(venv("honeyhive", HONEYHIVE)),
        "langfuse 5": str(venv("langfuse", LANGFUSE)),
    }
    data_dir = DATA / "sdk-tracehive"
    shutil.rmtree(data_dir, ignore_errors=True)
    server, sink = start_tracehive(data_dir), Sink()
    targets = {"tracehive": server.url, "bare OpenTelemetry": server.url}
    try:
        figures = {name: run_sdk(name, python, targets.get(name, sink.url), args.calls, args.rounds)
                   for name, python in pythons.items()}  # fmt: skip
    finally:
        server.stop()
        sink.stop()
    if sink.requests == 0:
        raise RuntimeError("the peers' exporters never reached the sink server")
    bare = figures["bare OpenTelemetry"][0]
    rows = [(name, f"{cpu:.1f}", f"{latency:.1f}", f"{cpu / bare:.2f}x", f"{figures['tracehive'][0] / cpu:.2f}x")
            for name, (cpu, latency) in figures.items()]  # fmt: skip
    ratio = figures["tracehive"][0] / bare
    body = (
        f"{args.rounds} rounds of {args.calls} calls per SDK; medians; overhead over the same undecorated "
        "function. CPU includes the export thread's work (the flush after each round).\n\n"
        + table(("SDK", "CPU us/call", "latency us/call", "vs bare OTel", "tracehive vs it"), rows)
        + f"\n\n**tracehive / bare OpenTelemetry span: {ratio:.2f}x** (target at most 1.5x: "
        f"{'met' if ratio <= 1.5 else 'NOT met'})."
    )
    print("\n" + body)
    write_section("sdk", "SDK overhead (`python bench/sdk_overhead.py`)", body)


if __name__ == "__main__":
    main()
