"""OTLP/HTTP trace ingest: ``POST /v1/traces``, protobuf or JSON, optionally gzip-compressed.

A request is answered 200 only once everything it carried is committed to the store.
"""

from __future__ import annotations

import asyncio
import zlib

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tracehive.model import DEFAULT_PROJECT
from tracehive.server.auth import Principal
from tracehive.server.deps import principal, state
from tracehive.server.otlp import OtlpError
from tracehive.server.workers import JSON, PROTOBUF, WorkerLost
from tracehive.store.base import StoreFullError
from tracehive.store.columns import Rows
from tracehive.store.writer import Overloaded

router = APIRouter(tags=["ingest"])


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, decompressed, refusing (413) anything over ``limit`` bytes either way."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
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


async def commit(request: Request, rows: Rows) -> None:
    """Hand a batch to the writer and wait until it is durable, mapping failures onto HTTP."""
    try:
        await asyncio.wrap_future(state(request).writer.submit(rows))
    except Overloaded:
        raise retry_later("server is overloaded") from None
    except StoreFullError:
        raise HTTPException(507, "the store is out of space; nothing from this request was stored") from None


@router.post("/v1/traces", summary="OTLP/HTTP trace export (protobuf or JSON)")
async def export_traces(request: Request, who: Principal = Depends(principal)) -> Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in (PROTOBUF, JSON):
        raise HTTPException(415, f"Content-Type must be {PROTOBUF} or {JSON}, got {content_type!r}")
    server = state(request)
    if server.ingest_in_flight >= server.settings.max_ingest_in_flight:
        raise retry_later("too many ingest requests at once")
    server.ingest_in_flight += 1
    try:
        limits = server.settings.limits
        body = await read_body(request, limits.max_body_bytes)
        try:
            rows = await server.workers.prepare(
                content_type, body, who.project or DEFAULT_PROJECT, limits, redactors=server.policies.ingest_redactors()
            )
        except OtlpError as exc:
            raise HTTPException(400, str(exc)) from None
        except WorkerLost as exc:
            raise retry_later(str(exc)) from None
        enforce_project(who, rows)
        await commit(request, rows)
    finally:
        server.ingest_in_flight -= 1
    if content_type == PROTOBUF:
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type=PROTOBUF)
    return Response(b"{}", media_type=JSON)
