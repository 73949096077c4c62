"""What every route needs: the server's state and the caller's identity."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from tracehive.server.audit import AuditLog
from tracehive.server.auth import KeyRing, Principal, bearer_token
from tracehive.server.erase import Eraser
from tracehive.server.limits import Limits
from tracehive.server.logins import SESSION_COOKIE, Logins
from tracehive.server.policies import PolicyBook
from tracehive.server.prices import Prices
from tracehive.server.scores import PENDING_FILE, PendingScores
from tracehive.server.workers import IngestWorkers, default_ingest_workers
from tracehive.store.base import QueryBudget, Store
from tracehive.store.writer import BulkWriter


@dataclass
class Settings:
    data_dir: Path
    api_key: str | None = None
    store_url: str | None = None
    limits: Limits = field(default_factory=Limits)
    # Ingest requests decoded or waiting for the writer at once; past it, 503 with Retry-After.
    max_ingest_in_flight: int = 16
    # Processes that decode and map ingest requests (0: a thread of the server process).
    ingest_workers: int = field(default_factory=default_ingest_workers)
    query_budget: QueryBudget = field(default_factory=QueryBudget)
    # host:port for OTLP/gRPC ingest (tracehive serve --grpc-port); None: no gRPC.
    grpc_address: str | None = None
    # How often the server refreshes privacy settings and removes expired sessions.
    housekeeping_seconds: float = 60.0


@dataclass
class ServerState:
    settings: Settings
    store: Store
    writer: BulkWriter
    workers: IngestWorkers
    keys: KeyRing
    policies: PolicyBook
    audit: AuditLog
    eraser: Eraser
    ingest_in_flight: int = 0  # only touched on the event loop
    prices: Prices = field(default_factory=Prices)  # the price table and each project's overrides
    logins: Logins = field(init=False)
    pending: PendingScores = field(init=False)  # scores waiting for their trace

    def __post_init__(self) -> None:
        self.logins = Logins(self.keys, self.store)
        self.pending = PendingScores(self.settings.data_dir / PENDING_FILE)


def state(request: Request) -> ServerState:
    return request.app.state.tracehive


async def principal(request: Request) -> Principal:
    """The caller, from ``Authorization: Bearer KEY``; 401 without a known key. The dashboard's
    login cookie stands in for a key on reads only (GET), so a cookie can never write.
    A key is checked on the event loop (a hash and a dictionary look-up: handing every ingest
    request to a thread for it cost more than the check, bench/RESULTS.md); a cookie's login is
    read from the store, on a thread."""
    token = bearer_token(request.headers.get("authorization"))
    if token is None and request.method in ("GET", "HEAD"):
        found = await run_in_threadpool(state(request).logins.find, request.cookies.get(SESSION_COOKIE))
        if found is not None:
            return found[0]
    if token is None:
        raise HTTPException(401, "missing API key: send 'Authorization: Bearer <key>'",
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    found = state(request).keys.lookup(token)
    if found is None:
        raise HTTPException(401, "unknown API key", headers={"WWW-Authenticate": "Bearer"})
    return found


def readable_projects(who: Principal, project: str | None) -> tuple[str, ...] | None:
    """The projects a query may see: the one asked for, if the caller may read it."""
    if project is None:
        return who.projects
    if who.project is not None and who.project != project:
        raise HTTPException(403, f"this API key cannot read project {project!r}")
    return (project,)
