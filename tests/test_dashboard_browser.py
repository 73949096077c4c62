"""The dashboard in real headless Chromium (Debian's, never a downloaded one) against a real server
loaded by programs using our SDK. Screenshots land in test-artifacts/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.browser import follow, log_in, needs_chromium
from tests.conftest import Server, loaded_server

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
XSS = "<img src=x onerror=alert(1)>"
PROJECT = "dash"

pytestmark = needs_chromium

LOAD = """
import runpy
from tracehive import HoneyHiveTracer, trace

runpy.run_module("tracehive.examples.seed", run_name="__main__")

for i in range(6):
    tracer = HoneyHiveTracer.init(session_name=f"chat-{i}")
    tracer.enrich_session(user_properties={"user_id": f"user-{i % 3}", "plan": ["free", "pro", "premium"][i % 3]},
                          metadata={"request_id": f"req-{i}"})

tracer = HoneyHiveTracer.init(session_name="<script>alert(2)</script>")
tracer.enrich_session(user_properties={"user_id": "user-xss", "plan": "free", "nickname": XSS},
                      metadata={XSS: XSS})

tracer = HoneyHiveTracer.init(session_name="agent run")
tracer.enrich_session(user_properties={"user_id": "user-0", "plan": "free", "preferences": {"theme": "dark"}},
                      metadata={"flags": {"new_ui": True}, "env": "prod"},
                      metrics={"total_tokens": 812, "cost": 0.0123})

@trace(event_type="model", event_name="llm.call")
def call_model(prompt):
    tracer.enrich_span(metrics={"total_tokens": 812}, config={"model": "gpt-x", "temperature": 0.2})
    return "lorem ipsum " * 60

@trace(event_type="tool")
def search(query):
    return ["result one", "result two"]

@trace(event_type="tool")
def broken():
    raise RuntimeError("the tool failed")

@trace(event_type="chain", event_name="answer")
def answer(question):
    docs = search(question)
    try:
        broken()
    except RuntimeError:
        pass
    return call_model(question + str(docs))

answer("how tall is the tallest tree?")
tracer.flush()
""".replace("XSS", repr(XSS))


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with loaded_server(tmp_path_factory.mktemp("dashboard-data"), [(LOAD, PROJECT)]) as running:
        yield running


@pytest.fixture(scope="module")
def page(browser, dash: Server) -> Iterator:
    """One logged-in tab shared by the module's tests; it records every dialog that opens."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=dash.url)
    tab = context.new_page()
    tab.dialogs = []
    tab.on("dialog", lambda dialog: (tab.dialogs.append(dialog.message), dialog.dismiss()))
    tab.goto("/")
    assert "/login" in tab.url
    log_in(tab, dash.key)
    yield tab
    context.close()


