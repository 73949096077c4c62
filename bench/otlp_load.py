"""The ingest load: OTLP/HTTP protobuf requests in the shapes real apps send, and the clients that
send them.

Every span carries what an instrumented LLM app sends: a session id, the user's id and properties,
nested metadata, inputs and outputs. A session is a run of turns; each turn is a trace of ten spans
(a root chain and nine model and tool calls). Requests are encoded before the clock starts, so the
clients spend their time on the wire, not building protobufs.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

SPANS_PER_TURN = 10
PLANS = ("free", "pro", "premium", "enterprise")
SPAN_KINDS = (("chain", "CHAIN"), ("model", "LLM"), ("tool", "TOOL"))


def _kv(key: str, value: str | int | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def turn_spans(run: int, session: int, turn: int, users: int, start_ns: int) -> list[Span]:
    """Turn ``turn`` of a session: a trace of a root chain and nine children, 1 ms apart."""
    trace_id = (run << 96 | session << 32 | turn).to_bytes(16, "big")
    user = session % users
    user_properties = {"user_id": f"user_{user}", "email": f"user_{user}@example.com",
                       "plan": PLANS[user % len(PLANS)], "is_beta": user % 3 == 0}  # fmt: skip
    metadata = {"request_id": f"req-{run}-{session}", "env": "prod",
                "flags": {"new_ui": session % 2 == 0, "variant": f"v{session % 5}"}}  # fmt: skip
    first_span = (run << 48 | session << 16 | turn) * SPANS_PER_TURN + 1
    spans = []
    for index in range(SPANS_PER_TURN):
        event_type, kind = ("chain", "CHAIN") if index == 0 else SPAN_KINDS[1 + index % 2]
        begin = start_ns + index * 1_000_000
        span = Span(
            trace_id=trace_id,
            span_id=(first_span + index).to_bytes(8, "big"),
            parent_span_id=b"" if index == 0 else first_span.to_bytes(8, "big"),
            name=f"{event_type}_{index}",
            start_time_unix_nano=begin,
            end_time_unix_nano=begin + (5 - index % 5) * 1_000_000,
        )
        span.attributes.extend(
            [
                _kv("session.id", f"bench-{run}-{session}"),
                _kv("user.id", f"user_{user}"),
                _kv("openinference.span.kind", kind),
                _kv("tracehive.event_type", event_type),
                _kv("tracehive.user_properties", json.dumps(user_properties)),
                _kv("tracehive.metadata", json.dumps(metadata)),
                _kv("tracehive.inputs", json.dumps({"query": f"question {session}.{turn}.{index} about boots"})),
                _kv("tracehive.outputs", json.dumps({"answer": f"answer {session}.{turn}.{index}: " + "lorem " * 20})),
                _kv("input.value", f"question {session}.{turn}.{index}"),
                _kv("output.value", f"answer {session}.{turn}.{index}"),
            ]
        )
        spans.append(span)
    return spans


def encode(spans: list[Span]) -> bytes:
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.append(_kv("service.name", "bench-app"))
    resource.scope_spans.add().spans.extend(spans)
    return request.SerializeToString()


def build_requests(run: int, sessions: int, sessions_per_request: int, users: int) -> list[bytes]:
    """Sessions of one turn, ``sessions_per_request`` to a request (shapes 1 and 2)."""
    now = time.time_ns()
    return [
        encode(
            [
                span
                for s in range(first, min(first + sessions_per_request, sessions))
                for span in turn_spans(run, s, 0, users, now + s * 1000)
            ]
        )
        for first in range(0, sessions, sessions_per_request)
    ]


def build_single_spans(run: int, count: int, users: int) -> list[bytes]:
    """One span per request (shape 3): each the root of a turn of its own session."""
    now = time.time_ns()
    return [encode(turn_spans(run, s, 0, users, now + s * 1000)[:1]) for s in range(count)]


def build_long_sessions(run: int, sessions: int, turns: int, sessions_per_request: int, users: int) -> list[bytes]:
    """Long sessions (shape 4): each session's ``turns`` turns arrive in ``turns`` requests spread
    over the run; a request carries one turn of each of ``sessions_per_request`` sessions, as an
    app serving several conversations at once exports them. Sessions start staggered, so every
    request mixes sessions at different turns."""
    now = time.time_ns()
    groups = [list(range(first, min(first + sessions_per_request, sessions)))
              for first in range(0, sessions, sessions_per_request)]  # fmt: skip
    bodies = []
    for step in range(turns + len(groups) - 1):  # group g sends turn (step - g) at step
        for g, group in enumerate(groups):
            turn = step - g
            if 0 <= turn < turns:
                start = now + turn * 10**9
                bodies.append(encode([span for s in group for span in turn_spans(run, s, turn, users, start)]))
    return bodies


@dataclass
class Sent:
    first_request: float  # time.monotonic() when the first request started
    last_answer: float
    failures: int
    latencies: list[float] = field(default_factory=list)  # seconds per request, in completion order


def send(
    endpoint: str,
    headers: dict[str, str],
    bodies: list[bytes],
    clients: int,
    deadline: float = 1e18,
    interval: float = 0.0,
) -> Sent:
    """POST every body in order, ``clients`` connections at once, each taking the next unsent body;
    stop taking bodies at ``deadline`` (time.monotonic()); start requests at least ``interval``
    seconds apart (a steady rate)."""
    parts = urlsplit(endpoint)
    lock = threading.Lock()
    pending = list(reversed(bodies))
    next_start = [time.monotonic()]
    failures = [0]
    latencies: list[float] = []
    all_headers = {"Content-Type": "application/x-protobuf", **headers}

    def client() -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
        while True:
            with lock:
                if not pending or time.monotonic() >= deadline:
                    break
                body = pending.pop()
                wait = next_start[0] - time.monotonic()
                next_start[0] = max(next_start[0], time.monotonic()) + interval
            if wait > 0:
                time.sleep(wait)
            started = time.perf_counter()
            for _ in range(50):  # an overloaded server says 503: retry, as an exporter would
                connection.request("POST", parts.path, body=body, headers=all_headers)
                response = connection.getresponse()
                response.read()
                if response.status != 503:
                    break
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if response.status != 200:
                    failures[0] += 1
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Sent(started, time.monotonic(), failures[0], latencies)


def get_latencies(url: str, count: int, headers: dict[str, str] | None = None) -> list[float]:
    """Seconds per ``GET url`` over one kept-alive connection, one after another."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("GET", parts.path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        times.append(time.perf_counter() - started)
    connection.close()
    return times
