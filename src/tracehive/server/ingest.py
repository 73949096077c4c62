"""OTLP/HTTP trace ingest: ``POST /v1/traces``, protobuf or JSON, optionally gzip-compressed.

A request is answered 200 only once everything it carried is committed to the store.
"""

from __future__ import annotations

import asyncio
import copy
import zlib
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tracehive.model import DEFAULT_PROJECT, Batch
from tracehive.privacy.records import redact_batch
from tracehive.server.auth import Principal
from tracehive.server.deps import ServerState, principal, state
from tracehive.server.otlp import OtlpError
from tracehive.server.workers import JSON, PROTOBUF, WorkerLost
from tracehive.store.base import EventFeedback, StoreFullError, StoreOutOfMemory
from tracehive.store.columns import Rows
from tracehive.store.writer import Overloaded

router = APIRouter(tags=["ingest"])


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body as sent, refusing (413) one over ``limit`` bytes as soon as that shows:
    from its Content-Length, else once the bytes read pass the limit, never holding more."""
    too_large = HTTPException(413, f"request body is larger than the limit of {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, decompressed, refusing (413) anything over ``limit`` bytes either way."""
    body = await read_limited(request, limit)
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding in ("identity", ""):
        return body
    if encoding not in ("gzip", "deflate"):
        raise HTTPException(415, f"Content-Encoding {encoding!r} is not supported (use gzip or none)")
    inflater = zlib.decompressobj(wbits=47 if encoding == "gzip" else 15)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise HTTPException(400, f"body is not valid {encoding}: {exc}") from None
    if len(out) > limit:
        raise HTTPException(413, f"decompressed body is larger than the limit of {limit} bytes")
    return out


def enforce_project(who: Principal, rows: Rows) -> None:
    """A project key writes only to its own project."""
    if who.project is None:
        return
    for project in rows.projects():
        if project != who.project:
            raise HTTPException(403, f"this API key cannot write to project {project!r}")


def retry_later(message: str) -> HTTPException:
    """The answer to a client the server cannot serve now: 503 with when to try again."""
    return HTTPException(503, f"{message}, retry later", headers={"Retry-After": "1"})


async def commit(server: ServerState, rows: Rows) -> None:
    """Hand a batch to the writer and wait until it is durable, mapping failures onto HTTP."""
    await written(lambda: server.writer.submit(rows))


async def written(start: Callable[[], Future]) -> Any:
    """Wait for a write the writer was handed (``start`` hands it over), mapping failures onto HTTP."""
    try:
        return await asyncio.wrap_future(start())
    except Overloaded:
        raise retry_later("server is overloaded") from None
    except StoreFullError:
        raise HTTPException(507, "the store is out of space; nothing from this request was stored") from None
    except StoreOutOfMemory:
        raise retry_later("the store is out of memory for this write (see --query-memory-mb)") from None


async def ingest(server: ServerState, who: Principal, content_type: str, body: bytes) -> None:
    """Map one OTLP export body and wait until it is durable; failures as HTTP errors. The HTTP
    route and the gRPC service (:mod:`tracehive.server.grpc_ingest`) both end here."""
    try:
        rows = await server.workers.prepare(
            content_type,
            body,
            who.project or DEFAULT_PROJECT,
            server.settings.limits,
            server.prices,
            server.policies.ingest_redactors(),
        )
    except OtlpError as exc:
        raise HTTPException(400, str(exc)) from None
    except WorkerLost as exc:
        raise retry_later(str(exc)) from None
    enforce_project(who, rows)
    await commit(server, rows)
    await apply_pending_scores(server, rows)


class InFlight:
    """Counts ingest requests being handled; past the limit, 503 with Retry-After."""

    def __init__(self, server: ServerState) -> None:
        self.server = server

    def __enter__(self) -> None:
        if self.server.ingest_in_flight >= self.server.settings.max_ingest_in_flight:
            raise retry_later("too many ingest requests at once")
        self.server.ingest_in_flight += 1

    def __exit__(self, *exc) -> None:
        self.server.ingest_in_flight -= 1


async def apply_pending_scores(server: ServerState, rows: Rows) -> None:
    """Scores that came before their trace (see :mod:`tracehive.server.scores`), now onto its
    session, or onto their events among ``rows``."""
    pending = server.pending
    # A score holding the lock may be about to keep its feedback: wait for it. Otherwise nothing
    # can change between this test and the return (no await), so a score coming later finds the
    # trace stored.
    if not pending and not pending.lock.locked():
        return
    async with pending.lock:
        updates, scored, applied = pending.updates_for(rows)
        if updates:
            batch = Batch(sessions=updates)
            redact_batch(batch, server.policies.ingest_redactors())
            await commit(server, Rows.of(batch))
        for project, items in scored.items():
            await store_event_feedback(server, project, items)
        if applied:
            pending.forget(applied)


async def store_event_feedback(server: ServerState, project: str, items: list[EventFeedback]) -> list[bool]:
    """Merge feedback into stored events of a project (redacted by its rules), on the writer's
    thread after every batch acknowledged before; returns whether each event was found."""
    redactor = (server.policies.ingest_redactors() or {}).get(project)
    if redactor:  # on copies: a score not stored here waits, and is redacted when it is stored
        items = [(trace_id, event_id, copy.deepcopy(feedback)) for trace_id, event_id, feedback in items]
        for _, _, feedback in items:
            redactor.apply({"feedback": feedback})
    store = server.store
    return await written(lambda: server.writer.run(lambda: store.add_event_feedback(project, items)))


@router.post("/v1/traces", summary="OTLP/HTTP trace export (protobuf or JSON)")
async def export_traces(request: Request, who: Principal = Depends(principal)) -> Response:
    return await ingest_otlp(request, who)


async def ingest_otlp(request: Request, who: Principal) -> Response:
    """Store one OTLP export for ``who`` (each route that takes OTLP authenticates its own way)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in (PROTOBUF, JSON):
        raise HTTPException(415, f"Content-Type must be {PROTOBUF} or {JSON}, got {content_type!r}")
    server = state(request)
    with InFlight(server):
        body = await read_body(request, server.settings.limits.max_body_bytes)
        await ingest(server, who, content_type, body)
    if content_type == PROTOBUF:
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type=PROTOBUF)
    return Response(b"{}", media_type=JSON)
