"""HoneyHive's REST endpoints, so that the real ``honeyhive`` SDK works against tracehive unchanged.

The SDK starts a session with ``POST /session/start``, enriches it with ``PUT /events`` (the session
is an event whose id is the session id), records finished events with ``POST /events``
(``create_event``) and exports spans over OTLP to
``POST /opentelemetry/v1/traces``. Everything it writes goes through the same writer as OTLP
ingest. The read endpoints are in :mod:`tracehive.server.honeyhive_read`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tracehive.filters import Compare
from tracehive.filters import Field as FilterField
from tracehive.model import DEFAULT_EVENT_TYPE, DEFAULT_PROJECT, NAMESPACES, Batch, Event, Namespaces, SessionUpdate
from tracehive.privacy.records import redact_batch
from tracehive.server import ingest
from tracehive.server.auth import Principal
from tracehive.server.deps import principal, state
from tracehive.server.limits import MAX_ID_LENGTH, LimitError, Limits, enforce_batch
from tracehive.server.model_calls import finish_model_event
from tracehive.store.base import MAX_MATCHES, Row, SessionQuery, only_match
from tracehive.store.columns import Rows

router = APIRouter(tags=["honeyhive"])

# The SDK insists on these in the answer to /session/start; tracehive has no orgs or workspaces.
ORG_ID = "tracehive"
WORKSPACE_ID = "tracehive"
MAX_NAME = 1024
MAX_MS = 10**13  # epoch milliseconds up to the year 2286

JsonObject = dict[str, Any]
Body = TypeVar("Body", bound=BaseModel)


class HoneyHiveBody(BaseModel):
    """A request body: unknown fields are ignored, as HoneyHive's SDK sends more than we use."""

    model_config = ConfigDict(extra="ignore")


class NamespaceFields(HoneyHiveBody):
    inputs: JsonObject | None = None
    outputs: JsonObject | None = None
    user_properties: JsonObject | None = None
    metadata: JsonObject | None = None
    metrics: JsonObject | None = None
    feedback: JsonObject | None = None
    config: JsonObject | None = None

    def namespaces(self) -> Namespaces:
        return {ns: getattr(self, ns) or {} for ns in NAMESPACES}


class SessionFields(NamespaceFields):
    session_id: str | None = Field(None, min_length=1, max_length=MAX_ID_LENGTH)
    session_name: str | None = Field(None, max_length=MAX_NAME)
    source: str | None = Field(None, max_length=MAX_NAME)
    project: str | None = Field(None, min_length=1, max_length=MAX_NAME)
    start_time: float | None = Field(None, ge=0, le=MAX_MS, description="epoch milliseconds")


class SessionStart(HoneyHiveBody):
    session: SessionFields


class EventUpdate(NamespaceFields):
    event_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    end_time: float | None = Field(None, ge=0, le=MAX_MS, description="epoch milliseconds")


async def parse_body(request: Request, model: type[Body]) -> Body:
    """The JSON body as ``model``, read within the server's size limit; 400 naming the field."""
    body = await ingest.read_body(request, state(request).settings.limits.max_body_bytes)
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


def choose_project(who: Principal, requested: str | None) -> str:
    """The project the request names, else the key's, else the default; a project key writes
    only to its own project."""
    if requested is not None and who.project is not None and requested != who.project:
        raise HTTPException(403, f"this API key cannot write to project {requested!r}")
    return requested or who.project or DEFAULT_PROJECT


async def write_session(request: Request, update: SessionUpdate) -> None:
    """Store one session update within the same limits as OTLP ingest."""
    await write_batch(request, Batch(sessions=[update]))


async def write_batch(request: Request, batch: Batch) -> None:
    """Store events and session updates within the same limits as OTLP ingest."""
    redact_batch(batch, state(request).policies.ingest_redactors())
    try:
        enforce_batch(batch, state(request).settings.limits)
    except LimitError as exc:
        raise HTTPException(400, str(exc)) from None
    await ingest.commit(state(request), Rows.of(batch))


def _ms_to_ns(ms: float | None) -> int | None:
    return None if ms is None else int(ms * 1_000_000)


@router.post("/session/start", summary="Start a session (HoneyHive SDK)")
async def start_session(request: Request, who: Principal = Depends(principal)) -> dict:
    session = (await parse_body(request, SessionStart)).session
    project = choose_project(who, session.project)
    session_id = session.session_id or str(uuid.uuid4())
    update = SessionUpdate(
        project=project,
        session_id=session_id,
        session_name=session.session_name,
        source=session.source,
        start_ns=_ms_to_ns(session.start_time) or time.time_ns(),
        namespaces=session.namespaces(),
    )
    await write_session(request, update)
    return {
        "session_id": session_id,
        "event_id": session_id,
        "project": project,
        "project_id": project,
        "org_id": ORG_ID,
        "workspace_id": WORKSPACE_ID,
    }


def find_session(request: Request, who: Principal, session_id: str) -> Row | None:
    """The session with this id among those the key may read, without its events;
    :class:`Ambiguous` (a 409) when an admin key reads it in several projects."""
    by_id = Compare(FilterField("session_id"), "=", session_id)
    found = state(request).store.list_sessions(SessionQuery(projects=who.projects, filter=by_id, limit=MAX_MATCHES))
    return only_match(found, f"session {session_id!r}", ("project",))


