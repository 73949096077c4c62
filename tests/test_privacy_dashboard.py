"""The dashboard's read-only privacy page, in Debian's headless Chromium: each project's rules and
retention as saved, escaped, and only the projects the logged-in key may read."""

from __future__ import annotations

import uuid

from tests.browser import log_in, needs_chromium

from tracehive.server.auth import KEYS_FILE, KeyRing

pytestmark = needs_chromium


def test_privacy_page_lists_rules_read_only(server, browser):
    mine, theirs = f"pv-{uuid.uuid4().hex[:6]}", f"pv-{uuid.uuid4().hex[:6]}"
    with server.client() as client:
        for project, days in ((mine, 30), (theirs, None)):
            rules = [{"path": "user_properties.email", "action": "hash"}, {"pattern": "card", "action": "mask"}]
            answer = client.put(f"/api/v1/projects/{project}/privacy", json={"redact": rules, "retention_days": days})
            assert answer.status_code == 200, answer.text
    key = KeyRing(server.data_dir / KEYS_FILE).create("pv", mine)
    context = browser.new_context(base_url=server.url)
    try:
        tab = context.new_page()
        tab.goto("/privacy")
        log_in(tab, key, landing=r"/privacy$")
        row = tab.locator("table.privacy tbody tr")
        assert row.count() == 1
        text = row.inner_text()
        assert mine in text and "hash user_properties.email" in text and "mask pattern card" in text
        assert "30.0 days" in text and theirs not in tab.content()
    finally:
        context.close()
