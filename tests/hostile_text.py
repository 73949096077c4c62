"""An SDK program that puts one piece of user text in every place the dashboard shows user text,
for the escaping (XSS) and bidi-isolation tests."""

from __future__ import annotations

HOSTILE_KEY_VALUE = "value of a hostile key"

_PROGRAM = """
from tracehive import HoneyHiveTracer, trace
from tracehive import attributes as A

TEXT, LONG, ERROR = TEXT_, LONG_, ERROR_

tracer = HoneyHiveTracer.init(session_name=TEXT, source=TEXT, session_id=SESSION_ID_)
tracer.enrich_session(
    user_properties={"user_id": USER_ID_, "plan": TEXT, TEXT: HOSTILE_KEY_VALUE_},
    metadata={TEXT: TEXT, "nested": {TEXT: [TEXT, {"deep": TEXT}]}, "long": LONG},
    metrics={TEXT: 1}, feedback={"comment": TEXT}, config={TEXT: TEXT},
)

@trace(event_type="tool", event_name=TEXT)
def hostile(question):
    raise RuntimeError(ERROR)

try:
    hostile(TEXT)
except RuntimeError:
    pass

span = tracer.otel_tracer.start_span("raw", attributes={
    A.SESSION_ID: tracer.session_id, A.PROJECT: tracer.project, A.EVENT_TYPE: TEXT, A.EVENT_NAME: "typed"})
span.end()
tracer.flush()
"""


def program_showing(text: str, *, session_id: str, user_id: str, long: str, error: str) -> str:
    """``text`` as session name and source, plan, keys and values of every namespace, event name,
    type and input; the other values where one value cannot serve (ids, a long string, an error)."""
    values = {"SESSION_ID_": session_id, "USER_ID_": user_id, "HOSTILE_KEY_VALUE_": HOSTILE_KEY_VALUE,
              "TEXT_": text, "LONG_": long, "ERROR_": error}  # fmt: skip
    program = _PROGRAM
    for name, value in values.items():
        program = program.replace(name, repr(value))
    return program
