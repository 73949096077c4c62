"""OTLP/HTTP trace ingest: ``POST /v1/traces``, protobuf or JSON, optionally gzip-compressed.

A request is answered 200 only once everything it carried is committed to the store.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tracehive.model import DEFAULT_PROJECT, Batch
from tracehive.server.auth import Principal
from tracehive.server.deps import principal, state
from tracehive.server.limits import Limits, check_spans, enforce_batch
from tracehive.server.mapping import spans_to_batch
from tracehive.server.otlp import OtlpError, Span, decode_json, decode_protobuf
from tracehive.store.base import StoreFullError
from tracehive.store.writer import Overloaded

router = APIRouter(tags=["ingest"])

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


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


def to_batch(decode: Callable[[bytes], list[Span]], body: bytes, default_project: str, limits: Limits) -> Batch:
    """Decode, check and map one request body (CPU work, run off the event loop)."""
    spans = decode(body)
    check_spans(spans, limits)
    batch = spans_to_batch(spans, default_project)
    enforce_batch(batch, limits)
    return batch


def enforce_project(who: Principal, batch: Batch) -> None:
    """A project key writes only to its own project."""
    if who.project is None:
        return
    for item in (*batch.events, *batch.sessions):
        if item.project != who.project:
            raise HTTPException(403, f"this API key cannot write to project {item.project!r}")


def retry_later(message: str) -> HTTPException:
    """The answer to a client the server cannot serve now: 503 with when to try again."""
    return HTTPException(503, f"{message}, retry later", headers={"Retry-After": "1"})


async def commit(request: Request, batch: Batch) -> None:
    """Hand a batch to the writer and wait until it is durable, mapping failures onto HTTP."""
    try:
        await asyncio.wrap_future(state(request).writer.submit(batch))
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
        decode = decode_protobuf if content_type == PROTOBUF else decode_json
        try:
            batch = await run_in_threadpool(to_batch, decode, body, who.project or DEFAULT_PROJECT, limits)
        except OtlpError as exc:
            raise HTTPException(400, str(exc)) from None
        enforce_project(who, batch)
        await commit(request, batch)
    finally:
        server.ingest_in_flight -= 1
    if content_type == PROTOBUF:
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type=PROTOBUF)
    return Response(b"{}", media_type=JSON)
