"""A live loopback HTTP server that accepts any export and answers like a tracing backend would.

Peer SDKs export to paths tracehive does not serve (HoneyHive's ``/opentelemetry/v1/traces`` and
session REST calls, Langfuse's ``/api/public/otel/v1/traces``); their exporters still need a real
server on the other end so that connections, requests and answers happen as in production. The
sink reads every body in full and answers 200: an empty protobuf ``ExportTraceServiceResponse``
(zero bytes) to protobuf, ``{}`` or a made-up session id to JSON.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests += 1  # type: ignore[attr-defined]
        if "protobuf" in (self.headers.get("Content-Type") or ""):
            self._answer(b"", "application/x-protobuf")
        elif self.path.rstrip("/").endswith("traces"):
            self._answer(b"{}", "application/json")
        else:
            self._answer(json.dumps({"session_id": str(uuid.uuid4()), "success": True}).encode(), "application/json")

    def do_GET(self) -> None:
        self._answer(b"{}", "application/json")

    def log_message(self, *args: object) -> None:  # keep the benchmark's output readable
        pass


class Sink:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.requests = 0  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def requests(self) -> int:
        return self.server.requests  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
