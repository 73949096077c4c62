"""ClickHouse's spelling of the filter language (see :mod:`tracehive.store.filter_sql`), with
``{name:Type}`` parameters.

Namespaces are JSON text columns, read with the ``JSON*`` functions: a path leads to the raw JSON
of a value, or to '' when it is absent, so ``exists`` is "not ''".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from tracehive.filters.ast import Expr
from tracehive.store.filter_sql import Dialect, Sql, compile_filter, join, param, sql

_EPOCH = datetime(1970, 1, 1)
# A path step that DuckDB's JSON pointers read as a list index on lists (and a key on objects).
_INDEX = re.compile(r"0|[1-9][0-9]{0,8}")


def to_clickhouse_sql(expr: Expr | None, fields: Mapping[str, str], prefix: str = "f") -> tuple[str, dict[str, Any]]:
    """Return ``(sql, params)``: a boolean expression over the columns named in ``fields`` and the
    values of its ``{prefix<n>:Type}`` placeholders."""
    return bind(compile_filter(expr, fields, CLICKHOUSE), prefix)


def json_path_sql(column: str, path: tuple[str | int, ...], prefix: str) -> tuple[str, dict[str, Any]]:
    """The raw JSON at ``path`` inside the JSON text column ``column`` ('' when absent)."""
    return bind(_json_path(Sql(quote(column)), path), prefix)


def bind(fragment: Sql, prefix: str) -> tuple[str, dict[str, Any]]:
    """Turn the ``?`` placeholders of a fragment into named, typed ClickHouse parameters. Equal
    values share a name, so a fragment used twice stays one expression that ClickHouse computes once."""
    names: dict[tuple[type, Any], str] = {}
    params: dict[str, Any] = {}
    pieces = fragment.text.split("?")
    out = [pieces[0]]
    for value, piece in zip(fragment.params, pieces[1:], strict=True):
        if isinstance(value, datetime):  # naive UTC, as filters and the API make them
            value = value.replace(tzinfo=None) if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
            value = (value - _EPOCH) // timedelta(microseconds=1)
            template = "fromUnixTimestamp64Micro({%s:Int64}, 'UTC')"
        else:
            template = "{%s:" + _param_type(value) + "}"
        key = (type(value), tuple(value) if isinstance(value, list) else value)
        name = names.setdefault(key, f"{prefix}{len(names)}")
        params[name] = value
        out.append(template % name + piece)
    return "".join(out), params


class _Index(int):
    """A list position in a JSON path: JSON functions want a plain integer type there."""


def quote(name: str) -> str:
    """A ClickHouse identifier, quoted."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _param_type(value: Any) -> str:
    if isinstance(value, _Index):
        return "UInt32"
    if isinstance(value, bool):
        return "Bool"
    if isinstance(value, int):
        return "Int128"
    if isinstance(value, float):
        return "Float64"
    if isinstance(value, list):
        return "Array(String)"
    return "String"


def _json_path(column: Sql, path: tuple[str | int, ...]) -> Sql:
    """The raw JSON at ``path`` ('' when absent). Runs of plain keys take one ``JSONExtractRaw``;
    a step like ``0`` is a list index on a list and a key on an object, as in a JSON pointer."""
    value, keys = column, []
    for step in [str(key) for key in path]:
        if not _INDEX.fullmatch(step):
            keys.append(param(step))
            continue
        if keys:
            value, keys = _extract(value, keys), []
        value = sql(
            "if(JSONType({v}) = 'Array', JSONExtractRaw({v}, {i}), JSONExtractRaw({v}, {k}))",
            v=value,
            i=param(_Index(int(step) + 1)),  # ClickHouse counts list elements from 1
            k=param(step),
        )
    return _extract(value, keys) if keys else value


def _extract(value: Sql, keys: list[Sql]) -> Sql:
    return sql("JSONExtractRaw({v}, {k})", v=value, k=join(", ", keys))


CLICKHOUSE = Dialect(
    quote=quote,
    never_null="ifNull({x}, 0)",
    json_at=_json_path,
    json_exists=lambda column, path: sql("({v} != '')", v=_json_path(column, path)),
    let=lambda value, body: body(value),
    json_type="JSONType({v})",
    types={
        "null": ("Null",),
        "bool": ("Bool",),
        "string": ("String",),
        "int": ("Int64", "UInt64"),
        "float": ("Double",),
        "array": ("Array",),
    },
    is_null="({v} != '' AND JSONType({v}) = 'Null')",
    as_bool="JSONExtractBool({v})",
    as_string="JSONExtractString({v})",
    as_int="toInt128({v})",
    as_float="JSONExtractFloat({v})",
    any_item="arrayExists({i} -> {x}, JSONExtractArrayRaw({v}))",
    contains="(position(lowerUTF8({t}), lowerUTF8({x})) > 0)",
    to_int="toInt64({x})",
)
