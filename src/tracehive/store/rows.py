"""How both stores turn database rows into the answers of the store interface, so that DuckDB and
ClickHouse answer alike to the character."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from tracehive.model import NAMESPACES
from tracehive.store.base import Row


def iso(value: datetime | None) -> str | None:
    """A stored time (naive UTC, or aware) as ISO 8601 with a ``Z``."""
    if value is None:
        return None
    moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat() + "Z"


def record_row(columns: Iterable[str], values: Iterable[Any]) -> Row:
    """A session or event row: namespaces parsed from JSON text, times as ISO strings."""
    row = dict(zip(columns, values, strict=True))
    for ns in NAMESPACES:
        row[ns] = orjson.loads(row[ns]) if row[ns] else {}
    for key in ("start_time", "end_time"):
        row[key] = iso(row[key])
    return row


def stats(error_rate: float | None, quantiles: list[float] | None) -> Row:
    """Per-group figures. ClickHouse's quantiles of no durations are NaN where DuckDB's are NULL."""
    p50, p95 = (None if q is None or math.isnan(q) else q for q in quantiles) if quantiles else (None, None)
    return {"error_rate": float(error_rate or 0.0), "p50_ms": p50, "p95_ms": p95}


def group_value(text: str | None) -> Row:
    """A group's key, from the JSON text of the grouped field (None when the field is absent)."""
    return {"value": None if text is None else orjson.loads(text), "missing": text is None}


def user_row(
    user_id: str,
    sessions: int,
    error_rate: float | None,
    quantiles: list[float] | None,
    events: int | None,
    errors: int | None,
    first: datetime | None,
    last: datetime | None,
    properties: str | None,
) -> Row:
    """One row of the users view, from the columns both stores select in this order."""
    return {
        "user_id": user_id,
        "session_count": sessions,
        "event_count": int(events or 0),
        "error_count": int(errors or 0),
        "first_seen": iso(first),
        "last_seen": iso(last),
        "user_properties": orjson.loads(properties) if properties else {},
        **stats(error_rate, quantiles),
    }


def unpriced_row(project: str, model: str, provider: str | None, calls: int, last_seen: Any) -> Row:
    """A model seen in model events without a cost: one the price table and overrides miss."""
    return {"project": project, "model": model, "provider": provider or None, "calls": calls,
            "last_seen": iso(last_seen)}  # fmt: skip
