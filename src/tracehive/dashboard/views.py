"""The state of a dashboard view, read from and written back to its URL, so a link shows a
colleague the same thing; and the small reshaping pages need (tables, the event timeline)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import HTTPException, Request

from tracehive.dashboard.render import literal
from tracehive.model import (
    CHAT_HISTORY,
    COMPLETION_TOKENS,
    COST,
    HYPERPARAMETERS,
    MODEL,
    MODEL_EVENT_TYPE,
    PROMPT_TOKENS,
    PROVIDER,
    TOOL_CALLS,
    TOTAL_TOKENS,
)
from tracehive.server import api
from tracehive.server.auth import Principal
from tracehive.store.base import Row, SessionQuery

RANGES = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(days=1),
          "7d": timedelta(days=7), "30d": timedelta(days=30), "all": None}  # fmt: skip
PARAMS = ("project", "filter", "range", "from", "to", "cols", "split", "by")
MAX_COLUMNS = 3
# Where LLM usage is usually recorded, most specific first.
TOKEN_KEYS = ("total_tokens", "tokens")
COST_KEYS = ("cost", "total_cost")
SECTION_TITLES = {
    "inputs": "Inputs",
    "outputs": "Outputs",
    "user_properties": "User Properties",
    "metadata": "Metadata",
    "metrics": "Metrics",
    "feedback": "Feedback",
    "config": "Config",
}


@dataclass
class View:
    """The query string of a dashboard page, as the page understands it."""

    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_request(cls, request: Request) -> View:
        return cls({k: request.query_params[k].strip() for k in PARAMS if request.query_params.get(k, "").strip()})

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    @property
    def range(self) -> str:
        chosen = self.get("range", "all")
        return chosen if chosen in RANGES else "all"

    @property
    def columns(self) -> list[str]:
        return [c.strip() for c in self.get("cols").split(",") if c.strip()][:10]

    def url(self, path: str, **changes: str | None) -> str:
        """This view's URL on ``path`` with some parameters changed (None removes one)."""
        merged = {**self.values, **changes}
        query = urlencode({k: v for k, v in merged.items() if v})
        return f"{path}?{query}" if query else path

    def scope(self, who: Principal, request: Request) -> SessionQuery:
        """The sessions the view is about; 4xx ``HTTPException`` on a bad filter or time."""
        start = self.get("from")
        delta = RANGES[self.range]
        if not start and delta is not None:
            start = datetime.now(UTC).replace(tzinfo=None) - delta
            start = start.isoformat()
        return api.session_scope(request, who=who, project=self.get("project") or None, filter=self.get("filter"),
                                 from_=start or None, to=self.get("to") or None)  # fmt: skip


def pick_columns(view: View, sessions: list[Row]) -> list[str]:
    """User property columns: the ones the URL names, else the commonest on the page."""
    if view.columns:
        return view.columns
    counts = Counter(k for s in sessions for k in s["user_properties"] if k != "user_id")
    return [key for key, _ in counts.most_common(MAX_COLUMNS)]


def usage(row: Row, names: tuple[str, ...]) -> float | None:
    """A usage figure (tokens, cost) from metrics or metadata, where the app recorded one by hand."""
    for namespace in ("metrics", "metadata"):
        for name in names:
            value = row[namespace].get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return value
    return None


def with_usage(sessions: list[Row]) -> list[Row]:
    """Tokens and cost of each session: the roll-ups of its model events, else what the app
    recorded on the session itself."""
    return [
        {
            **s,
            "tokens": s["total_tokens"] if s["model_calls"] else usage(s, TOKEN_KEYS),
            "cost": s["cost"] if s["cost"] is not None else usage(s, COST_KEYS),
        }
        for s in sessions
    ]


def _message(found: Any) -> Row | None:
    """A chat message as the page shows it: role, content (text, or any JSON), tool calls (name,
    arguments); None for something that is not a message."""
    if not isinstance(found, dict):
        return None
    calls = found.get(TOOL_CALLS)
    return {
        "role": found.get("role"),
        "content": found.get("content"),
        "tool_calls": [_tool_call(c) for c in calls] if isinstance(calls, list) else [],
    }


