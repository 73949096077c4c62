"""The shape of exported data: one row per event with its session's fields, as JSON (what the API
streams) and as Arrow columns (Parquet files, pandas and polars frames).

In a row, a session field whose name an event field has too is prefixed ``session_``
(``session_start_time``, ``session_metadata``). In Arrow, times are UTC timestamps (microseconds),
counts int64, durations float64, and namespaces JSON text: their keys and types vary from row to
row, which a columnar schema cannot hold; ``json.loads`` gives back exactly what the API shows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from tracehive.model import NAMESPACES
from tracehive.store.columns import EVENT_COLUMNS

SESSION_PREFIX = "session_"
_EVENT_KEYS = frozenset(EVENT_COLUMNS)
_TIME = pa.timestamp("us", tz="UTC")
_TYPES: dict[str, pa.DataType] = {
    "start_time": _TIME,
    "end_time": _TIME,
    "duration_ms": pa.float64(),
    "event_count": pa.int64(),
    "error_count": pa.int64(),
}


def export_row(session: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """One event with its session's fields."""
    row = {}
    for key, value in session.items():
        if key == "events":
            continue
        clash = key in _EVENT_KEYS and key not in ("project", "session_id")
        row[SESSION_PREFIX + key if clash else key] = value
    row.update(event)
    return row


def _column_type(name: str) -> pa.DataType:
    return _TYPES.get(name.removeprefix(SESSION_PREFIX), pa.string())


def _is_namespace(name: str) -> bool:
    return name.removeprefix(SESSION_PREFIX) in NAMESPACES


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _inferred_type(values: list[Any]) -> pa.DataType:
    """A column this module does not know (a store's added figures): numbers stay numbers."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.int64() if all(isinstance(v, int) for v in present) else pa.float64()
    return pa.string()


def schema_of(rows: list[dict[str, Any]]) -> pa.Schema:
    """The Arrow schema of rows shaped like these (every exported row has the same keys)."""
    fields = []
    for name in rows[0]:
        known = name.removeprefix(SESSION_PREFIX) in _TYPES or _is_namespace(name) or name in _EVENT_KEYS
        kind = _column_type(name) if known else _inferred_type([row.get(name) for row in rows])
        fields.append((name, kind))
    return pa.schema(fields)


def to_arrow(rows: list[dict[str, Any]], schema: pa.Schema | None = None) -> pa.Table:
    """Exported rows (or sessions) as an Arrow table; ``schema`` keeps batches of one file alike."""
    if schema is None:
        if not rows:
            return pa.table({})
        schema = schema_of(rows)
    arrays = []
    for field in schema:
        values = [row.get(field.name) for row in rows]
        if field.type == _TIME:
            values = [_time(v) for v in values]
        elif _is_namespace(field.name):
            values = [orjson.dumps(v).decode() if v is not None else None for v in values]
        elif field.type == pa.string():
            values = [_text(v) for v in values]
        elif field.type == pa.float64():
            values = [None if v is None else float(v) for v in values]
        arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