def session_namespaces(update: EventUpdate) -> Namespaces:
    """The SDK's ``enrich_session(inputs=...)`` sends the inputs as ``metadata.inputs``, because
    HoneyHive's update request has no ``inputs``; they belong in the session's inputs."""
    namespaces = update.namespaces()
    inputs = namespaces["metadata"].get("inputs")
    if isinstance(inputs, dict):
        namespaces["metadata"] = {k: v for k, v in namespaces["metadata"].items() if k != "inputs"}
        namespaces["inputs"] = {**inputs, **namespaces["inputs"]}
    return namespaces


@router.put("/events", summary="Enrich a session (HoneyHive SDK's enrich_session)")
async def update_event(request: Request, who: Principal = Depends(principal)) -> dict:
    """``event_id`` is a session id: its namespaces are merged into the session. A session not
    seen yet is created (the SDK may have made its id up when /session/start failed). Events are
    stored once and not changed afterwards, so an update of an event is refused (409)."""
    update = await parse_body(request, EventUpdate)
    found = await run_in_threadpool(find_session, request, who, update.event_id)
    if found is None:
        event = await run_in_threadpool(state(request).store.get_event, update.event_id, who.projects)
        if event is not None:
            raise HTTPException(
                409,
                f"event_id {update.event_id!r} is an event; tracehive stores events once and cannot update "
                "them: enrich the span while it runs (enrich_span without event_id)",
            )
    project = found["project"] if found is not None else who.project or DEFAULT_PROJECT
    session = SessionUpdate(
        project=project,
        session_id=update.event_id,
        end_ns=_ms_to_ns(update.end_time),
        namespaces=session_namespaces(update),
    )
    await write_session(request, session)
    return {"success": True}


class EventFields(NamespaceFields):
    event_name: str = Field(min_length=1, max_length=MAX_NAME)
    event_type: Literal["model", "tool", "chain", "function"] = DEFAULT_EVENT_TYPE
    event_id: str | None = Field(None, min_length=1, max_length=MAX_ID_LENGTH)
    session_id: str | None = Field(None, min_length=1, max_length=MAX_ID_LENGTH)
    parent_id: str | None = Field(None, min_length=1, max_length=MAX_ID_LENGTH)
    project: str | None = Field(None, min_length=1, max_length=MAX_NAME)
    source: str | None = Field(None, max_length=MAX_NAME)
    error: str | None = Field(None, max_length=Limits().max_value_length)
    start_time: float | None = Field(None, ge=0, le=MAX_MS, description="epoch milliseconds")
    end_time: float | None = Field(None, ge=0, le=MAX_MS, description="epoch milliseconds")
    duration: float | None = Field(None, ge=0, le=MAX_MS, description="milliseconds")


class EventCreate(HoneyHiveBody):
    event: EventFields


@router.post("/events", summary="Record a finished event (HoneyHive SDK's create_event)")
async def create_event(request: Request, who: Principal = Depends(principal)) -> dict:
    """One event that already happened, in its session: stored like a span (once, never updated)."""
    given = (await parse_body(request, EventCreate)).event
    project = choose_project(who, given.project)
    lasted = _ms_to_ns(given.duration) or 0
    end_ns = _ms_to_ns(given.end_time) or (_ms_to_ns(given.start_time) or time.time_ns() - lasted) + lasted
    trace_id = uuid.uuid4().hex
    event = Event(
        project=project,
        event_id=(given.event_id or uuid.uuid4().hex[:16]).lower(),
        session_id=given.session_id or trace_id,
        trace_id=trace_id,
        parent_id=given.parent_id,
        event_type=given.event_type,
        event_name=given.event_name,
        start_ns=_ms_to_ns(given.start_time) or end_ns - lasted,
        end_ns=end_ns,
        error=given.error,
        namespaces=given.namespaces(),
        session_from_trace=given.session_id is None,
    )
    if event.event_type == "model":  # as a model call over OTLP: total tokens, a cost if none was sent
        finish_model_event(event, state(request).prices)
    session = SessionUpdate(project=project, session_id=event.session_id, source=given.source)
    await write_batch(request, Batch(events=[event], sessions=[session]))
    return {"success": True, "event_id": event.event_id}


router.add_api_route(
    "/opentelemetry/v1/traces",
    ingest.export_traces,
    methods=["POST"],
    summary="OTLP/HTTP trace export at the HoneyHive SDK's path (protobuf or JSON)",
)

# HoneyHive endpoints that write events or sessions another way than the SDK's tracer does.
UNSUPPORTED_WRITES = (
    ("POST", "/events/batch"),
    ("POST", "/events/model"),
    ("POST", "/events/model/batch"),
    ("POST", "/v1/events"),
    ("POST", "/v1/events/batch"),
    ("PUT", "/v1/events/{event_id}"),
    ("POST", "/v1/sessions"),
    ("POST", "/v1/sessions/{session_id}/events/batch"),
    ("POST", "/session/{session_id}/traces"),
)


def _unsupported(request: Request, _: Principal = Depends(principal)) -> None:
    """404 with a message that says why, rather than a bare Not Found."""
    raise HTTPException(
        404,
        f"{request.method} {request.url.path} is a HoneyHive endpoint tracehive does not support; "
        "trace with the SDK (spans over OTLP) or see docs/honeyhive.md",
    )


for _method, _path in UNSUPPORTED_WRITES:
    router.add_api_route(_path, _unsupported, methods=[_method], include_in_schema=False)
