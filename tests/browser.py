"""Driving Debian's headless Chromium (never a downloaded one) with Playwright, for the dashboard tests."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (scripts/ensure-chromium)"
)


@contextmanager
def chromium() -> Iterator:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def log_in(tab, key: str, landing: str = r"/$") -> None:
    """Fill the login form the tab is on (or is sent to) and wait for the page it leads to."""
    if "/login" not in tab.url:
        tab.goto("/login")
    tab.fill("input[name=key]", key)
    tab.click("button[type=submit]")
    tab.wait_for_url(re.compile(landing))
