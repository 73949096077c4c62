"""Service B of the cross-service test: continues the caller's session from its HTTP headers."""

from __future__ import annotations

from fastapi import FastAPI, Request

from tracehive import HoneyHiveTracer, trace

app = FastAPI()
tracer = HoneyHiveTracer.init(session_name="service-b")


@trace
def compute(q: str) -> str:
    return q.upper()


@trace(event_type="chain")
def serve(q: str) -> dict:
    return {"answer": compute(q)}


@app.get("/work")
def work(q: str, request: Request) -> dict:
    token = tracer.link(dict(request.headers))
    try:
        return serve(q)
    finally:
        tracer.unlink(token)


@app.post("/flush")
def flush() -> dict:
    return {"flushed": tracer.flush()}
