"""What a model event adds to its session's roll-ups (``model.USAGE_FIELDS``): its token counts and
its cost, read from its metadata in HoneyHive's schema.

The rule is written once in Python, for the write path, and once as SQL built from the filter
dialects (:mod:`tracehive.store.filter_sql`), for what the databases compute themselves:
ClickHouse's sessions view, DuckDB's retried writes and its migration of older files. A figure
counts when it is a JSON number from 0 to ``LIMIT``; token counts are rounded down. A missing
``total_tokens`` is prompt + completion. Cost stays unknown (null) unless the event has one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from tracehive.model import COMPLETION_TOKENS, COST, MODEL_EVENT_TYPE, PROMPT_TOKENS, TOTAL_TOKENS
from tracehive.store.filter_sql import Dialect, Sql, sql, type_in

_PLAIN = re.compile(r"[A-Za-z0-9_/]+")
LIMIT = 10**15  # past this a figure is not a usage (and sums of it could overflow 64 bits)

# (prompt, completion, total, cost) of one model event.
Usage = tuple[int, int, int, float | None]


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if 0 <= value <= LIMIT else None


def model_usage(event_type: str | None, metadata: Mapping[str, Any] | None) -> Usage | None:
    """The usage of a model event; None for any other event."""
    if event_type != MODEL_EVENT_TYPE:
        return None
    found = metadata or {}
    keys = (PROMPT_TOKENS, COMPLETION_TOKENS, TOTAL_TOKENS, COST)
    prompt, completion, total, cost = (_number(found.get(key)) for key in keys)
    prompt, completion = math.floor(prompt or 0), math.floor(completion or 0)
    total = prompt + completion if total is None else math.floor(total)
    return prompt, completion, total, None if cost is None else float(cost)


def usage_sql(d: Dialect) -> tuple[str, str, str, str]:
    """:func:`model_usage` of an event row as SQL over its ``metadata`` column: prompt,
    completion, total, cost (the caller keeps to model events). No parameters: keys are inlined."""

    def number(key: str) -> Sql:
        value = d.json_at(Sql(d.quote("metadata")), (key,))
        figure = sql(d.as_float, v=value)
        return sql(
            "(CASE WHEN {k} AND {f} BETWEEN 0 AND {limit} THEN {f} END)",
            k=type_in(value, d, "int", "float"),
            f=figure,
            limit=Sql(str(LIMIT)),
        )

    def count(figure: Sql) -> Sql:
        return sql(d.to_int, x=sql("floor({n})", n=figure))

    prompt = sql("coalesce({n}, 0)", n=count(number(PROMPT_TOKENS)))
    completion = sql("coalesce({n}, 0)", n=count(number(COMPLETION_TOKENS)))
    total = sql("coalesce({t}, {p} + {c})", t=count(number(TOTAL_TOKENS)), p=prompt, c=completion)
    prompt_sql, completion_sql, total_sql, cost_sql = (_inline(x) for x in (prompt, completion, total, number(COST)))
    return prompt_sql, completion_sql, total_sql, cost_sql


def _inline(fragment: Sql) -> str:
    """The fragment with its parameters written as literals. Only our own keys and pointers are
    parameters here (plain characters, the same literal in both dialects); anything else is refused."""
    pieces = fragment.text.split("?")
    out = [pieces[0]]
    for value, piece in zip(fragment.params, pieces[1:], strict=True):
        if not isinstance(value, str) or not _PLAIN.fullmatch(value):
            raise ValueError(f"cannot inline {value!r}")
        out.append(f"'{value}'{piece}")
    return "".join(out)
