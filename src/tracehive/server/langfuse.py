"""Langfuse's public API, as much of it as the Langfuse Python SDK (v5) needs to trace into tracehive.

The SDK authenticates with ``Authorization: Basic base64(public_key:secret_key)`` (a pair made by
``tracehive keys create --project P --langfuse``), exports spans over OTLP to
``/api/public/otel/v1/traces`` (mapped by :mod:`tracehive.server.conventions.langfuse`), sends
scores to ``/api/public/scores`` and checks its keys with ``GET /api/public/projects``. Every
other ``/api/public`` route answers 404 naming itself. See docs/langfuse.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from tracehive.model import DEFAULT_PROJECT, Batch, SessionUpdate, empty_namespaces
from tracehive.privacy.records import redact_batch
from tracehive.server import ingest
from tracehive.server.auth import Principal, basic_credentials
from tracehive.server.deps import state
from tracehive.server.limits import LimitError, Limits, enforce_batch
from tracehive.store.base import EventFeedback
from tracehive.store.columns import Rows

router = APIRouter(prefix="/api/public", tags=["langfuse"])

ORGANIZATION = {"id": "tracehive", "name": "tracehive"}
MAX_SCORES = 1000  # per request; Langfuse's SDK sends at most 1 MiB of them at once
MAX_ID = 128
MAX_NAME = 256
MAX_COMMENT = 10_000
RECENT = timedelta(hours=1)  # how far back a score's trace is looked for first


async def langfuse_principal(request: Request) -> Principal:
    """The caller, from a Langfuse key pair sent as HTTP Basic credentials; 401 otherwise (checked
    on the event loop, like :func:`~tracehive.server.deps.principal`)."""
    credentials = basic_credentials(request.headers.get("authorization"))
    challenge = {"WWW-Authenticate": 'Basic realm="tracehive"'}
    if credentials is None:
        raise HTTPException(401, "missing Langfuse keys: send 'Authorization: Basic base64(public_key:secret_key)' "
                                 "with a pair from 'tracehive keys create --project P --langfuse'",
                            headers=challenge)  # fmt: skip
    found = state(request).keys.lookup_pair(*credentials)
    if found is None:
        raise HTTPException(401, "unknown Langfuse key pair", headers=challenge)
    return found


@router.post("/otel/v1/traces", summary="OTLP/HTTP trace export from the Langfuse SDK (Basic auth)")
async def langfuse_traces(request: Request, who: Principal = Depends(langfuse_principal)) -> Response:
    return await ingest.ingest_otlp(request, who)


@router.get("/projects", summary="The key pair's project (the Langfuse SDK's auth check)")
async def projects(who: Principal = Depends(langfuse_principal)) -> dict:
    project = who.project or DEFAULT_PROJECT
    return {"data": [{"id": project, "name": project, "organization": ORGANIZATION, "metadata": {}}]}


class Score(BaseModel):
    """One Langfuse score (ScoreBody); fields tracehive does not use are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str | None = Field(None, max_length=MAX_ID)
    trace_id: str | None = Field(None, alias="traceId", min_length=1, max_length=MAX_ID)
    session_id: str | None = Field(None, alias="sessionId", min_length=1, max_length=MAX_ID)
    observation_id: str | None = Field(None, alias="observationId", min_length=1, max_length=MAX_ID)
    name: str = Field(min_length=1, max_length=MAX_NAME)
    value: Annotated[float, Field(allow_inf_nan=False)] | str
    comment: str | None = Field(None, max_length=MAX_COMMENT)
    data_type: Literal["NUMERIC", "BOOLEAN", "CATEGORICAL", "TEXT", "CORRECTION"] | None = Field(None, alias="dataType")

    def feedback(self) -> dict[str, Any]:
        """The score as feedback of its session or observation (event): ``{name: value}`` (and
        ``<name>_comment``)."""
        value: Any = self.value
        if self.data_type == "BOOLEAN" and isinstance(value, float):
            value = value != 0
        entry: dict[str, Any] = {self.name: value}
        if self.comment is not None:
            entry[f"{self.name}_comment"] = self.comment
        return entry


_SCORE_LIST = TypeAdapter(list[Score])


def _trace_sessions(request: Request, project: str, trace_ids: list[str]) -> dict[str, str]:
    """The session of each trace with a stored span. Scores mostly follow their trace within
    seconds, so the last hour is looked at first (a scan that skips older data), then the rest."""
    store = state(request).store
    found = store.trace_sessions(project, trace_ids, datetime.now(UTC) - RECENT)
    missing = [trace_id for trace_id in trace_ids if trace_id not in found]
    if missing:
        found.update(store.trace_sessions(project, missing))
    return found


