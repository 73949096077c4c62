"""Reads see what was acknowledged: a request that is not an ingest waits, before it runs, until
the store holds every batch acknowledged before it arrived (see :mod:`tracehive.store.writer`).
When the writer has caught up, as it has whenever ingest is idle, this costs one comparison."""

from __future__ import annotations

import asyncio
import contextlib

from tracehive.store.writer import BulkWriter

# OTLP ingest waits for nothing (it only appends); health must answer however busy the writer is.
_NO_WAIT = frozenset({"/v1/traces", "/opentelemetry/v1/traces", "/api/v1/health"})
# A store that cannot take writes (a full disk) must not hang reads: past this, they read as is.
_MAX_WAIT_SECONDS = 10.0


class ReadAfterWrite:
    """ASGI middleware (cheaper per request than Starlette's BaseHTTPMiddleware)."""

    def __init__(self, app, writer: BulkWriter) -> None:
        self.app = app
        self.writer = writer

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] not in _NO_WAIT:
            waiting = self.writer.caught_up()
            if waiting is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(waiting)), _MAX_WAIT_SECONDS)
        await self.app(scope, receive, send)
