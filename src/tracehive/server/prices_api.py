"""Model prices over the API: each project's own prices (overrides of the `genai-prices` table)
and the models seen without a price, so that a user can add them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool

from tracehive.server.auth import Principal
from tracehive.server.deps import ServerState, principal, readable_projects, state
from tracehive.server.prices import ModelPrice, Prices, model_key, parse_price

router = APIRouter(prefix="/api/v1", tags=["prices"])
MAX_MODEL_NAME = 256


def load_prices(server: ServerState) -> None:
    """Read every project's overrides from the store into the server's price table."""
    overrides: dict[str, dict[str, ModelPrice]] = {}
    for project, models in server.store.get_prices().items():
        overrides[project] = {model: parse_price(price, f"{project}/{model}") for model, price in models.items()}
    server.prices = Prices(overrides)


def _writable(who: Principal, project: str) -> None:
    if who.project is not None and who.project != project:
        raise HTTPException(403, f"this API key cannot change project {project!r}")


def _model(model: str) -> str:
    if not model.strip() or len(model) > MAX_MODEL_NAME:
        raise HTTPException(400, f"model: a name of 1 to {MAX_MODEL_NAME} characters")
    return model_key(model)


@router.get("/prices", summary="Each project's own model prices (USD per million tokens)")
def list_prices(
    request: Request, project: Annotated[str | None, Query()] = None, who: Principal = Depends(principal)
) -> dict[str, Any]:
    projects = readable_projects(who, project)
    overrides = state(request).prices.overrides
    return {
        "prices": [
            {"project": p, "model": m, **price.to_json()}
            for p, models in sorted(overrides.items())
            if projects is None or p in projects
            for m, price in sorted(models.items())
        ]
    }


@router.put("/prices/{project}/{model:path}", summary="Set a project's price for a model")
async def set_price(
    request: Request, project: str, model: str, price: Annotated[Any, Body()], who: Principal = Depends(principal)
) -> dict[str, Any]:
    _writable(who, project)
    model = _model(model)
    try:
        parsed = parse_price(price, "body")
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    server = state(request)
    await run_in_threadpool(server.store.set_price, project, model, parsed.to_json())
    server.prices = Prices(
        {**server.prices.overrides, project: {**server.prices.overrides.get(project, {}), model: parsed}}
    )
    return {"project": project, "model": model, **parsed.to_json()}


@router.delete("/prices/{project}/{model:path}", summary="Remove a project's price for a model")
async def delete_price(request: Request, project: str, model: str, who: Principal = Depends(principal)) -> dict:
    _writable(who, project)
    model = _model(model)
    server = state(request)
    await run_in_threadpool(server.store.set_price, project, model, None)
    kept = {m: p for m, p in server.prices.overrides.get(project, {}).items() if m != model}
    server.prices = Prices({**server.prices.overrides, project: kept})
    return {"project": project, "model": model, "deleted": True}


def unpriced(server: ServerState, projects: tuple[str, ...] | None) -> list[dict[str, Any]]:
    """Models seen in model events without a cost, less those a project has priced since."""
    rows = server.store.unpriced_models(projects)
    overrides = server.prices.overrides
    return [r for r in rows if model_key(r["model"]) not in overrides.get(r["project"], {})]


@router.get("/models/unpriced", summary="Models seen without a price (add one with PUT /api/v1/prices/...)")
def list_unpriced(
    request: Request, project: Annotated[str | None, Query()] = None, who: Principal = Depends(principal)
) -> dict[str, Any]:
    return {"models": unpriced(state(request), readable_projects(who, project))}
