"""Compile a parsed filter to a DuckDB boolean expression with ``?`` parameters.

User text never reaches the SQL: values and JSON paths are parameters, and column names come
only from the ``fields`` mapping. JSON paths are JSON pointers (``/a/b/0``), which can name any
key, including "" and keys holding dots, slashes or quotes.

Every comparison is wrapped in ``COALESCE(..., FALSE)`` so it is never SQL NULL; that keeps
``NOT`` two-valued, which is what makes ``!=`` exactly ``not (=)`` (a missing field matches it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from string import Formatter
from typing import Any

from tracehive.filters.ast import And, Compare, Exists, Expr, Field, FilterError, Not, Or, Value

_HUGEINT_MAX = 2**127 - 1
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class _Sql:
    """A SQL fragment and the parameters of its ``?`` placeholders, in order."""

    text: str
    params: tuple[Any, ...] = ()


_NEVER = _Sql("FALSE")  # a comparison whose types can never match
# Lambda parameters; no column is named like these.
_VALUE = _Sql("_th_value")
_ITEM = _Sql("_th_item")


def _sql(template: str, **parts: _Sql) -> _Sql:
    """Fill the ``{name}`` slots of ``template`` with fragments. Parameters follow the order the
    slots appear in, so a fragment used twice brings its parameters twice."""
    slots = [name for _, name, _, _ in Formatter().parse(template) if name is not None]
    return _Sql(
        template.format_map({name: part.text for name, part in parts.items()}),
        tuple(value for name in slots for value in parts[name].params),
    )


def _param(value: Any) -> _Sql:
    return _Sql("?", (value,))


def to_duckdb_sql(expr: Expr | None, fields: Mapping[str, str]) -> tuple[str, list[Any]]:
    """Return ``(sql, params)``: a boolean expression over the columns named in ``fields``
    (column -> "string" | "number" | "time" | "json"). No filter gives ``TRUE``."""
    if expr is None:
        return "TRUE", []
    compiled = _compile(expr, fields)
    return compiled.text, list(compiled.params)


def _compile(expr: Expr, fields: Mapping[str, str]) -> _Sql:
    if isinstance(expr, And | Or):
        joiner = " AND " if isinstance(expr, And) else " OR "
        items = {f"i{n}": _compile(item, fields) for n, item in enumerate(expr.items)}
        return _sql("(" + joiner.join("{" + name + "}" for name in items) + ")", **items)
    if isinstance(expr, Not):
        return _sql("(NOT {x})", x=_compile(expr.item, fields))
    kind = _kind(expr.field, fields)
    column = _Sql(quote_column(expr.field.column))
    if isinstance(expr, Exists):
        if kind == "json" and expr.field.path:
            return _sql("COALESCE(json_exists({c}, {p}), FALSE)", c=column, p=_pointer(expr.field.path))
        return _sql("({c} IS NOT NULL)", c=column)
    condition = _sql("COALESCE({x}, FALSE)", x=_compare(expr, kind, column))
    return _sql("(NOT {x})", x=condition) if expr.op == "!=" else condition


def _compare(expr: Compare, kind: str, column: _Sql) -> _Sql:
    """The comparison with '!=' read as '='; the caller negates it."""
    op = "=" if expr.op == "!=" else expr.op
    if kind != "json":
        return _scalar_compare(column, kind, op, _scalar_value(kind, expr))
    value = _VALUE if expr.field.path else column
    match = _json_contains(value, expr.value) if op == "contains" else _json_compare(value, op, expr.value)
    if not expr.field.path:
        return match
    # DuckDB has no LET: a one-element list and a lambda extract the value once rather than once
    # per use (about twice as fast on large documents).
    return _sql(
        "list_transform([json_extract({c}, {p})], lambda {v}: {x})[1]",
        c=column,
        p=_pointer(expr.field.path),
        v=_VALUE,
        x=match,
    )


def _kind(field: Field, fields: Mapping[str, str]) -> str:
    kind = fields.get(field.column)
    if kind is None:
        known = ", ".join(fields)
        raise FilterError(f"unknown field '{field.column}' (known: {known})", field.position)
    if field.path and kind != "json":
        raise FilterError(f"'{field.column}' is a {kind} and has no sub-fields", field.position)
    return kind


def json_pointer(path: tuple[str | int, ...]) -> str:
    """A JSON pointer (RFC 6901); '~' and '/' in keys are escaped as '~0', '~1'."""
    return "".join("/" + str(key).replace("~", "~0").replace("/", "~1") for key in path)


def quote_column(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _pointer(path: tuple[str | int, ...]) -> _Sql:
    return _param(json_pointer(path))


# --- JSON values: the JSON type must match the literal's type --------------------------------


def _json_compare(value: _Sql, op: str, literal: Value) -> _Sql:
    """``value`` is a JSON fragment; ``op`` is '=' or an ordering operator."""
    parts = {"v": value, "op": _Sql(op)}
    if literal is None:
        return _sql("(json_type({v}) = 'NULL')", v=value)
    if isinstance(literal, bool):
        return _sql("(json_type({v}) = 'BOOLEAN' AND TRY_CAST({v} AS BOOLEAN) {op} {x})", x=_param(literal), **parts)
    if isinstance(literal, str):
        return _sql(
            "(json_type({v}) = 'VARCHAR' AND json_extract_string({v}, '$') {op} {x})", x=_param(literal), **parts
        )
    if isinstance(literal, int) and -_HUGEINT_MAX <= literal <= _HUGEINT_MAX:
        # Integers compare exactly with integers; doubles lose precision past 2**53.
        return _sql(
            "(CASE WHEN json_type({v}) IN ('BIGINT', 'UBIGINT') THEN TRY_CAST({v} AS HUGEINT) {op} {x}"
            " WHEN json_type({v}) = 'DOUBLE' THEN TRY_CAST({v} AS DOUBLE) {op} {x} ELSE FALSE END)",
            x=_param(literal),
            **parts,
        )
    return _sql(
        "(json_type({v}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') AND TRY_CAST({v} AS DOUBLE) {op} {x})",
        x=_param(float(literal)),
        **parts,
    )


def _json_contains(value: _Sql, literal: Value) -> _Sql:
    """A string holding ``literal`` (case-insensitive), or a list with an element equal to it."""
    in_list = _sql(
        "(json_type({v}) = 'ARRAY' AND list_bool_or(list_transform(json_extract({v}, '$[*]'),"
        " lambda {i}: COALESCE({x}, FALSE))))",
        v=value,
        i=_ITEM,
        x=_json_compare(_ITEM, "=", literal),
    )
    if not isinstance(literal, str):
        return in_list
    in_string = _substring(_sql("json_extract_string({v}, '$')", v=value), literal)
    return _sql("((json_type({v}) = 'VARCHAR' AND {s}) OR {l})", v=value, s=in_string, l=in_list)


def _substring(text: _Sql, literal: str) -> _Sql:
    return _sql("(strpos(lower({t}), lower({x})) > 0)", t=text, x=_param(literal))


# --- scalar columns ----------------------------------------------------------------------------


def _scalar_value(kind: str, expr: Compare) -> Value | datetime:
    """The literal as the column's kind would hold it: time columns read ISO-8601 strings and
    epoch milliseconds as timestamps (naive UTC, like the columns)."""
    literal = expr.value
    if kind != "time" or literal is None or isinstance(literal, bool):
        return literal
    if isinstance(literal, str):
        try:
            moment = datetime.fromisoformat(literal)
        except ValueError:
            message = f"'{literal}' is not an ISO-8601 time, like 2026-01-31T12:00:00Z"
            raise FilterError(message, expr.field.position) from None
        return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    try:
        return _EPOCH + timedelta(milliseconds=literal)
    except OverflowError:
        message = f"{literal} is out of range for a time in epoch milliseconds"
        raise FilterError(message, expr.field.position) from None


def _scalar_compare(
    column: _Sql, kind: str, op: str, literal: Value | datetime, substring: Callable[[_Sql, str], _Sql] = _substring
) -> _Sql:
    """A plain column against a literal; ``substring`` is the dialect's case-insensitive search."""
    if literal is None:
        return _sql("({c} IS NULL)", c=column) if op == "=" else _NEVER
    if op == "contains":
        return substring(column, literal) if kind == "string" and isinstance(literal, str) else _NEVER
    fits = {
        "string": isinstance(literal, str),
        "number": isinstance(literal, int | float) and not isinstance(literal, bool),
        "time": isinstance(literal, datetime),
    }[kind]
    if not fits:
        return _NEVER
    if isinstance(literal, int) and abs(literal) > _HUGEINT_MAX:
        literal = float(literal)
    return _sql("({c} {op} {x})", c=column, op=_Sql(op), x=_param(literal))
