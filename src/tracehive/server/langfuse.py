"""Langfuse's public API, as much of it as the Langfuse Python SDK (v5) needs to trace into tracehive.

The SDK authenticates with ``Authorization: Basic base64(public_key:secret_key)`` (a pair made by
``tracehive keys create --project P --langfuse``), exports spans over OTLP to
``/api/public/otel/v1/traces`` (mapped by :mod:`tracehive.server.conventions.langfuse`), sends
scores to ``/api/public/scores`` and checks its keys with ``GET /api/public/projects``. Every
other ``/api/public`` route answers 404 naming itself. See docs/langfuse.md.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from tracehive.filters import Compare
from tracehive.filters import Field as FilterField
from tracehive.model import DEFAULT_PROJECT, Batch, SessionUpdate, empty_namespaces
from tracehive.server import ingest
from tracehive.server.auth import Principal, basic_credentials
from tracehive.server.deps import state
from tracehive.server.limits import LimitError, enforce_batch
from tracehive.store.base import EventQuery
from tracehive.store.columns import Rows

router = APIRouter(prefix="/api/public", tags=["langfuse"])

ORGANIZATION = {"id": "tracehive", "name": "tracehive"}
MAX_SCORES = 1000  # per request; Langfuse's SDK sends at most 1 MiB of them at once
MAX_ID = 128
MAX_NAME = 256
MAX_COMMENT = 10_000


def langfuse_principal(request: Request) -> Principal:
    """The caller, from a Langfuse key pair sent as HTTP Basic credentials; 401 otherwise."""
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
    value: float | str
    comment: str | None = Field(None, max_length=MAX_COMMENT)
    data_type: Literal["NUMERIC", "BOOLEAN", "CATEGORICAL", "TEXT", "CORRECTION"] | None = Field(None, alias="dataType")

    def feedback(self) -> dict[str, Any]:
        """The score as feedback: ``{name: value}`` (and ``<name>_comment``); a score of an
        observation sits under ``observations.<observation id>`` of its session's feedback."""
        value: Any = self.value
        if self.data_type == "BOOLEAN" and isinstance(value, float):
            value = value != 0
        entry: dict[str, Any] = {self.name: value}
        if self.comment is not None:
            entry[f"{self.name}_comment"] = self.comment
        return {"observations": {self.observation_id: entry}} if self.observation_id else entry


_SCORES = TypeAdapter(list[Score] | Score)


def _trace_session(request: Request, project: str, trace_id: str) -> str | None:
    """The session that a stored span of this trace belongs to, if one is stored."""
    query = EventQuery(projects=(project,), filter=Compare(FilterField("trace_id"), "=", trace_id), limit=1)
    found, _ = state(request).store.list_events(query)
    return found[0]["session_id"] if found else None


async def _write_feedback(request: Request, project: str, session_id: str, feedback: dict[str, Any]) -> None:
    namespaces = empty_namespaces()
    namespaces["feedback"] = feedback
    batch = Batch(sessions=[SessionUpdate(project=project, session_id=session_id, namespaces=namespaces)])
    enforce_batch(batch, state(request).settings.limits)
    await ingest.commit(request, Rows.of(batch))


async def _store_score(request: Request, project: str, score: Score) -> str | None:
    """Store one score; the reason it was refused, or None."""
    feedback = score.feedback()
    if score.trace_id is None:
        if score.session_id is None:
            return f"score {score.name!r}: tracehive files scores under a trace (traceId) or a session (sessionId)"
        await _write_feedback(request, project, score.session_id, feedback)
        return None
    pending = state(request).pending
    async with pending.lock:
        session_id = await run_in_threadpool(_trace_session, request, project, score.trace_id)
        if session_id is None:
            if not pending.keep(project, score.trace_id, feedback):
                return f"score {score.name!r}: too many scores are waiting for their traces; send the trace first"
            return None
    await _write_feedback(request, project, session_id, feedback)
    return None


@router.post("/scores", summary="Create scores (Langfuse SDK): feedback of the session or observation named")
async def create_scores(request: Request, who: Principal = Depends(langfuse_principal)) -> Response:
    body = await ingest.read_body(request, state(request).settings.limits.max_body_bytes)
    try:
        parsed = _SCORES.validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise HTTPException(400, f"scores: {where or 'body'}: {first.get('msg')}") from None
    scores = parsed if isinstance(parsed, list) else [parsed]
    if len(scores) > MAX_SCORES:
        raise HTTPException(413, f"at most {MAX_SCORES} scores per request, got {len(scores)}")
    project = who.project or DEFAULT_PROJECT
    errors = []
    for score in scores:
        try:
            refused = await _store_score(request, project, score)
        except LimitError as exc:
            refused = f"score {score.name!r}: {exc}"
        if refused is not None:
            errors.append({"message": refused})
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
