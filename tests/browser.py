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


def follow(link) -> None:
    """Click a link and wait until the page it opens has loaded: read right after a bare click, the tab
    can hold the new page before its body is parsed (an empty table) or still the old one."""
    with link.page.expect_navigation() as navigation:
        link.click()
    response = navigation.value
    assert response is not None and response.ok, f"{link} opened {response and response.status}"
