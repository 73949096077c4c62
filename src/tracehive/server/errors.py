"""An unexpected error is answered 500 without ending the client's connection.

Starlette's own last-resort handler sends its 500 and then raises again, and uvicorn closes a
keep-alive connection on any error raised from the app: the client then loses the connection as
well as the request. Errors the app expects (4xx, 409, 503) never get this far.
"""

from __future__ import annotations

import logging

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("tracehive.server")


class KeepConnectionOnError:
    """ASGI middleware: log an unhandled error and answer 500, unless the answer has begun."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if started:  # too late for an answer: let the server end the connection
                raise
            log.exception("unexpected error", exc_info=exc)
            response = JSONResponse({"detail": "internal error; see the server log"}, status_code=500)
            await response(scope, receive, send)
