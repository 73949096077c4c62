"""One history of writes, the same for every store backend, and the questions asked of it.

The history holds what makes stores differ: enrichment before and after the events, nested
merges with null values and lists, retried batches, errors, sessions with enrichment only,
several projects and months, equal start times (for the cursor), and non-string user ids.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from tracehive.filters import Field, parse
from tracehive.model import Batch, Event, SessionUpdate, empty_namespaces
from tracehive.store.base import Cursor, EventQuery, SessionQuery

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in nanoseconds
SECOND = 1_000_000_000
DAY = 86_400 * SECOND


def namespaces(**values: dict) -> dict:
    found = empty_namespaces()
    found.update(values)
    return found


def event(session: str, event_id: str, start: int, *, parent: str | None = None, project: str = "web",
          error: str | None = None, **values: dict) -> Event:  # fmt: skip
    return Event(project, event_id, session, f"t-{session}", parent, "tool", f"step {event_id}",
                 start, start + 2 * SECOND, error, namespaces(**values))  # fmt: skip


def model_call(session: str, event_id: str, start: int, **metadata: Any) -> Event:
    """A model event in the project "llm" whose metadata holds ``metadata`` (its usage)."""
    found = event(session, event_id, start, project="llm", metadata=metadata)
    found.event_type = "model"
    return found


def update(session: str, project: str = "web", **fields: Any) -> SessionUpdate:
    plain = {key: fields.pop(key) for key in ("session_name", "source", "start_ns", "end_ns") if key in fields}
    return SessionUpdate(project, session, namespaces=namespaces(**fields), **plain)


S1_FIRST = {"user_id": "u1", "plan": "pro", "prefs": {"theme": "light", "langs": ["en"]}}
BATCHES: list[Batch] = [
    # enrichment arrives before any event of s-late
    Batch(sessions=[update("s-late", user_properties={"user_id": "u1", "plan": "free", "prefs": {"theme": "dark"}})]),
    Batch(
        events=[
            event("s1", "e1", T0, metadata={"model": "gpt-4o", "tags": ["a", "b"]}),
            event("s1", "e2", T0 + SECOND, parent="e1", error="Timeout", metrics={"latency_ms": 1200}),
            event("s2", "e3", T0 + 3 * SECOND, inputs={"q": "Hiking boots"}),
        ],
        sessions=[
            update("s1", session_name="chat", source="app", user_properties=S1_FIRST),
            update("s2", session_name="search", user_properties={"user_id": 42, "is_beta": True}),
        ],
    ),
    # the same batch again, as a client retrying after a lost answer: events count once
    Batch(events=[event("s1", "e1", T0, metadata={"model": "gpt-4o", "tags": ["a", "b"]})]),
    Batch(
        events=[
            event("s-late", "e4", T0 + 40 * DAY, metadata={"env": "prod"}),
            event("s-late", "e5", T0 + 40 * DAY + SECOND, parent="e4", outputs={"answer": None}),
            event("s3", "e6", T0 + 3 * SECOND, project="web"),  # the same start as s2
            event("o1", "e7", T0 + 5 * SECOND, project="other", metadata={"secret": True}),
        ],
        sessions=[
            # enrichment after the events: nested objects merge, lists and scalars replace, null stays
            update("s1", user_properties={"prefs": {"langs": ["fr", "de"], "font": None}, "email": "a@example.com"}),
            update("s1", session_name="", metadata={"flags": {"new_ui": True}}),
            update("s3", user_properties={"user_id": True}, metadata={"env": None}),
            update("s-only", session_name="enrich only", feedback={"rating": 5}),
            update("s2", end_ns=T0 + DAY, metadata={"env": "staging"}),
            update("o1", project="other", user_properties={"user_id": "u1"}),
        ],
    ),
    Batch(sessions=[update("s1", source="batch-job", user_properties={"plan": "enterprise"})]),
    # model calls: usage figures that count, and ones that do not (wrong types, negative, not a model event)
    Batch(
        events=[
            model_call("m-s", "m1", T0 + 10 * SECOND, prompt_tokens=12.7, completion_tokens=True, cost=0.0001),
            model_call("m-s", "m2", T0 + 11 * SECOND, prompt_tokens="5", completion_tokens=-3, total_tokens=7),
            event("m-s", "m3", T0 + 12 * SECOND, project="llm", metadata={"prompt_tokens": 1000, "cost": 5}),
            model_call("m-none", "m4", T0 + 20 * SECOND, prompt_tokens=2**62, total_tokens=1e300, cost=-1),
        ],
        sessions=[
            update("m-s", "llm", user_properties={"user_id": "u3", "plan": "premium"}),
            update("m-none", "llm", user_properties={"user_id": "u3", "plan": "free"}),
        ],
    ),
    # a retry of m1 (counted once) with a new call of a stored session
    Batch(
        events=[
            model_call("m-s", "m1", T0 + 10 * SECOND, prompt_tokens=12.7, completion_tokens=True, cost=0.0001),
            model_call("m-s", "m5", T0 + 13 * SECOND, prompt_tokens=200, completion_tokens=50, cost=0.0002),
        ]
    ),
]
LLM = ("llm",)

ALL = None
EVENT_FILTER = parse('metadata.model = "gpt-4o" or error exists or outputs.answer = null')
WEB = ("web",)


def _page_walk(store: Any) -> list[str]:
    """Every session id, two per page, following cursors as the API does."""
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = store.list_sessions(SessionQuery(projects=WEB, limit=2, cursor=cursor))
        seen += [row["session_id"] for row in page]
        if len(page) < 2 or page[-1]["start_time"] is None:
            break
        cursor = Cursor(datetime.fromisoformat(page[-1]["start_time"].removesuffix("Z")), page[-1]["session_id"])
    return seen


def _filtered(text: str, projects: tuple[str, ...] | None = WEB, **extra: Any) -> Callable[[Any], Any]:
    return lambda store: store.list_sessions(SessionQuery(projects=projects, filter=parse(text), **extra))


# name -> a question; every one must get the same, non-empty answer from every backend
QUESTIONS: dict[str, Callable[[Any], Any]] = {
    "all sessions": lambda s: s.list_sessions(SessionQuery(projects=ALL)),
    "one project": lambda s: s.list_sessions(SessionQuery(projects=WEB)),
    "limit": lambda s: s.list_sessions(SessionQuery(projects=ALL, limit=2)),
    "pages": _page_walk,
    "time range": lambda s: s.list_sessions(
        SessionQuery(projects=WEB, start_from=datetime(2026, 1, 1), start_to=datetime(2026, 2, 1))
    ),
    "merged nested value": _filtered('user_properties.prefs.langs contains "de" and user_properties.plan > "e"'),
    "null kept by the merge": _filtered("user_properties.prefs.font = null"),
    "typed user id": _filtered("user_properties.user_id = 42"),
    "user_id column": _filtered('user_id = "True" or user_id = "42"'),
    "missing matches !=": _filtered('metadata.env != "staging"'),
    "counts": _filtered("event_count >= 2 and error_count = 0"),
    "errors": _filtered("error_count > 0"),
    "duration": _filtered("duration_ms > 2500"),
    "exists": _filtered("feedback.rating exists"),
    "start_time filter": _filtered('start_time >= "2026-02-01"'),
    "session s1": lambda s: s.get_session("s1", WEB),
    "session enriched first": lambda s: s.get_session("s-late", ALL),
    "session enrichment only": lambda s: s.get_session("s-only", WEB),
    "event": lambda s: s.get_event("e2", ALL),
    "event with null output": lambda s: s.get_event("e5", WEB),
    "events": lambda s: s.list_events(EventQuery(projects=ALL)),
    "events, a filtered page": lambda s: s.list_events(EventQuery(WEB, filter=EVENT_FILTER, limit=2, offset=1)),
    # How a Langfuse score finds the session of the trace it names.
    "sessions of traces": lambda s: s.trace_sessions("web", ["t-s1", "t-s2", "t-unknown"]),
    "sessions of recent traces": lambda s: s.trace_sessions("web", ["t-s1", "t-s-late"], datetime(2026, 2, 1)),
    "users": lambda s: s.list_users(SessionQuery(projects=ALL)),
    "users of one project": lambda s: s.list_users(SessionQuery(projects=WEB)),
    "users filtered": lambda s: s.list_users(SessionQuery(projects=ALL, filter=parse('user_properties.plan = "free"'))),
    "groups by a nested key": lambda s: s.group_sessions(
        SessionQuery(projects=ALL), Field("user_properties", ("prefs", "theme"))
    ),
    "groups by a typed key": lambda s: s.group_sessions(
        SessionQuery(projects=ALL), Field("user_properties", ("user_id",))
    ),
    # a top-level key (read from DuckDB's key maps): s1's plan was changed by a later write
    "groups by a top-level key": lambda s: s.group_sessions(
        SessionQuery(projects=ALL), Field("user_properties", ("plan",))
    ),
    "groups by a key holding objects": lambda s: s.group_sessions(
        SessionQuery(projects=ALL), Field("user_properties", ("prefs",))
    ),
    "groups by a key holding null": lambda s: s.group_sessions(SessionQuery(projects=WEB), Field("metadata", ("env",))),
    "groups by a column": lambda s: s.group_sessions(SessionQuery(projects=WEB, limit=2), Field("source")),
    "groups by a number": lambda s: s.group_sessions(SessionQuery(projects=ALL), Field("event_count")),
    "time series": lambda s: s.session_timeseries(SessionQuery(projects=ALL)),
    "time series by day": lambda s: s.session_timeseries(SessionQuery(projects=WEB), bucket=86_400),
    "usage and a user property": _filtered('total_tokens > 100 and user_properties.plan = "premium"', LLM),
    "cost": _filtered("cost > 0.0002", ALL),
    "cost unknown": _filtered("cost = null and model_calls > 0", ALL),
    "session with model calls": lambda s: s.get_session("m-s", LLM),
    "usage per group": lambda s: s.group_sessions(SessionQuery(projects=LLM), Field("user_properties", ("plan",))),
    "usage over time": lambda s: s.session_timeseries(
        SessionQuery(projects=LLM), bucket=60, split_by=Field("user_properties", ("plan",))
    ),
    "time series split": lambda s: s.session_timeseries(
        SessionQuery(projects=ALL), bucket=86_400, split_by=Field("user_properties", ("plan",)), max_groups=1
    ),
}
