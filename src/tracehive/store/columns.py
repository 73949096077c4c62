"""Events as Arrow columns, the form both stores insert them in (DuckDB through a registered
table, ClickHouse through clickhouse-connect's Arrow insert)."""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa

from tracehive.model import NAMESPACES, Event

# What the stores answer, in this order: a record's own fields, then its namespaces.
SESSION_COLUMNS = (
    "project", "session_id", "session_name", "source", "user_id", "start_time", "end_time",
    "duration_ms", "event_count", "error_count", *NAMESPACES,
)  # fmt: skip
EVENT_COLUMNS = (
    "project", "event_id", "session_id", "trace_id", "parent_id", "event_type", "event_name",
    "start_time", "end_time", "duration_ms", "error", *NAMESPACES,
)  # fmt: skip


def dumps(value: Any) -> str:
    """A namespace as JSON text; a missing one is ``{}``."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode() if value else "{}"


def _namespace_text(event: Event, ns: str) -> str:
    texts = event.namespace_json
    if texts is not None:
        return texts.get(ns, "{}")
    return dumps(event.namespaces.get(ns))


def unique_events(events: list[Event]) -> list[Event]:
    """The events not repeated in the list (a retry inside one batch keeps its first copy)."""
    return list({(e.project, e.event_id): e for e in events}.values())


def event_columns(events: list[Event], time_type: pa.DataType) -> dict[str, Any]:
    """One column per event field, for the events not repeated in the list (see
    :func:`unique_events`); times in microseconds as ``time_type``."""
    unique = unique_events(events)
    columns: dict[str, Any] = {
        "project": [e.project for e in unique],
        "event_id": [e.event_id for e in unique],
        "session_id": [e.session_id for e in unique],
        "trace_id": [e.trace_id for e in unique],
        "parent_id": [e.parent_id for e in unique],
        "event_type": [e.event_type for e in unique],
        "event_name": [e.event_name for e in unique],
        "start_time": pa.array([e.start_ns // 1000 for e in unique], pa.timestamp("us")).cast(time_type),
        "end_time": pa.array([e.end_ns // 1000 for e in unique], pa.timestamp("us")).cast(time_type),
        "duration_ms": pa.array([e.duration_ms for e in unique], pa.float64()),
        "error": pa.array([e.error for e in unique], pa.string()),
    }
    for ns in NAMESPACES:
        columns[ns] = [_namespace_text(e, ns) for e in unique]
    return columns
