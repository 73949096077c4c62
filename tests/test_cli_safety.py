"""The server listens on loopback unless told otherwise, and says so when it does not."""

from __future__ import annotations

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
