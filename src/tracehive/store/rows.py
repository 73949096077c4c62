"""How both stores turn database rows into the answers of the store interface, so that DuckDB and
ClickHouse answer alike to the character."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from tracehive.model import COST, NAMESPACES, TOTAL_TOKENS, USAGE_FIELDS
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
    if COST in row:
        row[COST] = _real(row[COST])
    return row


# Usage figures per group of sessions, the same SQL in both stores, after their own _STATS:
# sums of the sessions' roll-ups, and the average tokens and cost of a session (the average cost
# over the sessions whose cost is known).
USAGE_STATS = (*USAGE_FIELDS, "avg_total_tokens", "avg_cost")
USAGE_STATS_SQL = ", ".join(
    f"{sql} AS usage_{name}"
    for sql, name in zip(
        [*(f"sum({name})" for name in USAGE_FIELDS), f"avg({TOTAL_TOKENS})", f"avg({COST})"], USAGE_STATS, strict=True
    )
)


# Float sums differ in their last bits with the order of their terms, which no two engines share.
_DIGITS = 10


def _real(value: float | None) -> float | None:
    """A float figure, rounded so that sums made in different orders read alike; NaN as None."""
    return None if value is None or math.isnan(value) else round(float(value), _DIGITS)


def stats(error_rate: float | None, quantiles: list[float] | None, usage: Sequence[Any]) -> Row:
    """Per-group figures; ``usage`` is what USAGE_STATS_SQL selected. ClickHouse's quantiles of no
    durations are NaN where DuckDB's are NULL."""
    p50, p95 = (None if q is None or math.isnan(q) else q for q in quantiles) if quantiles else (None, None)
    *counts, cost, avg_tokens, avg_cost = usage
    return {
        "error_rate": float(error_rate or 0.0),
        "p50_ms": p50,
        "p95_ms": p95,
        **dict(zip(USAGE_FIELDS[:4], (int(n or 0) for n in counts), strict=True)),
        "cost": _real(cost),
        "avg_total_tokens": _real(avg_tokens),
        "avg_cost": _real(avg_cost),
    }


def group_value(text: str | None) -> Row:
    """A group's key, from the JSON text of the grouped field (None when the field is absent)."""
    return {"value": None if text is None else orjson.loads(text), "missing": text is None}


def user_row(user_id: str, sessions: int, error_rate: float | None, quantiles: list[float] | None,
             *rest: Any) -> Row:  # fmt: skip
    """One row of the users view, from the columns both stores select in this order: the user's
    stats, USAGE_STATS, events, errors, first and last seen, newest user properties."""
    usage, (events, errors, first, last, properties) = rest[: len(USAGE_STATS)], rest[len(USAGE_STATS) :]
    return {
        "user_id": user_id,
        "session_count": sessions,
        "event_count": int(events or 0),
        "error_count": int(errors or 0),
        "first_seen": iso(first),
        "last_seen": iso(last),
        "user_properties": orjson.loads(properties) if properties else {},
        **stats(error_rate, quantiles, usage),
    }


def unpriced_row(project: str, model: str, provider: str | None, calls: int, last_seen: Any) -> Row:
    """A model seen in model events without a cost: one the price table and overrides miss."""
    return {"project": project, "model": model, "provider": provider or None, "calls": calls,
            "last_seen": iso(last_seen)}  # fmt: skip
