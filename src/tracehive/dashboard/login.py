"""Logging in to the dashboard with an API key, and out again.

Both forms are CSRF-safe three ways: the cookies are SameSite=Strict, a POST whose Origin (or
Sec-Fetch-Site) says it came from another site is refused, and each form carries a token the
attacker cannot read (login: a double-submit cookie; logout: the login's own token).
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from tracehive.dashboard.render import SECURITY_HEADERS, page
from tracehive.server.auth import Principal
from tracehive.server.deps import state
from tracehive.server.ingest import read_limited
from tracehive.server.logins import IDLE_SECONDS, SESSION_COOKIE, Login

router = APIRouter(include_in_schema=False)

CSRF_COOKIE = "tracehive_csrf"
MAX_FORM_BYTES = 8192


def logged_in(request: Request) -> tuple[Principal, Login]:
    """The page's viewer; anyone else is sent to the login form, coming back here after."""
    found = state(request).logins.find(request.cookies.get(SESSION_COOKIE))
    if found is None:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, "log in first", headers={"Location": f"/login?next={quote(back, safe='')}"})
    return found


def safe_next(target: str | None) -> str:
    """Only a path on this server: never another site (``//evil``, ``https://...``, ``/\\evil``)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")  # fmt: skip


async def _form(request: Request) -> dict[str, str]:
    """A small urlencoded form, checked to come from this site."""
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if origin is not None and origin.split("://", 1)[-1] != host:
        raise HTTPException(403, "form posted from another site")
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise HTTPException(403, "form posted from another site")
    body = await read_limited(request, MAX_FORM_BYTES)
    return {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}


def _login_form(request: Request, next_path: str, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = page(request, "login.html", status=status, csrf=token, next=next_path, error=error)
    _cookie(response, request, CSRF_COOKIE, token, 3600)
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    return _login_form(request, safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    next_path = safe_next(form.get("next"))
    logins = state(request).logins
    address = request.client.host if request.client else "unknown"
    wait = logins.failures.retry_after(address)
    if wait is not None:
        response = _login_form(request, next_path, f"Too many failed logins; try again in {wait} s.", status=429)
        response.headers["Retry-After"] = str(wait)
        return response
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(form.get("csrf", ""), expected):
        return _login_form(request, next_path, "The form expired; please try again.", status=403)
    token = await run_in_threadpool(logins.start, form.get("key", "").strip())
    if token is None:
        logins.failures.failed(address)
        return _login_form(request, next_path, "Unknown API key.", status=401)
    response = RedirectResponse(next_path, status_code=303, headers=SECURITY_HEADERS)
    _cookie(response, request, SESSION_COOKIE, token, IDLE_SECONDS)
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await _form(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    logins = state(request).logins
    found = await run_in_threadpool(logins.find, token)
    if found is not None:
        if not secrets.compare_digest(form.get("csrf", ""), found[1].csrf):
            raise HTTPException(403, "csrf: the logout form is not from this login")
        await run_in_threadpool(logins.end, token)
    response = RedirectResponse("/login", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
