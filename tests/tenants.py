"""Two tenants on one real server, on either store, for the hardening tests: whatever project
``a`` sends, project ``b``'s next write must still be answered 200 and be readable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
from tests.conftest import Server, start_server
from tests.otlp_payloads import new_span_id, new_trace_id, protobuf_request

from tracehive.server.auth import KEYS_FILE, KeyRing

PROTOBUF = {"Content-Type": "application/x-protobuf"}


@dataclass
class Tenants:
    server: Server
    backend: str
    keys: dict[str, str]  # project -> its key: "a" and "b"

    def client(self, project: str | None = None) -> httpx.Client:
        """A client with project ``project``'s key, or the admin key."""
        return self.server.client(self.keys[project] if project else None)

    def second_tenant_writes(self) -> None:
        """Project b's next write is answered 200 and stored: nothing a sent has broken the store."""
        trace_id = new_trace_id()
        body = protobuf_request([{"trace_id": trace_id, "span_id": new_span_id(), "name": "b-after"}])
        with self.client("b") as client:
            response = client.post("/v1/traces", content=body, headers=PROTOBUF)
            assert response.status_code == 200, response.text
            stored = client.get(f"/api/v1/sessions/{trace_id}")
            assert stored.status_code == 200, stored.text
            assert stored.json()["project"] == "b"

    def stop(self) -> None:
        self.server.stop()


def start_tenants(folder: Path, backend: str, *extra: str) -> Tenants:
    """A server on ``backend`` (DuckDB, or ClickHouse through chDB) with a key each for a and b;
    ingest runs on a thread (no worker processes), to keep the tests light."""
    data_dir = folder / "data"
    data_dir.mkdir(parents=True)
    ring = KeyRing(data_dir / KEYS_FILE)
    keys = {project: ring.create(f"key-{project}", project) for project in ("a", "b")}
    store = ("--store", f"chdb://{folder / 'chdb'}?database=tenants") if backend == "chdb" else ()
    tenants = Tenants(start_server(data_dir, "--ingest-workers", "0", *store, *extra), backend, keys)
    tenants.second_tenant_writes()  # the first insert into a new chDB folder is slow: do it now
    return tenants
