"""Known fields and their common values, for completing filters.

They come from a bounded sample (the newest sessions a query selects), never from a scan of the
whole store, so completion costs the same on a hundred sessions or a hundred million.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from tracehive.filters import SESSION_FIELDS, Field, format_field
from tracehive.store.base import Row

SAMPLE_SIZE = 500
MAX_DEPTH = 4
MAX_FIELDS = 300
MAX_VALUES = 20
MAX_VALUE_CHARS = 200

_NAMESPACES = [name for name, kind in SESSION_FIELDS.items() if kind == "json"]
_COLUMNS = [name for name, kind in SESSION_FIELDS.items() if kind != "json"]


def _walk(value: dict[str, Any], column: str, path: tuple[str, ...], seen: set[str]) -> None:
    for key, inner in value.items():
        inner_path = (*path, str(key))
        seen.add(format_field(column, inner_path))
        if isinstance(inner, dict) and len(inner_path) < MAX_DEPTH:
            _walk(inner, column, inner_path, seen)


def known_fields(rows: list[Row]) -> list[Row]:
    """Every column, then the namespace paths found in ``rows``, most common first."""
    counts: Counter[str] = Counter()
    for row in rows:
        seen: set[str] = set()
        for namespace in _NAMESPACES:
            _walk(row.get(namespace) or {}, namespace, (), seen)
        counts.update(seen)
    found = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:MAX_FIELDS]
    columns = [{"field": name, "count": len(rows)} for name in _COLUMNS]
    return columns + [{"field": name, "count": count} for name, count in found]


def _lookup(row: Row, field: Field) -> tuple[bool, Any]:
    value: Any = row.get(field.column)
    for key in field.path:
        in_object = isinstance(value, dict) and isinstance(key, str) and key in value
        in_list = isinstance(value, list) and isinstance(key, int) and key < len(value)
        if not (in_object or in_list):
            return False, None
        value = value[key]
    return True, value


def top_values(rows: list[Row], field: Field) -> list[Row]:
    """The most common scalar values of ``field`` in ``rows``, written as filter literals."""
    counts: Counter[str] = Counter()
    for row in rows:
        found, value = _lookup(row, field)
        if found and (value is None or isinstance(value, str | int | float | bool)):
            literal = orjson.dumps(value).decode()
            if len(literal) <= MAX_VALUE_CHARS:
                counts[literal] += 1
    return [{"value": value, "count": count} for value, count in counts.most_common(MAX_VALUES)]