def shot(tab, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def rows(tab) -> list[str]:
    return tab.locator("table.sessions tbody tr").all_inner_texts()


def test_login_refuses_an_unknown_key_and_keeps_the_target(browser, dash):
    context = browser.new_context(base_url=dash.url)
    tab = context.new_page()
    tab.goto("/users?project=dash")
    assert "/login?next=" in tab.url
    tab.fill("input[name=key]", "th-not-a-key")
    tab.click("button[type=submit]")
    assert "Unknown API key" in tab.locator(".error").inner_text()
    log_in(tab, dash.key, landing=r"/users\?project=dash$")
    cookie = next(c for c in context.cookies() if c["name"] == "tracehive_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    context.close()


def test_seed_session_is_listed(page):
    page.goto(f"/?project={PROJECT}")
    listed = rows(page)
    assert len(listed) == 9
    assert any("user_12345" in row and "premium" in row for row in listed)
    assert page.locator("figure.chart svg polyline, figure.chart svg circle").count() > 0
    shot(page, "sessions")


def test_session_page_shows_user_properties_apart_from_metadata(page):
    page.goto(f"/?project={PROJECT}&filter=" + 'user_id = "user_12345"')
    follow(page.locator("a.session-link").first)
    page.wait_for_url(re.compile(r"/sessions/"))
    props = page.locator('section[data-section="User Properties"]')
    text = props.inner_text()
    assert "user_12345" in text and "premium" in text and "user@example.com" in text
    assert props.locator("dt", has_text="is_beta").count() == 1
    assert props.locator(".v-bool").inner_text() == "true"  # a boolean, shown as one, not the string "true"
    metadata = page.locator('section[data-section="Metadata"]')
    assert metadata.count() == 1 and "user_12345" not in metadata.inner_text()
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
        clip = {"x": 0, "y": 0, "width": 1360, "height": 540}
        page.screenshot(path=str(ROOT / "docs" / "session-view.png"), clip=clip)
    follow(page.locator("ol.tree a").first)  # the span: its own user properties
    assert "search" in page.locator('section[data-section="User Properties"]').inner_text()
    assert "best hiking boots" in page.locator('section[data-section="Inputs"]').inner_text()
    shot(page, "session")


def test_event_tree_timeline_and_typed_values(page):
    page.goto(f"/?project={PROJECT}&filter=" + 'session_name = "agent run"')
    follow(page.locator("a.session-link").first)
    page.wait_for_url(re.compile(r"/sessions/"))
    names = page.locator("ol.tree .name").all_inner_texts()
    assert [n.split()[-1] for n in names] == ["answer", "search", "broken", "llm.call"]
    assert page.locator("ol.tree li.depth-1").count() == 3
    assert page.locator("ol.tree li.has-error").count() == 1
    assert page.locator("ol.tree svg.bar rect").count() == 4
    assert page.locator('section[data-section="Metadata"] .v-bool').inner_text() == "true"
    follow(page.locator("ol.tree a", has_text="llm.call"))
    outputs = page.locator('section[data-section="Outputs"]')
    assert outputs.locator("details.fold").count() == 1  # the long answer is folded
    assert page.locator('section[data-section="Config"] .v-num').inner_text() == "0.2"
    follow(page.locator("ol.tree a", has_text="broken"))
    assert "the tool failed" in page.locator('section[data-section="Error"]').inner_text()
    shot(page, "session-tree")


def test_filter_typed_in_the_ui_narrows_the_list(page):
    page.goto(f"/?project={PROJECT}")
    before = len(rows(page))
    box = page.locator("#filter")
    box.click()
    box.press_sequentially("user_properties.pl")
    page.locator("ul.suggestions li", has_text="user_properties.plan").first.wait_for()
    box.fill('user_properties.plan = "premium"')
    box.press("Enter")
    page.wait_for_url(re.compile(r"filter="))
    after = rows(page)
    assert 0 < len(after) < before
    assert all("premium" in row for row in after)
    assert page.locator("#filter").input_value() == 'user_properties.plan = "premium"'
    shot(page, "sessions-filtered")


def test_a_bad_filter_is_explained_on_the_page(page):
    response = page.goto(f"/?project={PROJECT}&filter=" + "user_properties.plan = premium")
    assert response.status == 400
    assert "put strings in quotes" in page.locator(".error").inner_text()


def test_users_view_lists_the_seed_user(page):
    page.goto(f"/users?project={PROJECT}")
    row = page.locator("table.users tbody tr", has_text="user_12345")
    assert row.count() == 1
    assert "premium" in row.inner_text() and "is_beta" in row.inner_text()
    shot(page, "users")
    follow(row.locator("a.user-link"))
    page.wait_for_url(re.compile(r"filter="))
    assert len(rows(page)) == 1


def test_a_user_id_in_the_sessions_list_opens_that_users_sessions(page):
    page.goto(f"/?project={PROJECT}")
    follow(page.locator("table.sessions a.user-link", has_text="user-1").first)
    page.wait_for_url(re.compile(r"filter=user_id"))
    assert page.locator("#filter").input_value() == 'user_id = "user-1"'
    listed = rows(page)
    assert len(listed) == 2 and all("user-1" in row for row in listed)


def test_group_by_plan_shows_a_row_per_plan(page):
    page.goto(f"/groups?project={PROJECT}&by=user_properties.plan")
    groups = dict(
        (cells[0], int(cells[1]))
        for cells in (r.split("\t") for r in page.locator("table.groups tbody tr").all_inner_texts())
    )
    assert groups == {"premium": 3, "free": 4, "pro": 2}
    assert page.locator("figure.chart ul.legend li").count() >= 3
    shot(page, "groups")
    follow(page.locator("table.groups a", has_text="pro"))
    assert len(rows(page)) == 2


def test_user_typed_markup_renders_as_text(page):
    for path in (f"/?project={PROJECT}&cols=nickname", f"/users?project={PROJECT}"):
        page.goto(path)
        assert XSS in page.locator("main").inner_text()
    page.goto(f"/?project={PROJECT}&filter=" + 'user_id = "user-xss"')
    assert "<script>alert(2)</script>" in page.locator("a.session-link").inner_text()
    follow(page.locator("a.session-link"))
    page.wait_for_url(re.compile(r"/sessions/"))
    assert XSS in page.locator('section[data-section="User Properties"]').inner_text()
    assert page.locator('section[data-section="Metadata"] dt').inner_text() == XSS
    assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0
    assert page.dialogs == []
    shot(page, "xss")


def test_login_cookie_reads_the_api_but_cannot_forge_logout(page, dash):
    page.goto("/")
    assert page.request.get(f"/api/v1/sessions?project={PROJECT}").ok
    forged = page.request.post("/logout", form={"csrf": "guess"})
    assert forged.status == 403
    cross_site = page.request.post("/logout", form={"csrf": "guess"}, headers={"Origin": "http://evil.example"})
    assert cross_site.status == 403
    page.goto("/users")
    assert "/login" not in page.url  # still logged in


def test_logout_ends_the_login(browser, dash):
    context = browser.new_context(base_url=dash.url)
    tab = context.new_page()
    log_in(tab, dash.key)
    tab.click("form.logout button")
    tab.wait_for_url(re.compile(r"/login"))
    tab.goto("/")
    assert "/login" in tab.url
    assert tab.request.get("/api/v1/sessions").status == 401
    context.close()


def test_a_project_key_sees_only_its_project(browser, dash):
    done = subprocess.run([sys.executable, "-m", "tracehive", "keys", "create", "--project", "elsewhere",
                           "--data-dir", str(dash.data_dir)], capture_output=True, text=True, check=True)  # fmt: skip
    context = browser.new_context(base_url=dash.url)
    tab = context.new_page()
    log_in(tab, done.stdout.strip().splitlines()[-1])
    assert "No sessions match." in tab.locator("table.sessions").inner_text()
    response = tab.goto(f"/?project={PROJECT}")
    assert response.status == 403 and "cannot read project" in tab.locator(".error").inner_text()
    context.close()
