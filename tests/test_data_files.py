"""The data folder is private to the server's user: created 0700, its files (the DuckDB file, its
write-ahead log, the keys) 0600, whatever umask the server or the keys command was started with."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import start_server
from tests.otlp_payloads import json_request, new_span_id, new_trace_id


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Start child processes with ``mask``, the usual 022 (their files would be readable by all)."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes(folder: Path) -> dict[str, int]:
    return {path.name: stat.S_IMODE(path.stat().st_mode) for path in [folder, *folder.iterdir()]}


def test_the_server_keeps_its_folder_and_files_private(tmp_path):
    folder = tmp_path / "new" / "data"
    with umask(0o022):
        server = start_server(folder)
    try:
        with server.client() as client:
            body = json_request([{"trace_id": new_trace_id(), "span_id": new_span_id(), "name": "x"}])
            assert client.post("/v1/traces", json=body).status_code == 200
        with umask(0o022):
            done = subprocess.run([sys.executable, "-m", "tracehive", "keys", "create", "--data-dir", str(folder)],
                                  capture_output=True, text=True, check=True)  # fmt: skip
        assert done.stdout.strip()
        found = modes(folder)
        assert {"tracehive.duckdb", "tracehive.duckdb.wal", "keys.json"} <= set(found), found
        assert found == {name: 0o700 if name == "data" else 0o600 for name in found}
    finally:
        server.stop()


def test_the_keys_command_makes_a_private_folder(tmp_path):
    folder = tmp_path / "keys-first"
    with umask(0o022):
        subprocess.run([sys.executable, "-m", "tracehive", "keys", "create", "--data-dir", str(folder)],
                       capture_output=True, check=True)  # fmt: skip
    assert modes(folder) == {"keys-first": 0o700, "keys.json": 0o600}


def test_files_an_earlier_version_left_readable_are_narrowed(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir(mode=0o755)
    with umask(0o022):
        server = start_server(folder)
    server.stop()
    (folder / "tracehive.duckdb").chmod(0o644)
    with umask(0o022):
        server = start_server(folder)
    try:
        assert stat.S_IMODE((folder / "tracehive.duckdb").stat().st_mode) == 0o600
    finally:
        server.stop()
