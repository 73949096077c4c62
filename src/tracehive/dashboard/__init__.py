"""The web dashboard served at ``/``: server-rendered pages (sessions, one session's event tree,
users, group-by) plus one small script for filter completion. Everything ships in the package."""

from fastapi import APIRouter

from tracehive.dashboard import login, pages

router = APIRouter()
router.include_router(login.router)
router.include_router(pages.router)

__all__ = ["router"]
