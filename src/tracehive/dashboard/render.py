"""Templates, static files and the response headers every dashboard page carries."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

# No inline scripts or styles at all: even if some value escaped escaping, it could not run.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

LONG_TEXT = 240  # strings longer than this are folded


def kind(value: Any) -> str:
    """How a JSON value is shown: each kind has its own look."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "num"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "list"
    return "long" if len(str(value)) > LONG_TEXT or str(value).count("\n") > 4 else "str"


def literal(value: Any) -> str:
    """A JSON value as text: ``true``, ``25``, ``"premium"``."""
    return json.dumps(value, ensure_ascii=False)


def when(iso: str | None) -> str:
    """An ISO time as ``2026-01-31 12:00:05`` (UTC)."""
    if not iso:
        return ""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")


def session_url(session: dict[str, Any]) -> str:
    """A session's page. Every character of the id is quoted, ``/`` too, so an id such as
    ``a/../../logout`` stays one path segment instead of leading somewhere else."""
    return f"/sessions/{quote(session['session_id'], safe='')}?project={quote(session['project'], safe='')}"


def isolated(text: str) -> str:
    """Text where no markup can isolate it (the page title): between FIRST STRONG ISOLATE and POP
    DIRECTIONAL ISOLATE, so a right-to-left override inside cannot reorder what follows."""
    return f"\u2068{text}\u2069"


def duration(ms: float | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.2g} ms"
    return f"{ms / 1000:.2f} s" if ms < 60_000 else f"{ms / 60_000:.1f} min"


def usd(amount: float | None) -> str:
    """A cost in US dollars: cents for amounts of a dollar or more, else three significant digits
    (model calls often cost fractions of a cent)."""
    if amount is None:
        return ""
    if amount <= 0 or amount >= 1:
        return f"${amount:,.2f}"
    digits = 2 - math.floor(math.log10(amount))
    whole, fraction = f"{amount:.{digits}f}".rstrip("0").split(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


def percent(share: float | None) -> str:
    return "" if share is None else f"{share * 100:.1f}%"


ENV = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined)
ENV.filters.update(kind=kind, literal=literal, when=when, duration=duration, percent=percent, session_url=session_url,
                   isolated=isolated, usd=usd,
                   enumerate_items=lambda items: list(enumerate(items)))  # fmt: skip


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = ENV.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
