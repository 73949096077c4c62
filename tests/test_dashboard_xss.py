"""Stored and reflected XSS: every place the dashboard shows user-supplied text, with hostile values,
in real headless Chromium. Each check asserts three things: the text is shown literally, no element
was injected (no ``<img>``, no ``onload``/``onerror`` attribute, no stray ``<script>``), and no
dialog opened. The page's CSP would block an injected handler anyway, so Chromium's console is
watched too: a CSP refusal there means something slipped past escaping."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from tests.browser import follow, log_in, needs_chromium
from tests.conftest import Server, loaded_server
from tests.hostile_text import HOSTILE_KEY_VALUE, program_showing

pytestmark = needs_chromium

# Breaks out of attributes (both quotes), elements, a <script> block and a template.
EVIL = "'\"><svg onload=alert(1)><img src=x onerror=alert(2)></script><script>alert(3)</script>{{7*7}}"
# Values that end up in links: a scheme an href must never start with.
EVIL_USER = 'javascript:alert(4)//"><img src=x onerror=alert(5)>'
EVIL_PROJECT = "p<img src=x onerror=alert(6)>"
EVIL_SESSION_ID = 's/../../logout"><img src=x onerror=alert(7)>{{7*7}}'  # a "/" must stay inside the id
LONG = EVIL * 12  # folded
ERROR = "boom " + EVIL

LOAD = program_showing(EVIL, session_id=EVIL_SESSION_ID, user_id=EVIL_USER, long=LONG, error=ERROR)

IN_PROJECT = """
from tracehive import HoneyHiveTracer
tracer = HoneyHiveTracer.init(session_name="in a hostile project")
tracer.enrich_session(user_properties={"user_id": "plain-user"})
tracer.flush()
"""


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    programs = [(LOAD, "xss"), (IN_PROJECT, EVIL_PROJECT)]
    with loaded_server(tmp_path_factory.mktemp("xss-data"), programs) as running:
        yield running


def watched(tab) -> None:
    """Record dialogs and CSP refusals on the tab."""
    tab.dialogs, tab.refused = [], []
    tab.on("dialog", lambda dialog: (tab.dialogs.append(dialog.message), dialog.dismiss()))
    tab.on("console", lambda msg: tab.refused.append(msg.text) if "Content Security Policy" in msg.text else None)


@pytest.fixture(scope="module")
def page(browser, dash: Server) -> Iterator:
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=dash.url)
    tab = context.new_page()
    watched(tab)
    log_in(tab, dash.key)
    yield tab
    context.close()


def assert_inert(tab) -> None:
    """Nothing injected ran or exists on the page."""
    tab.wait_for_load_state("load")
    assert tab.locator("img, [onload], [onerror], iframe, object, embed").count() == 0
    assert tab.locator("script:not([src='/static/app.js'])").count() == 0
    assert tab.locator("body a[href^='javascript' i]").count() == 0
    assert tab.dialogs == [] and tab.refused == []


def open_session(tab) -> None:
    tab.goto("/?filter=" + quote('session_name = "' + EVIL.replace('"', '\\"') + '"'))
    follow(tab.locator("a.session-link"))
    tab.wait_for_url(re.compile(r"/sessions/"))


def test_sessions_list_shows_names_ids_and_columns_literally(page):
    page.goto("/?project=xss&cols=" + quote(f"plan,{EVIL}"))
    table = page.locator("table.sessions")
    assert page.locator("a.session-link").inner_text() == EVIL
    assert table.locator("th.prop").all_inner_texts() == ["plan", EVIL]  # column names come from the URL
    cells = table.locator("tbody td").all_inner_texts()
    assert EVIL_USER in cells and EVIL in cells and HOSTILE_KEY_VALUE in cells
    assert_inert(page)


def test_session_page_shows_every_namespace_literally(page):
    open_session(page)
    assert page.title() == f"\u2068{EVIL}\u2069 · tracehive"  # isolated: see test_dashboard_bidi
    assert page.locator("h1").inner_text() == EVIL
    facts = page.locator("dl.facts").inner_text()
    assert EVIL_SESSION_ID in facts and EVIL in facts  # id and source
    metadata = page.locator('section[data-section="Metadata"]')
    metadata.locator("details").evaluate_all("nodes => nodes.forEach(n => n.open = true)")
    assert EVIL in metadata.locator("dt").all_inner_texts()
    assert metadata.locator("details.fold pre").inner_text() == LONG
    nested = metadata.locator("details.tree dd").all_inner_texts()
    assert EVIL in nested and f'"{EVIL}"' not in nested
    assert page.locator('section[data-section="User Properties"] dt').all_inner_texts().count(EVIL) == 1
    for title in ("Metrics", "Config"):
        assert EVIL in page.locator(f'section[data-section="{title}"] dt').all_inner_texts()
    assert EVIL in page.locator('section[data-section="Feedback"] dd').all_inner_texts()
    assert_inert(page)


def test_event_names_types_inputs_and_errors_literally(page):
    open_session(page)
    names = page.locator("ol.tree .name").all_inner_texts()
    assert f"tool {EVIL}" in names and f"{EVIL} typed" in names
    follow(page.locator("ol.tree a", has_text="tool"))
    assert page.locator("section.detail h2").inner_text().startswith(EVIL)
    assert EVIL in page.locator('section[data-section="Inputs"] dd').all_inner_texts()
    assert ERROR in page.locator('section[data-section="Error"]').inner_text()
    follow(page.locator("ol.tree a", has_text="typed"))
    assert page.locator("section.detail h2 small").inner_text().startswith(EVIL)
    assert_inert(page)


def test_users_view_and_its_links(page):
    page.goto("/users?project=xss")
    link = page.locator("a.user-link")
    assert link.inner_text() == EVIL_USER
    assert link.get_attribute("href").startswith("/?")
    assert EVIL in page.locator("td.props").inner_text()
    assert_inert(page)
    follow(link)
    page.wait_for_url(re.compile(r"filter="))
    assert page.locator("a.session-link").inner_text() == EVIL
    assert_inert(page)


def test_group_by_table_links_and_chart_labels(page):
    page.goto("/groups?project=xss&by=user_properties.plan")
    group = page.locator("table.groups td.group a")
    assert group.inner_text() == EVIL and group.get_attribute("href").startswith("/?")
    assert EVIL in page.locator("figure.chart ul.legend li").all_inner_texts()
    assert page.locator("figure.chart svg text").count() > 0
    assert page.locator("figure.chart svg *").evaluate_all("ns => ns.every(n => n.namespaceURI.endsWith('svg'))")
    assert_inert(page)
    follow(group)
    page.wait_for_url(re.compile(r"filter="))
    assert page.locator("a.session-link").inner_text() == EVIL
    page.goto("/?project=xss&split=user_properties.plan")
    assert f"{EVIL} p50" in page.locator("figure.chart ul.legend li").all_inner_texts()
    assert_inert(page)


def test_group_by_a_hostile_key(page):
    by = 'user_properties."' + EVIL.replace('"', '\\"') + '"'
    page.goto("/groups?project=xss&by=" + quote(by))
    assert page.locator("h1 code").inner_text() == by
    assert page.locator("table.groups td.group").all_inner_texts() == [HOSTILE_KEY_VALUE]
    assert_inert(page)


def test_filter_text_is_echoed_literally(page):
    typed = f"user_id = {EVIL}"  # not valid: the error page echoes it
    response = page.goto("/?filter=" + quote(typed))
    assert response.status == 400
    assert page.locator("#filter").input_value() == typed
    assert page.locator(".error").count() == 1
    page.goto("/?project=" + quote(EVIL) + "&cols=" + quote(EVIL) + "&from=" + quote(EVIL))
    assert page.locator("input[name=project]").input_value() == EVIL
    assert page.locator("input[name=from]").input_value() == EVIL
    assert_inert(page)


def suggested(tab, text: str) -> None:
    """Wait until the completion list shows exactly ``text`` (as text) in one of its items."""
    shown = "t => [...document.querySelectorAll('ul.suggestions li')].some(li => li.textContent === t)"
    tab.wait_for_function(shown, arg=text, timeout=10_000)


def test_completion_suggestions_are_text(page):
    page.goto("/?project=xss")
    box = page.locator("#filter")
    box.click()
    box.press_sequentially("metadata.nes")
    suggested(page, "metadata.nested")
    box.fill("")
    box.press_sequentially("user_properties.plan = ")
    suggested(page, json.dumps(EVIL))  # a value, offered as a filter literal
    box.fill("")
    box.press_sequentially("onload")  # fields whose keys are hostile, in every namespace
    suggested(page, "metadata." + json.dumps(EVIL))
    suggested(page, "user_properties." + json.dumps(EVIL))
    assert_inert(page)


def test_project_names_in_pages_and_links(page, dash):
    page.goto("/?filter=" + quote('session_name = "in a hostile project"'))
    link = page.locator("a.session-link")
    assert link.get_attribute("href").endswith("?project=" + quote(EVIL_PROJECT, safe=""))
    follow(link)
    page.wait_for_url(re.compile(r"/sessions/"))
    assert page.locator("dl.facts dd").nth(1).inner_text() == EVIL_PROJECT
    assert_inert(page)
    follow(page.locator("h1 a"))  # the session's own link, built from id and project, still works
    assert page.locator("dl.facts dd").nth(1).inner_text() == EVIL_PROJECT


def test_project_key_header_and_login_form(browser, dash):
    done = subprocess.run([sys.executable, "-m", "tracehive", "keys", "create", "--project", EVIL_PROJECT,
                           "--data-dir", str(dash.data_dir)], capture_output=True, text=True, check=True)  # fmt: skip
    context = browser.new_context(base_url=dash.url)
    tab = context.new_page()
    watched(tab)
    tab.goto("/login?next=" + quote('/"><img src=x onerror=alert(8)>'))
    assert tab.locator("input[name=next]").input_value() == '/"><img src=x onerror=alert(8)>'
    tab.fill("input[name=key]", EVIL)  # a hostile key: refused, the message is ours
    tab.click("button[type=submit]")
    assert tab.locator(".error").inner_text() == "Unknown API key."
    assert_inert(tab)
    tab.goto("/login?next=" + quote("javascript:alert(9)"))
    log_in(tab, done.stdout.strip().splitlines()[-1], landing=r"/$")
    assert tab.locator("header .who").inner_text().endswith(f"project {EVIL_PROJECT}")
    assert tab.locator("a.session-link").inner_text() == "in a hostile project"
    assert_inert(tab)
    context.close()
