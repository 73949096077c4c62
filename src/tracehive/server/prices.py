"""Model prices: the `genai-prices` table (shipped inside its wheel, no network), with per-project
overrides on top. Costs are USD; a model found in neither has no cost (None), never 0."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0  # all input tokens, cached ones included
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """A project's own price for a model, USD per million tokens. Cache prices default to the input price."""

    input_mtok: float
    output_mtok: float
    cache_read_mtok: float | None = None
    cache_write_mtok: float | None = None

    def cost(self, usage: Usage) -> float:
        read = self.input_mtok if self.cache_read_mtok is None else self.cache_read_mtok
        write = self.input_mtok if self.cache_write_mtok is None else self.cache_write_mtok
        plain = max(usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0)
        total = (
            plain * self.input_mtok
            + usage.cache_read_tokens * read
            + usage.cache_write_tokens * write
            + usage.output_tokens * self.output_mtok
        )
        return total / 1_000_000

    def to_json(self) -> dict[str, float | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


PRICE_FIELDS = tuple(f.name for f in fields(ModelPrice))


def parse_price(value: Any, where: str) -> ModelPrice:
    """A price from JSON (``{"input_mtok": 0.15, "output_mtok": 0.6}``); ValueError names the field."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object with input_mtok and output_mtok")
    unknown = set(value) - set(PRICE_FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}; known: {list(PRICE_FIELDS)}")
    numbers: dict[str, float | None] = {}
    for name in PRICE_FIELDS:
        item = value.get(name)
        required = name in ("input_mtok", "output_mtok")
        if item is None and not required:
            numbers[name] = None
            continue
        if isinstance(item, bool) or not isinstance(item, int | float) or not 0 <= item < 1e9:
            raise ValueError(f"{where}.{name} must be a number from 0 (USD per million tokens)")
        numbers[name] = float(item)
    return ModelPrice(**numbers)  # type: ignore[arg-type]


def model_key(model: str) -> str:
    return model.strip().lower()


@lru_cache(maxsize=4096)
def _table_cost(provider: str | None, model: str, usage: Usage, day: str) -> float | None:
    import genai_prices  # imported on the first model call: it holds the whole price table

    call = genai_prices.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens or None,
        cache_write_tokens=usage.cache_write_tokens or None,
    )
    when = datetime.fromisoformat(day).replace(tzinfo=UTC)
    for provider_id in (provider, None) if provider else (None,):
        try:
            found = genai_prices.calc_price(call, model, provider_id=provider_id, genai_request_timestamp=when)
        except LookupError:
            continue
        return float(found.total_price)
    return None


class Prices:
    """The price table plus overrides: ``{project: {model (lower case): ModelPrice}}``."""

    def __init__(self, overrides: dict[str, dict[str, ModelPrice]] | None = None) -> None:
        self.overrides = overrides or {}

    def cost(self, project: str, provider: str | None, model: str, usage: Usage, when_ns: int = 0) -> float | None:
        own = self.overrides.get(project, {}).get(model_key(model))
        if own is not None:
            return own.cost(usage)
        # Prices change by date; a day is fine-grained enough and keeps the cache useful.
        day = datetime.fromtimestamp(when_ns / 1e9, UTC).date().isoformat() if when_ns else _today()
        return _table_cost(provider.lower() if provider else None, model, usage, day)


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def table_has(model: str, provider: str | None = None) -> bool:
    """Whether the price table knows ``model`` (for the list of models without a price)."""
    return _table_cost(provider.lower() if provider else None, model, Usage(1, 1), _today()) is not None
