"""The dashboard login against a real browser: cookie flags, CSRF from a real cross-site page,
session fixation, logout that really ends the login, and a login cookie that never writes.

The cookie is not ``Secure`` here: the tests serve plain http on loopback, where a browser would
never send a Secure cookie back. The server sets Secure whenever the request came over https."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from tests.browser import log_in, needs_chromium
from tests.conftest import Server

from tracehive.server.honeyhive import UNSUPPORTED_WRITES
from tracehive.server.logins import SESSION_COOKIE

pytestmark = needs_chromium  # they use the shared `server`: they log in and out but write nothing

ATTACKER = "http://attacker.test/"


@pytest.fixture
def context(browser, server: Server) -> Iterator:
    opened = browser.new_context(base_url=server.url)
    yield opened
    opened.close()


def cookie(context, name: str) -> dict | None:
    return next((c for c in context.cookies() if c["name"] == name), None)


def cross_site_post(context, server: Server, path: str, fields: dict[str, str]) -> int:
    """Submit a form to ``path`` from a page on another site (served by the browser itself, no
    network), as an attacker's page would; returns the status the server answered."""
    inputs = "".join(f'<input name="{k}" value="{v}">' for k, v in fields.items())
    html = f'<form method="post" action="{server.url}{path}">{inputs}</form><script>document.forms[0].submit()</script>'
    context.route(ATTACKER + "**", lambda route: route.fulfill(content_type="text/html", body=html))
    tab = context.new_page()
    with tab.expect_response(lambda r: r.url == server.url + path and r.request.method == "POST") as answer:
        tab.goto(ATTACKER)
    return answer.value.status


def replay(server: Server, token: str) -> int:
    """A request carrying a session token, from outside any browser."""
    return httpx.get(f"{server.url}/api/v1/sessions", cookies={SESSION_COOKIE: token}).status_code


def test_cookies_are_httponly_strict_and_hidden_from_scripts(context, server):
    tab = context.new_page()
    tab.goto("/login")
    csrf = cookie(context, "tracehive_csrf")
    assert csrf["httpOnly"] and csrf["sameSite"] == "Strict" and csrf["path"] == "/"
    log_in(tab, server.key)
    session = cookie(context, SESSION_COOKIE)
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/"
    assert session["secure"] is False  # plain http on loopback; see the module's docstring
    assert tab.evaluate("document.cookie") == ""


def test_login_form_posted_from_another_site_is_refused(context, server):
    status = cross_site_post(context, server, "/login", {"key": server.key, "csrf": "guess", "next": "/"})
    assert status == 403
    assert cookie(context, SESSION_COOKIE) is None


def test_login_form_needs_its_token_and_this_site(context, server):
    tab = context.new_page()
    tab.goto("/login")
    form = {"key": server.key, "csrf": tab.locator("input[name=csrf]").input_value(), "next": "/"}
    for header in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://attacker.test"}):
        answer = context.request.post("/login", form=form, headers=header, max_redirects=0)
        assert answer.status == 403 and "another site" in answer.text()
    answer = context.request.post("/login", form={**form, "csrf": ""}, max_redirects=0)
    assert answer.status == 403 and "form expired" in answer.text()
    assert cookie(context, SESSION_COOKIE) is None
    tab.goto("/login")  # the same post with a fresh token, from this site, logs in
    form["csrf"] = tab.locator("input[name=csrf]").input_value()
    assert context.request.post("/login", form=form, max_redirects=0).status == 303
    assert cookie(context, SESSION_COOKIE) is not None


def test_logout_posted_from_another_site_is_refused(context, server):
    tab = context.new_page()
    log_in(tab, server.key)
    assert cross_site_post(context, server, "/logout", {"csrf": "guess"}) == 403
    tab.goto("/")
    assert "/login" not in tab.url  # still logged in


def test_login_issues_a_new_token_never_a_planted_one(browser, context, server):
    planted = "planted-by-an-attacker"
    context.add_cookies([{"name": SESSION_COOKIE, "value": planted, "url": server.url}])
    log_in(context.new_page(), server.key)
    token = cookie(context, SESSION_COOKIE)["value"]
    assert token != planted and replay(server, planted) == 401 and replay(server, token) == 200
    other = browser.new_context(base_url=server.url)
    log_in(other.new_page(), server.key)
    assert cookie(other, SESSION_COOKIE)["value"] != token  # the same key, a different login
    other.close()


def test_logout_ends_the_token_on_the_server(context, server):
    tab = context.new_page()
    log_in(tab, server.key)
    token = cookie(context, SESSION_COOKIE)["value"]
    tab.click("form.logout button")
    tab.wait_for_url(re.compile(r"/login"))
    assert replay(server, token) == 401  # not just forgotten by the browser


def test_login_cookie_never_authorises_a_write(context, server):
    log_in(context.new_page(), server.key)
    spec = httpx.get(f"{server.url}/openapi.json").json()
    writes = {
        (m.upper(), p) for p, ops in spec["paths"].items() for m in ops if m in ("post", "put", "patch", "delete")
    }
    writes |= set(UNSUPPORTED_WRITES)
    assert {("POST", "/v1/traces"), ("POST", "/opentelemetry/v1/traces"), ("POST", "/session/start"),
            ("PUT", "/events"), ("POST", "/v1/events/export")} <= writes  # fmt: skip
    for method, path in sorted(writes):
        url = re.sub(r"\{[^}]+\}", "x", path)
        answer = context.request.fetch(url, method=method, data="{}", headers={"Content-Type": "application/json"})
        assert answer.status == 401, (method, path, answer.status)
