"""A FastAPI app traced with one session per request, each with the user who made it.

Run it with ``HH_API_KEY``, ``HH_PROJECT`` and ``HH_API_URL`` set::

    uvicorn tracehive.examples.web_server:app --port 8000
    curl 'http://127.0.0.1:8000/chat?user_id=u1&message=hello'

One tracer for the process, made at import; ``with tracer.with_session(...)`` in each request makes
that request's session. Everything traced inside it belongs to it, including asyncio tasks it starts
and work it hands to threads, however many requests run at once.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tracehive import HoneyHiveTracer, trace

tracer = HoneyHiveTracer.init(session_name="web-server")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    # uvicorn ends the process by re-raising SIGTERM after shutdown, so exit handlers never run:
    # send what is still queued here.
    await asyncio.to_thread(tracer.flush, timeout=10)


app = FastAPI(lifespan=lifespan)


@trace(event_type="tool")
def search_documents(message: str) -> list[str]:
    """A blocking call (a database, a vector store): run on a worker thread."""
    return [f"doc about {word}" for word in message.split()[:3]]


@trace(event_type="model")
async def generate(message: str, documents: list[str]) -> str:
    await asyncio.sleep(0.01)  # the LLM call
    tracer.enrich_span(metrics={"documents": len(documents)})
    return f"answer to {message!r} from {len(documents)} documents"


@trace(event_type="chain")
async def answer(message: str) -> str:
    documents = await asyncio.to_thread(search_documents, message)
    return await generate(message, documents)


@app.get("/chat")
async def chat(user_id: str, message: str) -> dict:
    with tracer.with_session(session_name="chat", user_properties={"user_id": user_id}, inputs={"message": message}):
        reply = await answer(message)
        tracer.enrich_session(outputs={"reply": reply})
        return {"reply": reply}
