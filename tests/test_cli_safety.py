"""The command line: the server listens on loopback unless told otherwise and says so when it does
not; what users typed is printed as text."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import start_server

from tracehive.cli import PUBLIC_WARNING, reachable_from_elsewhere


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "[::1]", "localhost", "LOCALHOST"]
)
def test_loopback_hosts_are_private(host: str) -> None:
    assert not reachable_from_elsewhere(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "203.0.113.5", "2001:db8::1",
                                  "example.com", "my-laptop"])  # fmt: skip
def test_other_hosts_are_public(host: str) -> None:
    assert reachable_from_elsewhere(host)


def test_serving_on_another_loopback_address_does_not_warn(tmp_path: Path) -> None:
    running = start_server(tmp_path, host="127.0.0.2")
    try:
        assert running.get("/api/v1/health")
    finally:
        running.stop()
    said = running.process.stdout.read().decode(errors="replace")
    assert "serving on http://127.0.0.2:" in said
    assert PUBLIC_WARNING not in said


def test_key_commands_print_hostile_names_as_text(tmp_path: Path) -> None:
    """Names and projects are shown as typed: never read as terminal markup (``[/]`` used to crash
    ``keys create`` after it had stored the key, so the key was never shown)."""

    def keys(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "tracehive", "keys", *args, "--data-dir", str(tmp_path)]
        env = {**os.environ, "COLUMNS": "200"}
        return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)

    created = keys("create", "--project", "[/]", "--name", "[/bold]x[link=x]y")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().startswith("th-") and "'[/]'" in created.stderr
    listed = keys("list")
    assert listed.returncode == 0, listed.stderr
    assert "[/bold]x[link=x]y" in listed.stdout and "│ [/] " in listed.stdout
    assert keys("revoke", "[/]").returncode == 1
    assert keys("revoke", "[/bold]x[link=x]y").returncode == 0
