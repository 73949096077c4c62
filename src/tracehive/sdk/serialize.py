"""Turn arbitrary Python values into JSON text without ever raising.

Traced functions receive and return anything: strings, pydantic models, sockets, self-referencing
graphs. JSON-compatible values must keep their exact types (so ``True`` stays a boolean and
``25`` an integer on the server); everything else becomes something readable. The fast path is a
single ``orjson.dumps``; only values orjson rejects (cycles, huge integers, bad surrogates, a
failing ``model_dump``...) take the slower, careful walk.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import uuid
from typing import Any

import orjson

MAX_REPR = 500
MAX_DEPTH = 32
CYCLE_MARKER = "<cycle>"
DEPTH_MARKER = "<max depth>"

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def short_repr(value: Any) -> str:
    """A ``repr`` capped at :data:`MAX_REPR` characters, or the type name if ``repr`` fails."""
    try:
        text = repr(value)
    except Exception:
        return f"<{type(value).__name__}>"
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def _describe(value: Any) -> Any:
    """One step towards JSON for a value orjson cannot encode itself (its ``default`` hook)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{type(value).__name__}: {len(value)} bytes>"
    if isinstance(value, set | frozenset):
        return list(value)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and not isinstance(value, type):
        try:
            return model_dump(mode="json")
        except Exception:
            return short_repr(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
    return short_repr(value)


def _walk(value: Any, depth: int, seen: set[int]) -> Any:
    """The careful path: a plain JSON tree, with cycles and deep nesting replaced by markers."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return _walk(value.value, depth, seen)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if depth >= MAX_DEPTH:
        return DEPTH_MARKER
    if id(value) in seen:
        return CYCLE_MARKER
    seen.add(id(value))
    try:
        if isinstance(value, dict):
            return {_key(key): _walk(item, depth + 1, seen) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [_walk(item, depth + 1, seen) for item in value]
        described = _describe(value)
        return described if isinstance(described, str) else _walk(described, depth + 1, seen)
    finally:
        seen.discard(id(value))


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)
    return short_repr(key)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (dict, list, str, int, float, bool, None)."""
    try:
        return _walk(value, 0, set())
    except Exception:
        return short_repr(value)


def dumps(value: Any) -> str:
    """JSON text for ``value``; never raises."""
    try:
        return orjson.dumps(value, default=_describe, option=_OPTIONS).decode()
    except Exception:
        pass
    try:
        return json.dumps(jsonable(value), ensure_ascii=False)
    except Exception:
        return json.dumps(short_repr(value))
