"""A FastAPI app traced per request, run under uvicorn by the session tests, with either SDK.

``TRACE_SDK`` picks ``tracehive`` or ``honeyhive`` (the same code runs on both); ``SESSION_MODE`` picks
how each request gets its session: ``with_session``, ``create_session`` (in a middleware) or
``init`` (a tracer per request). Each request fans out into two async steps; each step hands a sync helper to a worker
thread (``asyncio.to_thread``), and the handler runs one more on an executor (``run_in_executor``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from fastapi import FastAPI, Request, Response

if os.environ["TRACE_SDK"] == "honeyhive":
    from honeyhive import HoneyHiveTracer, trace
else:
    from tracehive import HoneyHiveTracer, trace

MODE = os.environ["SESSION_MODE"]
USE_EXECUTOR = os.environ.get("USE_EXECUTOR", "1") == "1"
app = FastAPI()
tracer = None if MODE == "init" else HoneyHiveTracer.init(session_name="app-start")


@trace(event_type="tool")
def lookup(user: str, part: int) -> str:
    return f"{user}:{part}"


@trace(event_type="chain")
async def step(user: str, part: int) -> str:
    await asyncio.sleep(0.005 * part)
    return await asyncio.to_thread(lookup, user, part)


@trace(event_type="chain")
async def handle(user: str) -> list[str]:
    parts = list(await asyncio.gather(step(user, 1), step(user, 2)))
    if USE_EXECUTOR:
        parts.append(await asyncio.get_running_loop().run_in_executor(None, lookup, user, 3))
    return parts


if MODE == "create_session":

    @app.middleware("http")
    async def session_per_request(request: Request, call_next: Callable) -> Response:
        """HoneyHive's documented middleware: the handler runs in a task of its own."""
        user = request.query_params.get("user")
        if user:
            await tracer.acreate_session(session_name=f"req-{user}", user_properties={"user_id": user})
        return await call_next(request)


@app.get("/ask")
async def ask(user: str) -> dict:
    name, props = f"req-{user}", {"user_id": user}
    if MODE == "with_session":
        with tracer.with_session(session_name=name, user_properties=props):
            return {"parts": await handle(user)}
    if MODE == "create_session":
        return {"parts": await handle(user)}
    own = HoneyHiveTracer.init(session_name=name)
    own.enrich_session(user_properties=props)
    return {"parts": await handle(user)}


@app.post("/flush")
def flush() -> dict:
    if tracer is not None:
        return {"flushed": tracer.force_flush(timeout_millis=20000)}
    return {"flushed": HoneyHiveTracer.flush_all(timeout_millis=20000)}
