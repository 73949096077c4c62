"""The query API: sessions, their event trees, events and users, as JSON under ``/api/v1``."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request

from tracehive import __version__
from tracehive.filters import Expr, Field, FilterError, group_field, parse, parse_field
from tracehive.server import fields, schemas
from tracehive.server.auth import Principal
from tracehive.server.deps import principal, readable_projects, state
from tracehive.store.base import Cursor, Row, SessionQuery, TooManyBuckets

router = APIRouter(prefix="/api/v1", tags=["query"])
T = TypeVar("T")

# Events of one session per answer: 20,000 events would be a 10 MB answer and a page nobody reads.
DEFAULT_EVENTS_LIMIT = 1000
MAX_EVENTS_LIMIT = 10_000
MAX_EVENTS_OFFSET = 10**9
FILTER_DOC = (
    'A filter expression, e.g. `user_properties.plan = "premium" and metrics.score > 0.5`. Sessions also have '
    "`model_calls`, `prompt_tokens`, `completion_tokens`, `total_tokens` and `cost` (USD, null when unknown)."
)
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
    invalid = HTTPException(400, "cursor: not a cursor this API returned")
    try:
        start, session_id = orjson.loads(base64.urlsafe_b64decode(text.encode()))
    except (ValueError, TypeError):
        raise invalid from None
    # A cursor holds what encode_cursor wrote: a time as text and a session id, nothing else.
    if not isinstance(start, str) or not isinstance(session_id, str):
        raise invalid
    try:
        moment = parse_time(start, "cursor")
    except HTTPException:
        raise invalid from None
    if moment is None:
        raise invalid
    return Cursor(moment, session_id)


def session_scope(
    request: Request,
    who: Principal = Depends(principal),
    project: Annotated[str | None, Query(description="Project name; default: every project the key may read.")] = None,
    filter: Annotated[str | None, Query(description=FILTER_DOC, max_length=4096)] = None,
    from_: Annotated[
        str | None, Query(alias="from", description="Sessions that started at or after. " + TIME_DOC)
    ] = None,
    to: Annotated[str | None, Query(description="Sessions that started before. " + TIME_DOC)] = None,
) -> SessionQuery:
    """Which sessions a request is about: project, filter and time range."""
    projects = readable_projects(who, project)
    return SessionQuery(
        projects=projects,
        filter=state(request).policies.rewrite(parse_filter(filter), projects),
        start_from=parse_time(from_, "from"),
        start_to=parse_time(to, "to"),
    )


def session_query(
    scope: SessionQuery = Depends(session_scope),
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.", max_length=2048)] = None,
) -> SessionQuery:
    return replace(scope, limit=limit, cursor=decode_cursor(cursor))


def event_tree(events: list[Row]) -> list[Row]:
    """Nest a session's events under their parents. Events whose parent is not among ``events``
    are roots; so are events in a parent cycle (parented to themselves, or a -> b -> a), marked
    ``parent_cycle``, which would otherwise hang under each other and be reachable from no root."""
    by_id = {e["event_id"]: {**e, "children": []} for e in events}
    in_cycle = _parent_cycles(by_id)
    roots = []
    for event_id, node in by_id.items():
        node["parent_cycle"] = event_id in in_cycle
        parent = by_id.get(node["parent_id"]) if node["parent_id"] and not node["parent_cycle"] else None
        (parent["children"] if parent is not None else roots).append(node)
    return roots


def _parent_cycles(by_id: dict[str, Row]) -> set[str]:
    """The ids of events on a cycle of parent links. Each event has at most one parent, so a walk
    up from any event either leaves the page, reaches an event already settled, or comes back to
    an event on its own path: that loop is a cycle."""
    settled: set[str] = set()
    in_cycle: set[str] = set()
    for start in by_id:
        path: dict[str, int] = {}
        current = start
        while current in by_id and current not in settled and current not in path:
            path[current] = len(path)
            current = by_id[current]["parent_id"]
        if current in path:
            in_cycle.update(list(path)[path[current] :])
        settled.update(path)
    return in_cycle


def run_query(query: Callable[..., T], *args: Any) -> T:
    """Call a store query, turning a filter that names unknown fields (or too fine a bucket) into a 400."""
    try:
        return query(*args)
    except FilterError as exc:
        raise HTTPException(400, f"filter: {exc}") from None
    except TooManyBuckets as exc:
        raise HTTPException(400, str(exc)) from None


def field_param(name: str, text: str, parse_with=group_field) -> Field:
    try:
        return parse_with(text)
    except FilterError as exc:
        raise HTTPException(400, f"{name}: {exc}") from None


@router.get("/health", response_model=schemas.Health, tags=["meta"])
def health(request: Request) -> dict:
    return {"status": "ok", "version": __version__, "store": type(state(request).store).__name__}


@router.get("/sessions", response_model=schemas.SessionPage)
def list_sessions(request: Request, query: SessionQuery = Depends(session_query)) -> dict:
    """Sessions newest first, one page at a time."""
    rows = run_query(state(request).store.list_sessions, replace(query, limit=query.limit + 1))
    next_cursor = encode_cursor(rows[query.limit - 1]) if len(rows) > query.limit else None
    return {"sessions": rows[: query.limit], "next_cursor": next_cursor}


@router.get("/sessions/{session_id:path}", response_model=schemas.SessionWithEvents,
            responses={404: {"model": schemas.Error}})  # fmt: skip
def get_session(
    request: Request,
    session_id: str,
    project: str | None = None,
    who: Principal = Depends(principal),
    events_limit: Annotated[
        int, Query(ge=1, le=MAX_EVENTS_LIMIT, description="At most this many events, by start time.")
    ] = DEFAULT_EVENTS_LIMIT,
    events_offset: Annotated[
        int, Query(ge=0, le=MAX_EVENTS_OFFSET, description="Skip this many events first (`next_events_offset`).")
    ] = 0,
) -> dict:
    """One session with its namespaces and a page of its event tree: ``events_limit`` events in start
    order from ``events_offset``, nested (an event whose parent is on another page is a root); 409
    naming the projects when sessions of several have the id."""
    found = state(request).store.get_session(session_id, readable_projects(who, project), events_limit, events_offset)
    if found is None:
        raise HTTPException(404, f"no session {session_id!r}")
    shown = len(found["events"])
    following = events_offset + shown
    more = shown == events_limit and following < found["event_count"]
    found.update(
        events=event_tree(found["events"]),
        events_offset=events_offset,
        events_shown=shown,
        events_truncated=events_offset > 0 or more,
        next_events_offset=following if more else None,
    )
    return found


@router.get("/events/{event_id:path}", response_model=schemas.Event, responses={404: {"model": schemas.Error}})
def get_event(
    request: Request,
    event_id: str,
    project: str | None = None,
    session_id: Annotated[str | None, Query(description="The event's session, if its id is in several.")] = None,
    who: Principal = Depends(principal),
) -> dict:
    """One event; 409 naming the places when its id is in several projects or sessions."""
    found = state(request).store.get_event(event_id, readable_projects(who, project), session_id)
    if found is None:
        raise HTTPException(404, f"no event {event_id!r}")
    return found


@router.get("/users", response_model=schemas.UserList)
def list_users(request: Request, query: SessionQuery = Depends(session_query)) -> dict:
    """One row per `user_properties.user_id` over the sessions selected, most recently seen first."""
    return {"users": run_query(state(request).store.list_users, query)}


MAX_BUCKET = 100 * 366 * 86400  # a century: wider buckets overflow the stores' intervals
GROUP_DOC = "A field to group by: a key inside a namespace (`user_properties.plan`) or a column (`source`)."


@router.get("/groups", response_model=schemas.GroupList)
def group_sessions(
    request: Request,
    by: Annotated[str, Query(description=GROUP_DOC, max_length=1024)],
    query: SessionQuery = Depends(session_scope),
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many groups, largest first.")] = 50,
) -> dict:
    """Sessions grouped by one field: per group, sessions, users, error rate and p50/p95 duration."""
    field = field_param("by", by)
    return {"by": by, "groups": run_query(state(request).store.group_sessions, replace(query, limit=limit), field)}


@router.get("/timeseries", response_model=schemas.TimeSeries)
def session_timeseries(
    request: Request,
    query: SessionQuery = Depends(session_scope),
    bucket: Annotated[
        int | None, Query(ge=1, le=MAX_BUCKET, description="Bucket width in seconds; default: about 60 buckets.")
    ] = None,
    split_by: Annotated[str | None, Query(description=GROUP_DOC, max_length=1024)] = None,
    groups: Annotated[int, Query(ge=1, le=20, description="With `split_by`: how many groups apart.")] = 5,
) -> dict:
    """Sessions over time with their p50/p95 duration, optionally one series per group of a field."""
    field = field_param("split_by", split_by) if split_by else None
    series = run_query(state(request).store.session_timeseries, query, bucket, field, groups)
    return {**series, "split_by": split_by}


@router.get("/fields", response_model=schemas.FieldList)
def known_fields(request: Request, query: SessionQuery = Depends(session_scope)) -> dict:
    """Fields present in the newest sessions the query selects (a bounded sample), for completion."""
    rows = run_query(state(request).store.list_sessions, replace(query, limit=fields.SAMPLE_SIZE))
    return {"sample_size": len(rows), "fields": fields.known_fields(rows)}


@router.get("/fields/values", response_model=schemas.ValueList)
def known_values(
    request: Request,
    field: Annotated[str, Query(description="A field, like `user_properties.plan`.", max_length=1024)],
    query: SessionQuery = Depends(session_scope),
) -> dict:
    """The most common values of one field in the newest sessions the query selects."""
    parsed = field_param("field", field, parse_field)
    rows = run_query(state(request).store.list_sessions, replace(query, limit=fields.SAMPLE_SIZE))
    return {"sample_size": len(rows), "field": field, "values": fields.top_values(rows, parsed)}
