"""HoneyHive's data-plane read endpoints, mapped onto sessions and events: ``GET /v1/events/{id}``
and ``POST /v1/events/export`` (what the SDK's ``client.events.export`` / ``list`` /
``get_by_session_id`` call). Answers use HoneyHive's event shape: times in epoch milliseconds,
``duration`` in milliseconds, a session as an event of type ``session`` whose id is the session id
and which is the parent of the session's top-level events.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import Field

from tracehive.filters import And, Compare, Exists, Expr, Not, Value
from tracehive.filters import Field as FilterField
from tracehive.model import NAMESPACES
from tracehive.server.api import run_query
from tracehive.server.auth import Principal
from tracehive.server.deps import principal, readable_projects, state
from tracehive.server.honeyhive import MAX_NAME, HoneyHiveBody, find_session, parse_body
from tracehive.store.base import EventQuery, Row

router = APIRouter(tags=["honeyhive"])

SESSION_TYPE = "session"
MAX_FILTERS = 100
# HoneyHive field names that differ from ours.
_FIELD_NAMES = {"duration": "duration_ms"}
_COMPARE_OPERATORS = {"is": "=", "is not": "!=", "contains": "contains", "greater than": ">", "less than": "<"}
_NEGATED_OPERATORS = {"not contains": "contains"}
_EXISTS_OPERATORS = {"exists": False, "not exists": True}
OPERATORS = (*_COMPARE_OPERATORS, *_NEGATED_OPERATORS, *_EXISTS_OPERATORS)
TYPES = ("string", "number", "boolean", "datetime", "id")


class EventFilter(HoneyHiveBody):
    field: str = Field(min_length=1, max_length=MAX_NAME)
    operator: str
    value: str | int | float | bool | None = None
    type: str = "string"


class DateRange(HoneyHiveBody):
    gte: str | float | None = Field(None, alias="$gte")
    lte: str | float | None = Field(None, alias="$lte")


class ExportRequest(HoneyHiveBody):
    project: str | None = Field(None, min_length=1, max_length=MAX_NAME)
    filters: list[EventFilter] = Field(default_factory=list, max_length=MAX_FILTERS)
    dateRange: DateRange | None = None  # HoneyHive's name
    projections: list[str] | None = Field(None, max_length=100)
    limit: int = Field(1000, ge=1, le=7500)
    page: int = Field(1, ge=1, le=1_000_000)


def _epoch_ms(iso: str | None) -> float | None:
    return None if iso is None else datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def _common(row: Row) -> dict[str, Any]:
    out: dict[str, Any] = {ns: row[ns] for ns in NAMESPACES}
    out.update(
        project=row["project"],
        project_id=row["project"],
        session_id=row["session_id"],
        start_time=_epoch_ms(row["start_time"]),
        end_time=_epoch_ms(row["end_time"]),
        duration=row["duration_ms"],
    )
    return out


def hh_event(row: Row) -> dict[str, Any]:
    """An event as HoneyHive shows it: a top-level event's parent is its session."""
    return {
        **_common(row),
        "event_id": row["event_id"],
        "parent_id": row["parent_id"] or row["session_id"],
        "event_type": row["event_type"],
        "event_name": row["event_name"],
        "error": row["error"],
    }


def hh_session(row: Row) -> dict[str, Any]:
    """A session as HoneyHive shows it: the root event of its own tree."""
    return {
        **_common(row),
        "event_id": row["session_id"],
        "parent_id": None,
        "event_type": SESSION_TYPE,
        "event_name": row["session_name"],
        "source": row["source"],
        "error": None,
    }


@router.get("/v1/events/{event_id}", summary="One event, or a session by its id (HoneyHive data plane)")
async def get_event(request: Request, event_id: str, who: Principal = Depends(principal)) -> dict:
    found = await run_in_threadpool(state(request).store.get_event, event_id, who.projects)
    if found is not None:
        return {"event": hh_event(found)}
    session = await run_in_threadpool(find_session, request, who, event_id)
    if session is not None:
        return {"event": hh_session(session)}
    raise HTTPException(404, f"no event or session {event_id!r}")


