"""The query API: sessions, their event trees, events and users, as JSON under ``/api/v1``."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request

from tracehive import __version__
from tracehive.filters import Expr, FilterError, parse
from tracehive.server import schemas
from tracehive.server.auth import Principal
from tracehive.server.deps import principal, readable_projects, state
from tracehive.store.base import Cursor, Row, SessionQuery

router = APIRouter(prefix="/api/v1", tags=["query"])

FILTER_DOC = 'A filter expression, e.g. `user_properties.plan = "premium" and metrics.score > 0.5`.'
TIME_DOC = "ISO 8601 time (`2026-01-31T12:00:00Z`) or epoch milliseconds."


def parse_filter(text: str | None) -> Expr | None:
    try:
        return parse(text or "")
    except FilterError as exc:
        raise HTTPException(400, f"filter: {exc}") from None


def parse_time(value: str | None, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        if value.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(value) / 1000, UTC).replace(tzinfo=None)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise HTTPException(400, f"{name}: expected ISO 8601 time or epoch milliseconds, got {value!r}") from None
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def encode_cursor(row: Row) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([row["start_time"], row["session_id"]])).decode()


def decode_cursor(text: str | None) -> Cursor | None:
    if not text:
        return None
    try:
        start, session_id = orjson.loads(base64.urlsafe_b64decode(text.encode()))
        moment = parse_time(start, "cursor")
    except (ValueError, TypeError, HTTPException):
        raise HTTPException(400, "cursor: not a cursor this API returned") from None
    if moment is None or not isinstance(session_id, str):
        raise HTTPException(400, "cursor: not a cursor this API returned")
    return Cursor(moment, session_id)


def session_query(
    who: Principal = Depends(principal),
    project: Annotated[str | None, Query(description="Project name; default: every project the key may read.")] = None,
    filter: Annotated[str | None, Query(description=FILTER_DOC, max_length=4096)] = None,
    from_: Annotated[
        str | None, Query(alias="from", description="Sessions that started at or after. " + TIME_DOC)
    ] = None,
    to: Annotated[str | None, Query(description="Sessions that started before. " + TIME_DOC)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> SessionQuery:
    return SessionQuery(
        projects=readable_projects(who, project),
        filter=parse_filter(filter),
        start_from=parse_time(from_, "from"),
        start_to=parse_time(to, "to"),
        limit=limit,
        cursor=decode_cursor(cursor),
    )


def event_tree(events: list[Row]) -> list[Row]:
    """Nest a session's events under their parents; events whose parent is not stored are roots."""
    by_id = {e["event_id"]: {**e, "children": []} for e in events}
    roots = []
    for node in by_id.values():
        parent = by_id.get(node["parent_id"]) if node["parent_id"] else None
        (parent["children"] if parent is not None else roots).append(node)
    return roots


def run_query(request: Request, method: str, *args: Any) -> Any:
    """Call the store, turning a filter that names unknown fields into a 400."""
    try:
        return getattr(state(request).store, method)(*args)
    except FilterError as exc:
        raise HTTPException(400, f"filter: {exc}") from None


@router.get("/health", response_model=schemas.Health, tags=["meta"])
def health(request: Request) -> dict:
    return {"status": "ok", "version": __version__, "store": type(state(request).store).__name__}


@router.get("/sessions", response_model=schemas.SessionPage)
def list_sessions(request: Request, query: SessionQuery = Depends(session_query)) -> dict:
    """Sessions newest first, one page at a time."""
    rows = run_query(request, "list_sessions", replace(query, limit=query.limit + 1))
    next_cursor = encode_cursor(rows[query.limit - 1]) if len(rows) > query.limit else None
    return {"sessions": rows[: query.limit], "next_cursor": next_cursor}


@router.get("/sessions/{session_id}", response_model=schemas.SessionWithEvents,
            responses={404: {"model": schemas.Error}})  # fmt: skip
def get_session(
    request: Request, session_id: str, project: str | None = None, who: Principal = Depends(principal)
) -> dict:
    """One session with its namespaces and its event tree."""
    found = state(request).store.get_session(session_id, readable_projects(who, project))
    if found is None:
        raise HTTPException(404, f"no session {session_id!r}")
    found["events"] = event_tree(found["events"])
    return found


@router.get("/events/{event_id}", response_model=schemas.Event, responses={404: {"model": schemas.Error}})
def get_event(request: Request, event_id: str, project: str | None = None, who: Principal = Depends(principal)) -> dict:
    found = state(request).store.get_event(event_id, readable_projects(who, project))
    if found is None:
        raise HTTPException(404, f"no event {event_id!r}")
    return found


@router.get("/users", response_model=schemas.UserList)
def list_users(request: Request, query: SessionQuery = Depends(session_query)) -> dict:
    """One row per `user_properties.user_id` over the sessions selected, most recently seen first."""
    return {"users": run_query(request, "list_users", query)}
