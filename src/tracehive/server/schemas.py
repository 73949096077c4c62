"""Shapes of the query API's answers, for the OpenAPI spec and for response validation."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

Namespace = dict[str, Any]


class Health(BaseModel):
    status: str
    version: str
    store: str


class _Namespaces(BaseModel):
    inputs: Namespace = Field(default_factory=dict)
    outputs: Namespace = Field(default_factory=dict)
    user_properties: Namespace = Field(default_factory=dict, description="Who made the request.")
    metadata: Namespace = Field(default_factory=dict, description="What the request was.")
    metrics: Namespace = Field(default_factory=dict)
    feedback: Namespace = Field(default_factory=dict)
    config: Namespace = Field(default_factory=dict)


class _EventFields(BaseModel):
    event_id: str
    session_id: str
    project: str
    trace_id: str | None = None
    parent_id: str | None = None
    event_type: str
    event_name: str
    start_time: str | None = Field(None, description="ISO 8601, UTC")
    end_time: str | None = None
    duration_ms: float | None = None
    error: str | None = None


class Event(_Namespaces, _EventFields):
    """An event: its own fields first, then its namespaces."""


class EventNode(Event):
    children: list[EventNode] = Field(default_factory=list)
    parent_cycle: bool = Field(False, description="Its parent links form a cycle; shown as a root.")


class _SessionFields(BaseModel):
    session_id: str
    project: str
    session_name: str | None = None
    source: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    duration_ms: float | None = None
    event_count: int = 0
    error_count: int = 0
    model_calls: int = Field(0, description="Events of type model.")
    prompt_tokens: int = Field(0, description="Summed over the model events (`metadata.prompt_tokens`).")
    completion_tokens: int = 0
    total_tokens: int = Field(0, description="`metadata.total_tokens`, or prompt + completion where absent.")
    cost: float | None = Field(None, description="USD, summed over the model events; null when none had a cost.")


class Session(_Namespaces, _SessionFields):
    """A session: its own fields first, then its namespaces."""


class SessionWithEvents(Session):
    events: list[EventNode] = Field(default_factory=list, description="The event tree: roots, each with children.")
    events_offset: int = Field(0, description="How many events, in start order, come before this page.")
    events_shown: int = Field(0, description="Events in this page's tree; `event_count` is how many in all.")
    events_truncated: bool = Field(False, description="True when the tree holds only some of the events.")
    next_events_offset: int | None = Field(None, description="Pass as `events_offset` for the next page.")


class SessionPage(BaseModel):
    sessions: list[Session]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last.")


class _Stats(BaseModel):
    error_rate: float = Field(description="Share of the sessions with at least one error, 0 to 1.")
    p50_ms: float | None = Field(None, description="Median session duration.")
    p95_ms: float | None = None
    model_calls: int = Field(0, description="Summed over the sessions, like the tokens.")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float | None = Field(None, description="USD; null when no session had a known cost.")
    avg_total_tokens: float | None = Field(None, description="Per session.")
    avg_cost: float | None = Field(None, description="Per session whose cost is known.")


class User(_Stats):
    user_id: str
    session_count: int
    event_count: int
    error_count: int
    first_seen: str | None
    last_seen: str | None
    user_properties: Namespace


class UserList(BaseModel):
    users: list[User]


class Group(_Stats):
    value: Any = Field(description="The field's value in this group (JSON); null when missing.")
    missing: bool = Field(description="The sessions of this group do not have the field.")
    sessions: int
    users: int


class GroupList(BaseModel):
    by: str
    groups: list[Group]


class Point(_Stats):
    time: str = Field(description="Start of the bucket, ISO 8601, UTC.")
    sessions: int
    value: Any = Field(None, description="With `split_by`: the group's value.")
    missing: bool | None = None
    other: bool | None = Field(None, description="With `split_by`: the groups beyond the largest, together.")


class TimeSeries(BaseModel):
    bucket_seconds: int
    split_by: str | None = None
    points: list[Point]


class KnownField(BaseModel):
    field: str = Field(description="A field as the filter language writes it.")
    count: int = Field(description="Sessions of the sample that have it.")


class FieldList(BaseModel):
    sample_size: int = Field(description="How many of the newest sessions were looked at.")
    fields: list[KnownField]


class KnownValue(BaseModel):
    value: str = Field(description='A value as the filter language writes it: `"premium"`, `true`, `25`.')
    count: int


class ValueList(BaseModel):
    sample_size: int
    field: str
    values: list[KnownValue]


class Error(BaseModel):
    detail: str
