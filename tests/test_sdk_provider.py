"""``tracer.provider``: spans of any OpenTelemetry instrumentor join the traced call and its session.

The instrumentor here is the smallest one there is (it takes ``tracer_provider`` and starts spans
with a plain OTel tracer); the real OpenInference / OpenLLMetry ones are tested with the LLM mapping.
"""

from __future__ import annotations

import json
import textwrap
import uuid

PROGRAM = """
from opentelemetry.sdk.trace import TracerProvider
from tracehive import HoneyHiveTracer, trace

class PlainInstrumentor:
    is_instrumented_by_opentelemetry = False  # as OpenTelemetry's BaseInstrumentor says it
    calls = 0

    def instrument(self, tracer_provider=None, **kwargs):
        self.calls += 1
        self.is_instrumented_by_opentelemetry = True
        self.otel = tracer_provider.get_tracer("plain.instrumentor", "1.0")

plain = PlainInstrumentor()
tracer = HoneyHiveTracer.init(session_name="provider", instrumentors=[plain])
assert isinstance(tracer.provider, TracerProvider)
tracer.enrich_session(user_properties={"user_id": "u-provider"})

@trace(event_type="chain")
def answer(question):
    with plain.otel.start_as_current_span("chat m", attributes={"gen_ai.request.model": "m"}):
        with plain.otel.start_as_current_span("http post"):
            pass
    return "ok"

answer("first")
with tracer.with_session(session_name="second", user_properties={"user_id": "u-second"}) as second:
    answer("again")
# Outside any traced call: still the tracer's session, as a root.
with tracer.provider.get_tracer("direct").start_as_current_span("lonely"):
    pass
HoneyHiveTracer.init(session_name="again", instrumentors=[plain])
assert plain.calls == 1  # instrumentors are attached once per process
assert tracer.flush()
print(tracer.session_id, second)
"""


def flatten(events: list[dict]) -> list[dict]:
    """A session's event tree as a list."""
    return [found for event in events for found in (event, *flatten(event["children"]))]


def test_instrumentor_spans_nest_under_the_traced_call_in_its_session(server) -> None:
    project = f"provider-{uuid.uuid4().hex[:8]}"
    done = server.run_program(textwrap.dedent(PROGRAM), project=project)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.split()

    for session_id, user, extra in ((first, "u-provider", {"lonely"}), (second, "u-second", set())):
        stored = server.get(f"/api/v1/sessions/{session_id}")
        assert stored["user_properties"]["user_id"] == user
        by_name = {event["event_name"]: event for event in flatten(stored["events"])}
        assert set(by_name) == {"answer", "chat m", "http post"} | extra, json.dumps(stored["events"])
        assert by_name["chat m"]["parent_id"] == by_name["answer"]["event_id"]
        assert by_name["http post"]["parent_id"] == by_name["chat m"]["event_id"]
        assert by_name["chat m"]["config"]["model"] == "m", by_name["chat m"]
        assert by_name["answer"]["parent_id"] is None
    assert server.get(f"/api/v1/sessions/{first}")["session_name"] == "provider"