def _feedback_update(project: str, session_id: str, feedback: dict[str, Any], limits: Limits) -> SessionUpdate:
    """A session update carrying one score's feedback, within the ingest limits (LimitError)."""
    namespaces = empty_namespaces()
    namespaces["feedback"] = feedback
    update = SessionUpdate(project=project, session_id=session_id, namespaces=namespaces)
    enforce_batch(Batch(sessions=[update]), limits)
    return update


async def _store_scores(request: Request, project: str, scores: list[Score]) -> list[str]:
    """Store scores: onto the session or event they name, or kept until their trace (or event)
    comes. Returns why each refused score was refused."""
    server = state(request)
    errors: list[str] = []
    updates: list[SessionUpdate] = []
    observed: list[EventFeedback] = []
    waiting: list[tuple[str, dict[str, Any], str | None]] = []
    async with server.pending.lock:
        traced = list(dict.fromkeys(s.trace_id for s in scores if s.trace_id is not None and not s.observation_id))
        sessions = await run_in_threadpool(_trace_sessions, request, project, traced) if traced else {}
        for score in scores:
            if score.trace_id is None and (score.session_id is None or score.observation_id is not None):
                errors.append(f"score {score.name!r}: tracehive files scores under a trace (traceId), an observation "
                              "(observationId with its traceId) or a session (sessionId)")  # fmt: skip
                continue
            session_id = sessions.get(score.trace_id) if score.trace_id is not None else score.session_id
            feedback = score.feedback()
            try:
                update = _feedback_update(project, session_id or score.trace_id, feedback, server.settings.limits)
            except LimitError as exc:
                errors.append(f"score {score.name!r}: {exc}")
                continue
            if score.observation_id is not None:
                observed.append((score.trace_id, score.observation_id, feedback))
            elif session_id is not None:
                updates.append(update)
            else:  # its trace has not come yet
                waiting.append((score.trace_id, feedback, None))
        if observed:
            found = await ingest.store_event_feedback(server, project, observed)
            # An observation not stored yet: its span is still on its way (spans and scores travel apart).
            waiting += [(trace, fb, event) for (trace, event, fb), ok in zip(observed, found, strict=True) if not ok]
        kept = server.pending.keep(project, waiting)
        errors += ["too many scores are waiting for their traces; send the traces first"] * (len(waiting) - kept)
    if updates:
        batch = Batch(sessions=updates)
        redact_batch(batch, server.policies.ingest_redactors())
        await ingest.commit(server, Rows.of(batch))
    return errors


@router.post("/scores", summary="Create scores (Langfuse SDK): feedback of the session or observation named")
async def create_scores(request: Request, who: Principal = Depends(langfuse_principal)) -> Response:
    body = await ingest.read_body(request, state(request).settings.limits.max_body_bytes)
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(400, f"scores: the body is not JSON: {exc}") from None
    if isinstance(raw, list) and len(raw) > MAX_SCORES:
        raise HTTPException(413, f"at most {MAX_SCORES} scores per request, got {len(raw)}")
    if not isinstance(raw, list | dict):
        raise HTTPException(400, "scores: the body must be a list of scores (or one score)")
    try:
        parsed = _SCORE_LIST.validate_python(raw) if isinstance(raw, list) else Score.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise HTTPException(400, f"scores: {where or 'body'}: {first.get('msg')}") from None
    scores = parsed if isinstance(parsed, list) else [parsed]
    errors = [{"message": message} for message in await _store_scores(request, who.project or DEFAULT_PROJECT, scores)]
    if not isinstance(parsed, list):  # the older single-score request
        if errors:
            raise HTTPException(400, errors[0]["message"])
        return JSONResponse({"id": parsed.id}, status_code=200)
    if errors:
        accepted = len(scores) - len(errors)
        return JSONResponse({"accepted": accepted, "rejected": len(errors), "errors": errors}, status_code=207)
    return JSONResponse({"message": "Accepted"}, status_code=202)


@router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def unsupported(request: Request, path: str) -> None:
    """Every other Langfuse route: a 404 that names it, rather than a bare Not Found."""
    raise HTTPException(
        404,
        f"{request.method} /api/public/{path} is a Langfuse endpoint tracehive does not support; "
        "tracehive takes Langfuse traces, scores and the projects check only (see docs/langfuse.md)",
    )
