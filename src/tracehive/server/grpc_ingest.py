"""OTLP/gRPC trace ingest (``tracehive serve --grpc-port 4317``), for SDKs that default to gRPC.

The service takes the raw request bytes and hands them to the same ingest path as ``POST
/v1/traces`` (:func:`tracehive.server.ingest.ingest`): the same keys (``authorization: Bearer``
metadata), limits (the message size limit is the body limit) and durability (answered once
committed). HTTP failures map onto the gRPC codes the OTLP spec gives them, so exporters retry
exactly what they should (UNAVAILABLE) and drop the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import grpc
from fastapi import HTTPException
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tracehive.server.auth import bearer_token
from tracehive.server.deps import ServerState
from tracehive.server.ingest import InFlight, ingest
from tracehive.server.workers import PROTOBUF

log = logging.getLogger("tracehive.server")
SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    507: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
_OK = ExportTraceServiceResponse().SerializeToString()


def _identity(data: bytes) -> bytes:
    return data


def _export(server: ServerState) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]:
    """The Export method (a coroutine function, so that grpc.aio awaits it)."""

    async def export(body: bytes, context: grpc.aio.ServicerContext) -> bytes:
        metadata = dict(context.invocation_metadata() or ())
        token = bearer_token(metadata.get("authorization"))
        who = server.keys.lookup(token) if token else None
        if who is None:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "missing or unknown API key: send 'authorization: Bearer <key>'"
            )
        try:
            with InFlight(server):
                await ingest(server, who, PROTOBUF, body)
        except HTTPException as exc:
            await context.abort(_CODES.get(exc.status_code, grpc.StatusCode.INTERNAL), str(exc.detail))
        except Exception:  # as over HTTP: logged here, no stack trace to the client
            log.exception("unexpected error in OTLP/gRPC export")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
        return _OK

    return export


async def start_grpc(server: ServerState, address: str) -> grpc.aio.Server:
    """Serve the OTLP trace service on ``address`` (``host:port``) in the running event loop."""
    limit = server.settings.limits.max_body_bytes
    grpc_server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", 1024 * 1024)]
    )
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {"Export": grpc.unary_unary_rpc_method_handler(_export(server), request_deserializer=_identity,
                                                        response_serializer=_identity)},
    )  # fmt: skip
    grpc_server.add_generic_rpc_handlers((handler,))
    if grpc_server.add_insecure_port(address) == 0:
        raise OSError(f"cannot listen for OTLP/gRPC on {address}")
    await grpc_server.start()
    return grpc_server
