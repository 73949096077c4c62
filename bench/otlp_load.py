"""The ingest load: OTLP/HTTP protobuf requests of whole sessions, sent by a few concurrent clients.

Every span carries what an instrumented LLM app sends: a session id, the user's id and properties,
nested metadata, inputs and outputs. Requests are encoded before the clock starts, so the clients
spend their time on the wire, not building protobufs.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

SPANS_PER_SESSION = 10
PLANS = ("free", "pro", "premium", "enterprise")
SPAN_KINDS = (("chain", "CHAIN"), ("model", "LLM"), ("tool", "TOOL"))


def _kv(key: str, value: str | int | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def session_spans(run: int, session: int, users: int, start_ns: int) -> list[Span]:
    """One session: a root chain and nine children (model and tool calls), 1 ms apart."""
    trace_id = (run << 64 | session).to_bytes(16, "big")
    user = session % users
    user_properties = {"user_id": f"user_{user}", "email": f"user_{user}@example.com",
                       "plan": PLANS[user % len(PLANS)], "is_beta": user % 3 == 0}  # fmt: skip
    metadata = {"request_id": f"req-{run}-{session}", "env": "prod",
                "flags": {"new_ui": session % 2 == 0, "variant": f"v{session % 5}"}}  # fmt: skip
    spans = []
    for index in range(SPANS_PER_SESSION):
        event_type, kind = ("chain", "CHAIN") if index == 0 else SPAN_KINDS[1 + index % 2]
        begin = start_ns + index * 1_000_000
        span = Span(
            trace_id=trace_id,
            span_id=(session * SPANS_PER_SESSION + index + 1 + (run << 40)).to_bytes(8, "big"),
            parent_span_id=b"" if index == 0 else (session * SPANS_PER_SESSION + 1 + (run << 40)).to_bytes(8, "big"),
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
                _kv("tracehive.inputs", json.dumps({"query": f"question {session}.{index} about hiking boots"})),
                _kv("tracehive.outputs", json.dumps({"answer": f"answer {session}.{index}: " + "lorem " * 20})),
                _kv("input.value", f"question {session}.{index}"),
                _kv("output.value", f"answer {session}.{index}"),
            ]
        )
        spans.append(span)
    return spans


def build_requests(run: int, sessions: int, sessions_per_request: int, users: int) -> list[bytes]:
    """``sessions`` sessions in requests of ``sessions_per_request`` each, as protobuf bodies."""
    now = time.time_ns()
    bodies = []
    for first in range(0, sessions, sessions_per_request):
        request = ExportTraceServiceRequest()
        resource = request.resource_spans.add()
        resource.resource.attributes.append(_kv("service.name", "bench-app"))
        scope = resource.scope_spans.add()
        for session in range(first, min(first + sessions_per_request, sessions)):
            scope.spans.extend(session_spans(run, session, users, now + session * 1000))
        bodies.append(request.SerializeToString())
    return bodies


@dataclass
class Sent:
    first_request: float  # time.monotonic() when the first request started
    last_answer: float
    failures: int


def send(endpoint: str, headers: dict[str, str], bodies: list[bytes], clients: int) -> Sent:
    """POST every body, ``clients`` connections at once; each client takes the next unsent body."""
    parts = urlsplit(endpoint)
    lock = threading.Lock()
    pending = list(reversed(bodies))
    failures = [0]
    all_headers = {"Content-Type": "application/x-protobuf", **headers}

    def client() -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
        while True:
            with lock:
                if not pending:
                    break
                body = pending.pop()
            for _ in range(50):  # an overloaded server says 503: retry, as an exporter would
                connection.request("POST", parts.path, body=body, headers=all_headers)
                response = connection.getresponse()
                response.read()
                if response.status != 503:
                    break
                time.sleep(0.05)
            if response.status != 200:
                with lock:
                    failures[0] += 1
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Sent(started, time.monotonic(), failures[0])
