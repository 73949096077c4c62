"""Privacy routes under ``/api/v1``: a project's redaction rules and retention, erasing a user,
the audit log, and exporting events with their sessions' fields as JSON lines.

Changing settings and erasing take an admin key or the project's own key; so do reading a
project's settings and audit entries and exporting its data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from tracehive.privacy import RuleError
from tracehive.privacy.export import export_row
from tracehive.server.api import parse_time, run_query, session_scope
from tracehive.server.auth import Principal
from tracehive.server.deps import principal, readable_projects, state
from tracehive.store.base import Cursor, SessionQuery

router = APIRouter(prefix="/api/v1", tags=["privacy"])
EXPORT_PAGE = 500  # sessions per store round trip while exporting
MAX_USER_ID = 1024
MAX_PROJECT = 1024


def own_project(who: Principal, project: str) -> str:
    """The project, if the key may manage it: an admin key, or that project's own key."""
    if not 0 < len(project) <= MAX_PROJECT:
        raise HTTPException(400, f"project: 1 to {MAX_PROJECT} characters")
    readable_projects(who, project)
    return project


class PrivacyChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    redact: list[Any] | None = Field(None, description="Redaction rules; omitted: unchanged.")
    retention_days: float | None = Field(None, description="Days to keep sessions; null: forever.")


class EraseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=MAX_USER_ID)


@router.get("/projects/{project}/privacy")
def get_privacy(request: Request, project: str, who: Principal = Depends(principal)) -> dict:
    """The project's current redaction rules and retention (version 0: never set)."""
    return state(request).policies.get(own_project(who, project)).public()


@router.put("/projects/{project}/privacy")
def set_privacy(request: Request, project: str, change: PrivacyChange, who: Principal = Depends(principal)) -> dict:
    """Save a new version of the project's settings; fields left out keep their value. Ingest
    applies new rules to every request that arrives after this answers."""
    own_project(who, project)
    given = change.model_dump(exclude_unset=True)
    if "redact" in given and given["redact"] is None:
        raise HTTPException(400, "redact: a list of rules ([] for none)")
    server = state(request)
    try:
        saved = server.policies.save(project, given, who.name)
    except RuleError as exc:
        raise HTTPException(400, str(exc)) from None
    server.audit.record("settings", project, who.name, version=saved.version, redact_rules=len(saved.redact),
                        retention_days=saved.retention_days)  # fmt: skip
    return saved.public()


@router.get("/projects/{project}/privacy/history")
def privacy_history(request: Request, project: str, who: Principal = Depends(principal)) -> dict:
    """Every saved version of the project's settings, newest first."""
    return {"versions": state(request).policies.history(own_project(who, project))}


@router.get("/projects/{project}/privacy/secret")
def privacy_secret(request: Request, project: str, who: Principal = Depends(principal)) -> dict:
    """The project's hashing secret, for an SDK that hashes before sending
    (``HoneyHiveTracer.init(redact={"rules": [...], "secret": ...})``). Every read is audited."""
    server = state(request)
    policy = server.policies.get(own_project(who, project))
    if not policy.secret:
        raise HTTPException(404, f"project {project!r} has no privacy settings yet, so no secret")
    server.audit.record("secret_read", project, who.name)
    return {"project": project, "secret": policy.secret}


@router.post("/projects/{project}/erase")
async def erase_user(request: Request, project: str, body: EraseRequest, who: Principal = Depends(principal)) -> dict:
    """Erase every session and event of one user (``user_properties.user_id``) and scrub the store's
    files; answers with what was removed, as written to the audit log."""
    own_project(who, project)
    return await run_in_threadpool(state(request).eraser.erase, project, body.user_id, who.name)


@router.get("/audit")
def audit_log(request: Request, project: str | None = None, who: Principal = Depends(principal)) -> dict:
    """Audit entries (settings changes, erasures, retention), newest first."""
    return {"entries": state(request).audit.entries(readable_projects(who, project))}


def export_lines(store: Any, query: SessionQuery) -> Iterator[bytes]:
    """Every event of the selected sessions, one JSON line each with its session's fields, a page
    of sessions at a time, so memory stays flat whatever the size."""
    cursor = query.cursor
    while True:
        sessions = store.list_sessions(replace(query, limit=EXPORT_PAGE, cursor=cursor))
        if not sessions:
            return
        events = store.events_of_sessions([(s["project"], s["session_id"]) for s in sessions])
        by_session: dict[tuple[str, str], list] = {}
        for event in events:
            by_session.setdefault((event["project"], event["session_id"]), []).append(event)
        chunk = [
            orjson.dumps(export_row(session, event)) + b"\n"
            for session in sessions
            for event in by_session.get((session["project"], session["session_id"]), ())
        ]
        if chunk:
            yield b"".join(chunk)
        last = sessions[-1]
        if len(sessions) < EXPORT_PAGE or last["start_time"] is None:
            return
        cursor = Cursor(parse_time(last["start_time"], "cursor"), last["session_id"])


@router.get("/export", summary="Events with their sessions' fields, as JSON lines")
def export(request: Request, query: SessionQuery = Depends(session_scope)) -> StreamingResponse:
    """One line per event of the sessions the filter and time range select, newest sessions first,
    each event with its session's fields (those that clash with an event's prefixed ``session_``)."""
    store = state(request).store
    run_query(store.list_sessions, replace(query, limit=1))  # a bad filter is a 400 before streaming
    return StreamingResponse(export_lines(store, query), media_type="application/x-ndjson")
