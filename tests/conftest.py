"""Shared fixtures: a real tracehive server process on a loopback port, with a real DuckDB file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ADMIN_KEY = "th-test-admin-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    key: str
    data_dir: Path
    process: subprocess.Popen

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key or self.key}"}, timeout=30.0)

    def get(self, path: str, **params) -> dict:
        with self.client() as client:
            response = client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def run_program(self, source: str, project: str = "tests", timeout: float = 60.0, **env: str):
        """Run a Python program that uses our SDK against this server; returns the finished process."""
        full_env = {
            **os.environ,
            "HH_API_KEY": self.key,
            "HH_API_URL": self.url,
            "HH_PROJECT": project,
            **env,
        }
        return subprocess.run(
            [sys.executable, "-c", source], env=full_env, capture_output=True, text=True, timeout=timeout
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def create_key(server: Server, project: str, *extra: str) -> str:
    """A key made as a user makes one, ``tracehive keys create --project P``; returns what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "tracehive", "keys", "create", "--project", project, "--data-dir", str(server.data_dir),
         *extra],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def start_server(
    data_dir: Path, *extra: str, key: str = ADMIN_KEY, python: str = sys.executable, host: str = "127.0.0.1"
) -> Server:
    port = free_port()
    process = subprocess.Popen(
        [python, "-m", "tracehive", "serve", "--host", host, "--port", str(port), "--data-dir", str(data_dir),
         "--api-key", key, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stdout.read().decode(errors='replace')}")
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return Server(url, key, data_dir, process)
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not become healthy in 60 s")


def start_server_on(backend: str, data_dir: Path, *extra: str) -> Server:
    """A server on DuckDB (``duckdb``) or on ClickHouse run by chDB in the server's process
    (``clickhouse``), its data in ``data_dir`` either way."""
    store = ("--store", f"chdb://{data_dir / 'chdb'}?database=served") if backend == "clickhouse" else ()
    return start_server(data_dir, *store, *extra)


def files_holding(folder: Path, needle: bytes) -> list[str]:
    """Every file under ``folder`` whose bytes contain ``needle`` (what is on disk, whatever the store)."""
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


@contextmanager
def loaded_server(data_dir: Path, programs: list[tuple[str, str]]) -> Iterator[Server]:
    """A server that SDK programs have written to first: (source, project) pairs, run in order."""
    running = start_server(data_dir)
    try:
        for source, project in programs:
            done = running.run_program(source, project=project)
            assert done.returncode == 0, done.stderr
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Debian's headless Chromium, one per test module."""
    from tests.browser import chromium

    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def served_with_fake_openai(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Any]]:
    """A server of the module's own and the fake OpenAI of tests/instrumentors.py, both on loopback."""
    from tests.instrumentors import FakeOpenAI

    running = start_server(tmp_path_factory.mktemp("server-data"))
    fake = FakeOpenAI()
    try:
        yield running, fake
    finally:
        fake.close()
        running.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("server-data"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def chdb_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A clickhouse-connect DSN for chDB, the ClickHouse engine in-process. chDB opens one data folder
    per process, so every test of a worker shares it; each keeps to a database of its own."""
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture(scope="session", params=("duckdb", "chdb"))
def tenants(request, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Projects a and b on one server per store (DuckDB, ClickHouse through chDB), for the
    hardening tests: see tests/tenants.py."""
    from tests.tenants import start_tenants

    running = start_tenants(tmp_path_factory.mktemp(f"tenants-{request.param}"), request.param)
    yield running
    running.stop()
