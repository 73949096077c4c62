"""The SDK's client-side redaction (``HoneyHiveTracer.init(..., redact=...)``): a program traced
with rules sends nothing clear. What it sends is captured by an OTLP endpoint on loopback."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracehive.privacy import Redactor, parse_rules

EMAIL = "carol.sdk-capture@example.com"
SECRET = "ab" * 32
RULES = [{"path": "user_properties.email", "action": "hash"}, {"pattern": "email", "action": "mask"}]
PROGRAM = f"""
import os
from tracehive import HoneyHiveTracer, trace
tracer = HoneyHiveTracer.init(api_key="k", project="p", server_url=os.environ["CAPTURE"],
                              redact=eval(os.environ["REDACT"]))
tracer.enrich_session(user_properties={{"user_id": "c1", "email": "{EMAIL}"}})

@trace
def answer(question):
    return "we will write to {EMAIL}"

print(answer("please reach me at {EMAIL}"))
# An instrumentor's span, with the prompt in a plain OpenTelemetry attribute.
instrumentor = tracer.provider.get_tracer("instrumentor")
with instrumentor.start_as_current_span("chat", attributes={{"gen_ai.prompt": "{EMAIL}"}}):
    pass
print("flushed", tracer.flush(timeout=20))
"""


@pytest.fixture()
def capture() -> Iterator[tuple[str, list[bytes]]]:
    """An OTLP/HTTP endpoint that keeps every body it is sent."""
    bodies: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    server.shutdown()


def run(capture_url: str, redact: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "CAPTURE": capture_url, "REDACT": repr(redact)}
    return subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=60)


def sent_attributes(bodies: list[bytes]) -> list[dict[str, str]]:
    found = []
    for body in bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                found += [{a.key: a.value.string_value for a in span.attributes} for span in ss.spans]
    return found


def test_client_side_rules_keep_the_value_from_being_sent(capture):
    url, bodies = capture
    done = run(url, {"rules": RULES, "secret": SECRET})
    assert done.returncode == 0, done.stderr
    # The program's own values are untouched.
    assert done.stdout.splitlines() == [f"we will write to {EMAIL}", "flushed True"]
    assert bodies and not any(EMAIL.encode() in body for body in bodies)
    spans = sent_attributes(bodies)
    profiles = [json.loads(s["tracehive.user_properties"]) for s in spans if "tracehive.user_properties" in s]
    expected = Redactor(parse_rules(RULES), bytes.fromhex(SECRET)).hash_value(EMAIL)
    assert {p["email"] for p in profiles} == {expected}  # what the server makes of it with this secret
    inputs = [json.loads(s["tracehive.inputs"]) for s in spans if "tracehive.inputs" in s]
    assert any(i.get("question") == "please reach me at c***@example.com" for i in inputs), inputs
    assert "c***@example.com" in [s.get("gen_ai.prompt") for s in spans]  # the instrumentor's span, masked


def test_without_a_secret_hash_rules_drop_and_bad_rules_send_nothing(capture):
    url, bodies = capture
    done = run(url, RULES)
    assert done.returncode == 0, done.stderr
    spans = sent_attributes(bodies)
    profiles = [json.loads(s["tracehive.user_properties"]) for s in spans if "tracehive.user_properties" in s]
    assert profiles and {p.get("email") for p in profiles} == {"[removed]"}
    bodies.clear()
    done = run(url, [{"pattern": "passport", "action": "mask"}])
    assert done.returncode == 0, done.stderr
    assert "redact[0].pattern" in done.stderr and bodies == []
    assert done.stdout.splitlines()[0] == f"we will write to {EMAIL}"  # the traced function still runs