def _finite(value: Value, where: str) -> Value:
    """A number the stores can compare with: finite, and no larger than a double can hold (the
    filter language's parser refuses the same); anything else as it is."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            finite = math.isfinite(value)
        except OverflowError:
            finite = False
        if not finite:
            raise HTTPException(400, f"{where}: {str(value)[:40]} is not a finite number a double can hold")
    return value


def _typed_value(item: EventFilter, where: str) -> Value:
    """The filter's value with the type it names; HoneyHive sends most values as strings."""
    value, kind = _finite(item.value, f"{where}.value"), item.type.lower()
    if value is None or kind in ("string", "id", "datetime"):
        return value if value is None or kind == "datetime" else str(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise HTTPException(400, f"{where}.value: expected true or false for type boolean, got {value!r}")
    if kind == "number" and not isinstance(value, bool):
        if isinstance(value, int | float):
            return value
        for convert in (int, float):
            try:
                return _finite(convert(value), f"{where}.value")
            except ValueError:
                continue
        raise HTTPException(400, f"{where}.value: expected a number for type number, got {value!r}")
    raise HTTPException(400, f"{where}.type: expected one of {', '.join(TYPES)}, got {item.type!r}")


def _field(name: str) -> FilterField:
    column, *path = name.split(".")
    # Only ASCII digits are a list index ("²" is a digit to str.isdigit, not to int()).
    keys = tuple(int(p) if p.isascii() and p.isdigit() else p for p in path)
    return FilterField(_FIELD_NAMES.get(column, column), keys)


def to_filter(item: EventFilter, where: str) -> Expr:
    """One HoneyHive filter as a tracehive filter expression."""
    field, operator = _field(item.field), item.operator.strip().lower()
    if operator in _EXISTS_OPERATORS:
        exists = Exists(field)
        return Not(exists) if _EXISTS_OPERATORS[operator] else exists
    value = _typed_value(item, where)
    if operator in _COMPARE_OPERATORS:
        return Compare(field, _COMPARE_OPERATORS[operator], value)
    if operator in _NEGATED_OPERATORS:
        return Not(Compare(field, _NEGATED_OPERATORS[operator], value))
    raise HTTPException(400, f"{where}.operator: expected one of {', '.join(OPERATORS)}, got {item.operator!r}")


def export_filter(body: ExportRequest) -> Expr | None:
    items = [to_filter(item, f"filters[{i}]") for i, item in enumerate(body.filters)]
    for i, item in enumerate(items):
        if _is_session_type(item):
            raise HTTPException(
                400,
                f"filters[{i}]: exporting sessions (event_type is session) is not supported; use GET /api/v1/sessions",
            )
    if body.dateRange is not None:
        for op, name, bound in ((">=", "$gte", body.dateRange.gte), ("<=", "$lte", body.dateRange.lte)):
            if bound is not None:
                items.append(Compare(FilterField("start_time"), op, _finite(bound, f"dateRange.{name}")))
    return And(tuple(items)) if len(items) > 1 else (items[0] if items else None)


def _is_session_type(expr: Expr) -> bool:
    return isinstance(expr, Compare) and expr.field == FilterField("event_type") and expr.value == SESSION_TYPE


def _project(row: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    return row if not fields else {k: v for k, v in row.items() if k in fields}


@router.post("/v1/events/export", summary="Export events with filters (HoneyHive data plane)")
async def export_events(request: Request, who: Principal = Depends(principal)) -> dict:
    """Events oldest first, ``limit`` per ``page``; ``totalEvents`` counts every match."""
    body = await parse_body(request, ExportRequest)
    projects = readable_projects(who, body.project)
    query = EventQuery(
        projects=projects,
        filter=state(request).policies.rewrite(export_filter(body), projects),
        limit=body.limit,
        offset=(body.page - 1) * body.limit,
    )
    rows, total = await run_in_threadpool(run_query, state(request).store.list_events, query)
    events = [_project(hh_event(row), body.projections) for row in rows]
    return {"events": events, "totalEvents": total, "count": total}
