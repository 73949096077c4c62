"""The dashboard's pages. Each reads through the query API's own route functions, with limits,
so a page costs the same on a thousand sessions or a hundred thousand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, Response

from tracehive.dashboard import charts, views
from tracehive.dashboard.login import logged_in
from tracehive.dashboard.render import STATIC_DIR, page
from tracehive.server import api, prices_api
from tracehive.server.auth import Principal
from tracehive.server.deps import state
from tracehive.server.logins import Login

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
MAX_USERS = 100
MAX_GROUPS = 50
EVENTS_PER_PAGE = 1000
STATIC_FILES = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}
Viewer = tuple[Principal, Login]


def _show(request: Request, viewer: Viewer, template: str, build: Callable[[views.View], dict[str, Any]]) -> Response:
    """Render a page; a 4xx from the query API (a bad filter, say) is shown on the page itself."""
    view = views.View.from_request(request)
    context = {"view": view, "login": viewer[1], "who": viewer[0], "page_path": request.url.path}
    try:
        return page(request, template, **context, **build(view))
    except HTTPException as exc:
        if exc.status_code >= 500:
            raise
        return page(request, "problem.html", status=exc.status_code, error=str(exc.detail), **context)


@router.get("/")
def sessions_page(request: Request, viewer: Viewer = Depends(logged_in)) -> Response:
    def build(view: views.View) -> dict[str, Any]:
        scope = view.scope(viewer[0], request)
        cursor = request.query_params.get("cursor")
        found = api.list_sessions(request, replace(scope, limit=PAGE_SIZE, cursor=api.decode_cursor(cursor)))
        split = view.get("split") or None
        series = api.session_timeseries(request, scope, bucket=None, split_by=split, groups=5)
        sessions = views.with_usage(found["sessions"])
        next_url = view.url("/", cursor=found["next_cursor"]) if found["next_cursor"] else None
        return {
            "sessions": sessions,
            "columns": views.pick_columns(view, sessions),
            "show_tokens": any(s["tokens"] is not None for s in sessions),
            "show_cost": any(s["cost"] is not None for s in sessions),
            "charts": charts.time_charts(series, split=split is not None),
            "next_url": next_url,
            "paged": bool(cursor),
        }

    return _show(request, viewer, "sessions.html", build)


@router.get("/sessions/{session_id:path}")  # ids may hold a quoted "/"
def session_page(request: Request, session_id: str, viewer: Viewer = Depends(logged_in)) -> Response:
    def build(view: views.View) -> dict[str, Any]:
        offset = views.events_offset(request.query_params.get("events"))
        project = view.get("project") or None
        session = api.get_session(request, session_id, project, viewer[0], EVENTS_PER_PAGE, offset)
        events = views.timeline(session)
        chosen = request.query_params.get("event")
        selected = next((e for e in events if e["event_id"] == chosen), None)
        return {
            "session": session,
            "events": events,
            "pages": views.event_pages(session, EVENTS_PER_PAGE),
            "selected": selected,
            "call": views.model_call(selected),
            "sections": views.sections(selected or session),
        }

    return _show(request, viewer, "session.html", build)


@router.get("/users")
def users_page(request: Request, viewer: Viewer = Depends(logged_in)) -> Response:
    def build(view: views.View) -> dict[str, Any]:
        scope = view.scope(viewer[0], request)
        users = api.list_users(request, replace(scope, limit=MAX_USERS))["users"]
        return {"users": users, "limit": MAX_USERS}

    return _show(request, viewer, "users.html", build)


@router.get("/groups")
def groups_page(request: Request, viewer: Viewer = Depends(logged_in)) -> Response:
    def build(view: views.View) -> dict[str, Any]:
        by = view.get("by", "user_properties.plan")
        scope = view.scope(viewer[0], request)
        groups = api.group_sessions(request, by=by, query=scope, limit=MAX_GROUPS)["groups"]
        series = api.session_timeseries(request, scope, bucket=None, split_by=by, groups=5)
        for group in groups:
            only = views.group_filter(by, group)
            group["label"] = charts.group_label(group)
            group["url"] = view.url("/", filter=views.and_filter(view.get("filter"), only), by=None) if only else None
        return {"by": by, "groups": groups, "charts": charts.time_charts(series, split=True)}

    return _show(request, viewer, "groups.html", build)


@router.get("/models")
def models_page(request: Request, viewer: Viewer = Depends(logged_in)) -> Response:
    def build(view: views.View) -> dict[str, Any]:
        project = view.get("project") or None
        return {
            "unpriced": prices_api.list_unpriced(request, project, viewer[0])["models"],
            "prices": prices_api.list_prices(request, project, viewer[0])["prices"],
        }

    return _show(request, viewer, "models.html", build)


@router.get("/privacy")
def privacy_page(request: Request, viewer: Viewer = Depends(logged_in)) -> Response:
    """Each readable project's redaction rules and retention, newest version (read-only)."""

    def build(_: views.View) -> dict[str, Any]:
        readable = viewer[0].projects
        found = state(request).policies.all()
        return {"policies": [p.public() for p in found if readable is None or p.project in readable]}

    return _show(request, viewer, "privacy.html", build)


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    found = STATIC_FILES.get(name)
    if found is None:
        raise HTTPException(404, f"no static file {name!r}")
    return FileResponse(found, headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})
