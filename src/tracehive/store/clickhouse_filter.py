"""Compile a parsed filter to a ClickHouse boolean expression with ``{name:Type}`` parameters.

Same language, same meaning as :mod:`tracehive.store.duckdb_filter`, whose dialect-free pieces
(fragments, field kinds, time literals) this module shares. Namespaces are JSON text columns, read
with the ``JSON*`` functions: a path leads to the raw JSON of a value, or to '' when it is absent,
so ``exists`` is "not ''" and every comparison checks the JSON type before the value.

User text never reaches the SQL: values and keys are bound parameters, column names come only
from the ``fields`` mapping. Every comparison is wrapped in ``ifNull(..., 0)`` so that ``NOT``
stays two-valued and ``!=`` is exactly ``not (=)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from tracehive.filters.ast import And, Compare, Exists, Expr, Not, Or, Value
from tracehive.store.duckdb_filter import (
    _HUGEINT_MAX,
    _kind,
    _param,
    _scalar_compare,
    _scalar_value,
    _Sql,
    _sql,
)

_INTEGER = ("'Int64'", "'UInt64'")
_NUMBER = (*_INTEGER, "'Double'")
_EPOCH = datetime(1970, 1, 1)
_ITEM = _Sql("_th_item")  # a lambda parameter; no column is named like this
# A path step that DuckDB's JSON pointers read as a list index on lists (and a key on objects).
_INDEX = re.compile(r"0|[1-9][0-9]{0,8}")


def to_clickhouse_sql(expr: Expr | None, fields: Mapping[str, str], prefix: str = "f") -> tuple[str, dict[str, Any]]:
    """Return ``(sql, params)``: a boolean expression over the columns named in ``fields`` and the
    values of its ``{prefix<n>:Type}`` placeholders. No filter gives ``1``."""
    if expr is None:
        return "1", {}
    return bind(_compile(expr, fields), prefix)


def json_path_sql(column: str, path: tuple[str | int, ...], prefix: str) -> tuple[str, dict[str, Any]]:
    """The raw JSON at ``path`` inside the JSON text column ``column`` ('' when absent)."""
    return bind(_json_path(_Sql(quote(column)), path), prefix)


def bind(fragment: _Sql, prefix: str) -> tuple[str, dict[str, Any]]:
    """Turn the ``?`` placeholders of a fragment into named, typed ClickHouse parameters. Equal
    values share a name, so a fragment used twice stays one expression that ClickHouse computes once."""
    names: dict[tuple[type, Any], str] = {}
    params: dict[str, Any] = {}
    pieces = fragment.text.split("?")
    out = [pieces[0]]
    for value, piece in zip(fragment.params, pieces[1:], strict=True):
        if isinstance(value, datetime):  # naive UTC, as _scalar_value makes them
            value = (value - _EPOCH) // timedelta(microseconds=1)
            template = "fromUnixTimestamp64Micro({%s:Int64}, 'UTC')"
        else:
            template = "{%s:" + _param_type(value) + "}"
        name = names.setdefault((type(value), value), f"{prefix}{len(names)}")
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
    return "String"


def _compile(expr: Expr, fields: Mapping[str, str]) -> _Sql:
    if isinstance(expr, And | Or):
        joiner = " AND " if isinstance(expr, And) else " OR "
        items = {f"i{n}": _compile(item, fields) for n, item in enumerate(expr.items)}
        return _sql("(" + joiner.join("{" + name + "}" for name in items) + ")", **items)
    if isinstance(expr, Not):
        return _sql("(NOT {x})", x=_compile(expr.item, fields))
    kind = _kind(expr.field, fields)
    column = _Sql(quote(expr.field.column))
    if isinstance(expr, Exists):
        if kind == "json" and expr.field.path:
            return _sql("({v} != '')", v=_json_path(column, expr.field.path))
        return _sql("({c} IS NOT NULL)", c=column)
    condition = _sql("ifNull({x}, 0)", x=_compare(expr, kind, column))
    return _sql("(NOT {x})", x=condition) if expr.op == "!=" else condition


def _compare(expr: Compare, kind: str, column: _Sql) -> _Sql:
    """The comparison with '!=' read as '='; the caller negates it."""
    op = "=" if expr.op == "!=" else expr.op
    if kind != "json":
        return _scalar_compare(column, kind, op, _scalar_value(kind, expr), substring=_substring)
    value = _json_path(column, expr.field.path) if expr.field.path else column
    return _json_contains(value, expr.value) if op == "contains" else _json_compare(value, op, expr.value)


def _json_path(column: _Sql, path: tuple[str | int, ...]) -> _Sql:
    """The raw JSON at ``path`` ('' when absent). Runs of plain keys take one ``JSONExtractRaw``;
    a step like ``0`` is a list index on a list and a key on an object, as in a JSON pointer."""
    value, keys = column, []
    for step in [str(key) for key in path]:
        if not _INDEX.fullmatch(step):
            keys.append(_param(step))
            continue
        if keys:
            value, keys = _extract(value, keys), []
        value = _sql(
            "if(JSONType({v}) = 'Array', JSONExtractRaw({v}, {i}), JSONExtractRaw({v}, {k}))",
            v=value,
            i=_param(_Index(int(step) + 1)),  # ClickHouse counts list elements from 1
            k=_param(step),
        )
    return _extract(value, keys) if keys else value


def _extract(value: _Sql, keys: list[_Sql]) -> _Sql:
    slots = {f"k{n}": key for n, key in enumerate(keys)}
    return _sql("JSONExtractRaw({v}, " + ", ".join("{" + name + "}" for name in slots) + ")", v=value, **slots)


# --- JSON values: the JSON type must match the literal's type --------------------------------


def _json_compare(value: _Sql, op: str, literal: Value) -> _Sql:
    """``value`` is raw JSON ('' when absent); ``op`` is '=' or an ordering operator."""
    parts = {"v": value, "op": _Sql(op)}
    if literal is None:
        return _sql("({v} != '' AND JSONType({v}) = 'Null')", v=value)
    if isinstance(literal, bool):
        return _sql("(JSONType({v}) = 'Bool' AND JSONExtractBool({v}) {op} {x})", x=_param(literal), **parts)
    if isinstance(literal, str):
        return _sql("(JSONType({v}) = 'String' AND JSONExtractString({v}) {op} {x})", x=_param(literal), **parts)
    if isinstance(literal, int) and -_HUGEINT_MAX <= literal <= _HUGEINT_MAX:
        # Integers compare exactly with integers; doubles lose precision past 2**53.
        return _sql(
            f"multiIf(JSONType({{v}}) IN ({', '.join(_INTEGER)}), toInt128({{v}}) {{op}} {{x}},"
            " JSONType({v}) = 'Double', JSONExtractFloat({v}) {op} {x}, 0)",
            x=_param(literal),
            **parts,
        )
    return _sql(
        f"(JSONType({{v}}) IN ({', '.join(_NUMBER)}) AND JSONExtractFloat({{v}}) {{op}} {{x}})",
        x=_param(float(literal)),
        **parts,
    )


def _json_contains(value: _Sql, literal: Value) -> _Sql:
    """A string holding ``literal`` (case-insensitive), or a list with an element equal to it."""
    in_list = _sql(
        "(JSONType({v}) = 'Array' AND arrayExists({i} -> ifNull({x}, 0), JSONExtractArrayRaw({v})))",
        v=value,
        i=_ITEM,
        x=_json_compare(_ITEM, "=", literal),
    )
    if not isinstance(literal, str):
        return in_list
    in_string = _substring(_sql("JSONExtractString({v})", v=value), literal)
    return _sql("((JSONType({v}) = 'String' AND {s}) OR {l})", v=value, s=in_string, l=in_list)


def _substring(text: _Sql, literal: str) -> _Sql:
    return _sql("(position(lowerUTF8({t}), lowerUTF8({x})) > 0)", t=text, x=_param(literal))
