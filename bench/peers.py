"""The peers the ingest benchmarks compare against, each started as a user would start it, with a
way to count the spans it has stored: Arize Phoenix (``phoenix serve``, SQLite) and MLflow's
tracking server (``mlflow server``, one worker, SQLite), both taking OTLP/HTTP at ``/v1/traces``."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from common import ADMIN_KEY, Server, free_port, start_tracehive, venv, wait_http

PHOENIX = "arize-phoenix==20.26.1"
MLFLOW = "mlflow==3.17.2"


@dataclass
class Peer:
    """A running server and what the benchmark needs to load it and read it back."""

    name: str
    server: Server
    endpoint: str  # where OTLP/HTTP traces go
    headers: dict[str, str]
    health: str  # the cheapest GET the server answers, the floor of its request latency
    count: Callable[[], int]  # spans stored and queryable now
    data_dir: Path


def start_tracehive_peer(data_dir: Path) -> Peer:
    server = start_tracehive(data_dir)
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}

    def count() -> int:
        # Every bench session has one of 100 users; the users view's event counts add up to them all.
        users = httpx.get(f"{server.url}/api/v1/users", params={"limit": 1000}, headers=auth, timeout=60)
        return sum(user["event_count"] for user in users.json()["users"])

    return Peer("tracehive", server, f"{server.url}/v1/traces", auth, f"{server.url}/api/v1/health", count, data_dir)


def start_phoenix(data_dir: Path) -> Peer:
    python = venv("phoenix", PHOENIX)
    port = free_port()
    env = {**os.environ, "PHOENIX_WORKING_DIR": str(data_dir), "PHOENIX_PORT": str(port),
           "PHOENIX_GRPC_PORT": str(free_port()), "PHOENIX_HOST": "127.0.0.1",
           "PHOENIX_TELEMETRY_ENABLED": "false"}  # fmt: skip
    log = data_dir.parent / "phoenix.log"
    process = subprocess.Popen([str(python.parent / "phoenix"), "serve"], env=env, stdout=log.open("wb"),
                               stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    server = Server(url, process, log)
    wait_http(f"{url}/healthz", 180, process)
    query = "{ projects { edges { node { recordCount } } } }"

    def count() -> int:
        answer = httpx.post(f"{url}/graphql", json={"query": query}, timeout=60).json()
        return sum(edge["node"]["recordCount"] for edge in answer["data"]["projects"]["edges"])

    return Peer("phoenix", server, f"{url}/v1/traces", {}, f"{url}/healthz", count, data_dir)


def start_mlflow(data_dir: Path) -> Peer:
    python = venv("mlflow", MLFLOW)
    port = free_port()
    database = data_dir / "mlflow.db"
    log = data_dir.parent / "mlflow.log"
    command = [str(python.parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--backend-store-uri", f"sqlite:///{database}",
               "--default-artifact-root", str(data_dir / "artifacts")]  # fmt: skip
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    process = subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=data_dir)
    url = f"http://127.0.0.1:{port}"
    server = Server(url, process, log)
    wait_http(f"{url}/health", 180, process)
    created = httpx.post(f"{url}/api/2.0/mlflow/experiments/create", json={"name": "bench"}, timeout=60)
    created.raise_for_status()
    experiment = created.json()["experiment_id"]

    def count() -> int:
        # The spans table of the server's own database (read-only): what it has committed.
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
            return db.execute("SELECT count(*) FROM spans").fetchone()[0]

    headers = {"x-mlflow-experiment-id": experiment}
    return Peer("mlflow", server, f"{url}/v1/traces", headers, f"{url}/health", count, data_dir)


STARTERS = {"tracehive": start_tracehive_peer, "phoenix": start_phoenix, "mlflow": start_mlflow}