def _tool_call(found: Any) -> Row:
    """OpenAI's shape ({id, type, function: {name, arguments}}) and the flat {name, arguments}."""
    if not isinstance(found, dict):
        return {"name": None, "arguments": found, "id": None}
    inner = found.get("function") if isinstance(found.get("function"), dict) else found
    return {"name": inner.get("name"), "arguments": inner.get("arguments"), "id": found.get("id")}


def model_call(event: Row | None) -> Row | None:
    """What a model event's page shows first: its model, provider, parameters, usage and cost, and
    its conversation (``inputs.chat_history``, then the reply in ``outputs``)."""
    if event is None or event["event_type"] != MODEL_EVENT_TYPE:
        return None
    config, metadata, outputs = event["config"], event["metadata"], event["outputs"]
    history = event["inputs"].get(CHAT_HISTORY)
    messages = [m for m in map(_message, history if isinstance(history, list) else []) if m is not None]
    reply = _message(outputs) if outputs.get("content") is not None or outputs.get(TOOL_CALLS) else None
    parameters = config.get(HYPERPARAMETERS)
    return {
        "model": config.get(MODEL),
        "provider": config.get(PROVIDER),
        "parameters": parameters if isinstance(parameters, dict) else {},
        "usage": {key: metadata[key] for key in (PROMPT_TOKENS, COMPLETION_TOKENS, TOTAL_TOKENS) if key in metadata},
        "cost": metadata.get(COST),
        "messages": messages,
        "reply": reply,
    }


def _ns(iso: str | None) -> float | None:
    return None if not iso else datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def events_offset(text: str | None) -> int:
    """The ``events`` parameter of a session page: how many events earlier pages hold."""
    if not text:
        return 0
    if not text.isdigit() or len(text) > 12 or int(text) > api.MAX_EVENTS_OFFSET:
        raise HTTPException(400, f"events: expected a count of events up to {api.MAX_EVENTS_OFFSET}, got {text!r}")
    return int(text)


def event_pages(session: Row, per_page: int) -> Row | None:
    """What the session page says about its page of events: which ones it shows out of how many,
    and the offsets of the pages before and after (None when it shows them all)."""
    if not session["events_truncated"]:
        return None
    first = session["events_offset"]
    return {
        "first": first + 1 if session["events_shown"] else first,
        "last": first + session["events_shown"],
        "total": session["event_count"],
        "hidden": max(session["event_count"] - session["events_shown"], 0),
        "previous": max(first - per_page, 0) if first > 0 else None,
        "next": session["next_events_offset"],
    }


def timeline(session: Row) -> list[Row]:
    """The event tree depth first, each event with its depth and its bar (left and width in
    percent of the session's span)."""
    flat: list[Row] = []
    stack = [(node, 0) for node in reversed(session["events"])]
    while stack:
        node, depth = stack.pop()
        flat.append({**node, "depth": depth})
        stack.extend((child, depth + 1) for child in reversed(node["children"]))
    starts = [t for t in (_ns(e["start_time"]) for e in flat) if t is not None]
    ends = [t for t in (_ns(e["end_time"]) for e in flat) if t is not None]
    first = min(starts + [t for t in [_ns(session["start_time"])] if t is not None], default=0.0)
    last = max(ends + [t for t in [_ns(session["end_time"])] if t is not None], default=first)
    span = max(last - first, 1e-9)
    for event in flat:
        start = _ns(event["start_time"]) or first
        end = max(_ns(event["end_time"]) or start, start)
        event["bar_left"] = round((start - first) / span * 100, 3)
        event["bar_width"] = max(round((end - start) / span * 100, 3), 0.3)
    return flat


def sections(item: Row) -> list[tuple[str, Any]]:
    """The detail sections of a session or event, in the order the page shows them."""
    shown = [(SECTION_TITLES[ns], item.get(ns) or {}) for ns in SECTION_TITLES]
    return [*shown, ("Error", item.get("error"))] if "error" in item else shown


def group_filter(by: str, group: Row) -> str | None:
    """A filter that selects one group's sessions (None for a group of objects or lists)."""
    if group.get("other"):
        return None
    if group["missing"]:
        return f"not {by} exists"
    return None if isinstance(group["value"], dict | list) else f"{by} = {literal(group['value'])}"


def and_filter(current: str, extra: str) -> str:
    return f"({current}) and {extra}" if current else extra
