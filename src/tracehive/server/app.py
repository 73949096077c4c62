"""Build the server: the FastAPI app with its store, writer, keys and routes."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tracehive import __version__, dashboard
from tracehive.server import api, honeyhive, honeyhive_read, ingest, langfuse, prices_api, privacy_api
from tracehive.server.audit import AuditLog
from tracehive.server.auth import KEYS_FILE, KeyRing
from tracehive.server.consistency import ReadAfterWrite
from tracehive.server.datadir import make_private
from tracehive.server.deps import ServerState, Settings
from tracehive.server.erase import Eraser
from tracehive.server.errors import KeepConnectionOnError
from tracehive.server.housekeeping import Housekeeping
from tracehive.server.policies import PolicyBook
from tracehive.server.workers import IngestWorkers, use_system_allocator
from tracehive.store import open_store
from tracehive.store.base import Ambiguous, QueryTooCostly, StoreFullError
from tracehive.store.ingest_log import ingest_log_for
from tracehive.store.writer import BulkWriter


def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "path", "body"))
        parts.append(f"{where or 'body'}: {error.get('msg')}")
    return JSONResponse({"detail": "; ".join(parts)}, status_code=400)


def _ambiguous(_: Request, exc: Ambiguous) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=409)


def _too_costly(_: Request, exc: QueryTooCostly) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=503)


def _store_full(_: Request, exc: StoreFullError) -> JSONResponse:
    # Any route that writes (a score kept for later, the audit log, a setting); ingest says more.
    return JSONResponse({"detail": "the store is out of space; free some and try again"}, status_code=507)


def open_keys(settings: Settings) -> tuple[KeyRing, str | None]:
    """The server's keys; on a first start with no key given, a new admin key (returned once)."""
    keys = KeyRing(settings.data_dir / KEYS_FILE)
    created = None
    if settings.api_key:
        keys.add_in_memory(settings.api_key, "admin (from --api-key)")
    elif len(keys) == 0:
        created = keys.create("admin")
    return keys, created


def create_app(settings: Settings, keys: KeyRing | None = None) -> FastAPI:
    use_system_allocator()
    make_private(settings.data_dir)
    if keys is None:
        keys, _ = open_keys(settings)
    store = open_store(settings.store_url, settings.data_dir, settings.query_budget)
    writer = BulkWriter(store, ingest_log=ingest_log_for(store))
    workers = IngestWorkers(settings.ingest_workers)
    policies, audit = PolicyBook(store), AuditLog(settings.data_dir)
    eraser = Eraser(settings.data_dir, store, writer, policies, audit)
    eraser.redo_pending()  # before any request: nobody sees a user half erased
    housekeeping = Housekeeping(store, writer, policies, audit, settings.housekeeping_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        housekeeping.start()
        grpc_server = None
        if settings.grpc_address:
            from tracehive.server.grpc_ingest import start_grpc

            grpc_server = await start_grpc(app.state.tracehive, settings.grpc_address)
        yield
        housekeeping.close()
        if grpc_server is not None:
            await grpc_server.stop(grace=5)
        workers.close()
        writer.close()
        store.close()

    app = FastAPI(
        title="tracehive",
        version=__version__,
        description="Self-hosted tracing for LLM applications: ingest OTLP, query sessions, events and users.",
        lifespan=lifespan,
        # FastAPI's viewers load their scripts from a CDN; tracehive serves nothing it does not ship.
        docs_url=None,
        redoc_url=None,
    )
    app.state.tracehive = ServerState(
        settings=settings,
        store=store,
        writer=writer,
        workers=workers,
        keys=keys,
        policies=policies,
        audit=audit,
        eraser=eraser,
    )
    prices_api.load_prices(app.state.tracehive)
    app.add_middleware(ReadAfterWrite, writer=writer)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Ambiguous, _ambiguous)
    app.add_exception_handler(QueryTooCostly, _too_costly)
    app.add_exception_handler(StoreFullError, _store_full)
    app.add_middleware(KeepConnectionOnError)
    app.include_router(ingest.router)
    app.include_router(api.router)
    app.include_router(prices_api.router)
    app.include_router(honeyhive.router)
    app.include_router(honeyhive_read.router)
    app.include_router(langfuse.router)
    app.include_router(privacy_api.router)
    app.include_router(dashboard.router)
    return app
