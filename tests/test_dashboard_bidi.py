"""Right-to-left overrides in user text cannot reorder the page around them: a session named
"\\u202egnp.exe" shows as "exe.png" (that is what its characters say), but the text after it stays
in place. Every place the dashboard shows user text (the list of test_dashboard_xss) is checked in
real Chromium: each text node holding the override has an ancestor that isolates it (``<bdi>`` or
``unicode-bidi: isolate``, read from the computed style) and holds nothing else; and where our own
words follow user text on one line, they are measured to render after it. (Table cells and other
blocks isolate by Chromium's own stylesheet, so the sessions list was safe before: it is checked
so it stays so.)"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from tests.browser import follow, log_in, needs_chromium
from tests.conftest import Server, loaded_server
from tests.hostile_text import program_showing

pytestmark = needs_chromium

RLO = "\u202e"
SPOOF = RLO + "gnp.exe"  # reads "exe.png"
PROJECT = RLO + "project"

LOAD = program_showing(SPOOF, session_id=SPOOF + "id", user_id=SPOOF + "user", long=SPOOF * 60, error=SPOOF)

IN_PROJECT = """
from tracehive import HoneyHiveTracer
tracer = HoneyHiveTracer.init(session_name="in a spoofed project")
tracer.flush()
"""

# Every text node holding the mark, and whether an isolating ancestor holds exactly its text.
UNISOLATED = """mark => {
  const isolating = el => ["isolate", "isolate-override", "plaintext"].includes(getComputedStyle(el).unicodeBidi);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const found = {count: 0, bad: []};
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.data.includes(mark)) continue;
    found.count += 1;
    let el = node.parentElement;
    while (el && !isolating(el)) el = el.parentElement;
    if (!el || el.textContent.trim() !== node.data.trim()) found.bad.push(node.parentElement.outerHTML.slice(0, 160));
  }
  return found;
}"""


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with loaded_server(tmp_path_factory.mktemp("bidi-data"), [(LOAD, "bidi"), (IN_PROJECT, PROJECT)]) as running:
        yield running


@pytest.fixture(scope="module")
def page(browser, dash: Server) -> Iterator:
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=dash.url)
    tab = context.new_page()
    log_in(tab, dash.key)
    yield tab
    context.close()


def assert_isolated(tab, at_least: int) -> None:
    tab.locator("details").evaluate_all("nodes => nodes.forEach(n => n.open = true)")
    found = tab.evaluate(UNISOLATED, RLO)
    assert found["bad"] == [], found["bad"]
    assert found["count"] >= at_least, found  # the page did show the spoofed text


def test_sessions_list(page):
    page.goto("/?project=bidi&cols=" + quote(f"plan,{SPOOF}") + "&split=user_properties.plan")
    assert_isolated(page, at_least=6)  # name, user id, two columns' names and values, chart legends


def test_session_page_and_its_events(page):
    page.goto("/?project=bidi")
    follow(page.locator("a.session-link"))
    page.wait_for_url("**/sessions/**")
    assert page.title() == f"\u2068{SPOOF}\u2069 · tracehive"
    assert_isolated(page, at_least=12)
    follow(page.locator("ol.tree a", has_text="tool"))
    assert_isolated(page, at_least=8)
    name = page.locator("section.detail h2 > bdi").bounding_box()
    after = page.locator("section.detail h2 small").bounding_box()
    assert after["x"] >= name["x"] + name["width"] - 1, (name, after)  # "tool · … · session" comes after
    follow(page.locator("ol.tree a", has_text="typed"))
    assert_isolated(page, at_least=4)


def test_users_and_groups(page):
    page.goto("/users?project=bidi")
    assert_isolated(page, at_least=3)
    page.goto("/groups?project=bidi&by=user_properties.plan")
    assert page.title() == "Group by \u2068user_properties.plan\u2069 · tracehive"
    assert_isolated(page, at_least=2)
    by = f'user_properties."{SPOOF}"'
    page.goto("/groups?project=bidi&by=" + quote(by))
    assert_isolated(page, at_least=2)  # in the heading and the column


def test_an_error_that_echoes_the_filter(page):
    response = page.goto("/?filter=" + quote(f"user_id = {SPOOF}"))
    assert response.status == 400
    assert_isolated(page, at_least=1)


def test_completion_suggestions(page):
    page.goto("/?project=bidi")
    box = page.locator("#filter")
    box.click()
    box.press_sequentially("user_properties.plan = ")
    page.wait_for_function("() => document.querySelectorAll('ul.suggestions li').length > 0", timeout=10_000)
    assert_isolated(page, at_least=1)


def test_project_and_key_names_in_the_header(browser, dash):
    done = subprocess.run([sys.executable, "-m", "tracehive", "keys", "create", "--name", SPOOF, "--project", PROJECT,
                           "--data-dir", str(dash.data_dir)], capture_output=True, text=True, check=True)  # fmt: skip
    context = browser.new_context(base_url=dash.url)
    tab = context.new_page()
    log_in(tab, done.stdout.strip().splitlines()[-1])
    assert tab.locator("a.session-link").inner_text() == "in a spoofed project"
    assert_isolated(tab, at_least=2)  # the key's name and its project
    follow(tab.locator("a.session-link"))
    tab.wait_for_url("**/sessions/**")
    assert_isolated(tab, at_least=3)
    context.close()
