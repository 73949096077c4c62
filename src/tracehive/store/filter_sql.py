"""Compile a parsed filter to SQL for either store: one compiler, and a :class:`Dialect` table of
the pieces DuckDB and ClickHouse spell differently (JSON access, JSON type names, casts, lambdas,
case-insensitive search, parameters).

Why a table of our own and not sqlglot: sqlglot renders one tree in many dialects, but the parts
this compiler is made of are exactly the ones it does not carry across (sqlglot 30.31, tried):
DuckDB's ``json_extract(c, '/a/b')`` pointer came out as ``JSONExtractRaw(c, '/a/b')`` (a key named
"/a/b"); ``json_type`` was passed through to ClickHouse, which has no such function and names the
types differently ('VARCHAR' vs 'String'); ``list_bool_or`` was passed through; a ``?`` parameter
became ``{?: }``; and a step that is a list index on a list but a key on an object (our paths'
meaning) has no form in its tree. We would have written every piece twice anyway, as sqlglot
expressions, and paid about 2.5 ms per query to render them where this costs tens of microseconds.

User text never reaches the SQL: values and JSON keys are parameters, column names come only from
the ``fields`` mapping. Every comparison is made never-NULL, which keeps ``NOT`` two-valued and
makes ``!=`` exactly ``not (=)`` (a missing field matches it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from string import Formatter
from typing import TYPE_CHECKING, Any

from tracehive.filters import SESSION_FIELDS
from tracehive.filters.ast import And, Compare, Exists, Expr, Field, FilterError, Not, Or, Value

if TYPE_CHECKING:  # the store package's modules import this one
    from tracehive.store.base import SessionQuery

_HUGEINT_MAX = 2**127 - 1
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class Sql:
    """A SQL fragment and the parameters of its ``?`` placeholders, in order."""

    text: str
    params: tuple[Any, ...] = ()


NEVER = Sql("FALSE")  # a comparison whose types can never match
_ITEM = Sql("_th_item")  # a lambda parameter; no column is named like this


def sql(template: str, **parts: Sql) -> Sql:
    """Fill the ``{name}`` slots of ``template`` with fragments. Parameters follow the order the
    slots appear in, so a fragment used twice brings its parameters twice."""
    return Sql(
        template.format_map({name: part.text for name, part in parts.items()}),
        tuple(value for name in _slots(template) for value in parts[name].params),
    )


@cache
def _slots(template: str) -> tuple[str, ...]:
    """The slot names of a template in order (templates are few: the compiler's and the dialects')."""
    return tuple(name for _, name, _, _ in Formatter().parse(template) if name is not None)


def param(value: Any) -> Sql:
    return Sql("?", (value,))


def join(joiner: str, items: list[Sql]) -> Sql:
    return Sql(joiner.join(item.text for item in items), tuple(value for item in items for value in item.params))


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the engines. Templates take fragments in ``{v}`` (a JSON value),
    ``{x}`` (a condition or literal), ``{t}`` (text), ``{i}`` (a lambda parameter)."""

    quote: Callable[[str], str]  # an identifier
    never_null: str  # {x} with NULL read as false
    json_at: Callable[[Sql, tuple[str | int, ...]], Sql]  # the JSON value at a path inside a column
    json_exists: Callable[[Sql, tuple[str | int, ...]], Sql]  # the path is present (even as null)
    # Bind a value once for ``body``: DuckDB has no LET, so a lambda over a one-element list does it
    # (twice as fast on large documents); ClickHouse computes equal subexpressions once by itself.
    let: Callable[[Sql, Callable[[Sql], Sql]], Sql]
    json_type: str  # the JSON type name of {v}
    types: Mapping[str, tuple[str, ...]]  # null, bool, string, int, float, array -> the engine's names
    is_null: str  # {v} is a JSON null
    as_bool: str
    as_string: str
    as_int: str  # exact: integers compare exactly with integers (doubles lose precision past 2**53)
    as_float: str
    any_item: str  # {x} holds for some element {i} of the JSON list {v}
    contains: str  # the text {t} holds the text {x}, ignoring case
    to_int: str  # the number {x} as a 64-bit integer


def compile_filter(expr: Expr | None, fields: Mapping[str, str], dialect: Dialect) -> Sql:
    """A boolean expression over the columns named in ``fields`` (column -> "string" | "number" |
    "time" | "json"). No filter gives ``TRUE``."""
    return Sql("TRUE") if expr is None else _compile(expr, fields, dialect)


def _compile(expr: Expr, fields: Mapping[str, str], d: Dialect) -> Sql:
    if isinstance(expr, And | Or):
        joiner = " AND " if isinstance(expr, And) else " OR "
        return sql("({x})", x=join(joiner, [_compile(item, fields, d) for item in expr.items]))
    if isinstance(expr, Not):
        return sql("(NOT {x})", x=_compile(expr.item, fields, d))
    kind = field_kind(expr.field, fields)
    column = Sql(d.quote(expr.field.column))
    if isinstance(expr, Exists):
        if kind == "json" and expr.field.path:
            return d.json_exists(column, expr.field.path)
        return sql("({c} IS NOT NULL)", c=column)
    condition = sql(d.never_null, x=_compare(expr, kind, column, d))
    return sql("(NOT {x})", x=condition) if expr.op == "!=" else condition


def _compare(expr: Compare, kind: str, column: Sql, d: Dialect) -> Sql:
    """The comparison with '!=' read as '='; the caller negates it."""
    op = "=" if expr.op == "!=" else expr.op
    if kind != "json":
        return _scalar_compare(column, kind, op, _scalar_value(kind, expr), d)

    def match(value: Sql) -> Sql:
        if op == "contains":
            return _json_contains(value, expr.value, d)
        return _json_compare(value, op, expr.value, d)

    if not expr.field.path:
        return match(column)
    return d.let(d.json_at(column, expr.field.path), match)


def field_kind(field: Field, fields: Mapping[str, str]) -> str:
    kind = fields.get(field.column)
    if kind is None:
        known = ", ".join(fields)
        raise FilterError(f"unknown field '{field.column}' (known: {known})", field.position)
    if field.path and kind != "json":
        raise FilterError(f"'{field.column}' is a {kind} and has no sub-fields", field.position)
    return kind


# --- JSON values: the JSON type must match the literal's type --------------------------------


def type_in(value: Sql, d: Dialect, *kinds: str) -> Sql:
    names = [name for kind in kinds for name in d.types[kind]]
    quoted = ", ".join(f"'{name}'" for name in names)
    template = "({t} = {n})" if len(names) == 1 else "({t} IN ({n}))"
    return sql(template, t=sql(d.json_type, v=value), n=Sql(quoted))


def _json_compare(value: Sql, op: str, literal: Value, d: Dialect) -> Sql:
    """``value`` is a JSON value; ``op`` is '=' or an ordering operator."""
    if literal is None:
        return sql(d.is_null, v=value)

    def typed(kinds: tuple[str, ...], cast: str, x: Any) -> Sql:
        return sql("({k} AND {c} {op} {x})", k=type_in(value, d, *kinds), c=sql(cast, v=value), op=Sql(op), x=param(x))

    if isinstance(literal, bool):
        return typed(("bool",), d.as_bool, literal)
    if isinstance(literal, str):
        return typed(("string",), d.as_string, literal)
    if isinstance(literal, int) and -_HUGEINT_MAX <= literal <= _HUGEINT_MAX:
        return sql(
            "(CASE WHEN {ki} THEN {i} {op} {x} WHEN {kf} THEN {f} {op} {x} ELSE FALSE END)",
            ki=type_in(value, d, "int"),
            i=sql(d.as_int, v=value),
            kf=type_in(value, d, "float"),
            f=sql(d.as_float, v=value),
            op=Sql(op),
            x=param(literal),
        )
    return typed(("int", "float"), d.as_float, float(literal))


def _json_contains(value: Sql, literal: Value, d: Dialect) -> Sql:
    """A string holding ``literal`` (case-insensitive), or a list with an element equal to it."""
    in_list = sql(
        "({k} AND {any})",
        k=type_in(value, d, "array"),
        any=sql(d.any_item, v=value, i=_ITEM, x=sql(d.never_null, x=_json_compare(_ITEM, "=", literal, d))),
    )
    if not isinstance(literal, str):
        return in_list
    in_string = _substring(sql(d.as_string, v=value), literal, d)
    return sql("(({k} AND {s}) OR {l})", k=type_in(value, d, "string"), s=in_string, l=in_list)


def _substring(text: Sql, literal: str, d: Dialect) -> Sql:
    return sql(d.contains, t=text, x=param(literal))


# --- plain columns ---------------------------------------------------------------------------


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


def _scalar_compare(column: Sql, kind: str, op: str, literal: Value | datetime, d: Dialect) -> Sql:
    """A plain column against a literal of the same kind; any other kind never matches."""
    if literal is None:
        return sql("({c} IS NULL)", c=column) if op == "=" else NEVER
    if op == "contains":
        return _substring(column, literal, d) if kind == "string" and isinstance(literal, str) else NEVER
    fits = {
        "string": isinstance(literal, str),
        "number": isinstance(literal, int | float) and not isinstance(literal, bool),
        "time": isinstance(literal, datetime),
    }[kind]
    if not fits:
        return NEVER
    if isinstance(literal, int) and abs(literal) > _HUGEINT_MAX:
        literal = float(literal)
    return sql("({c} {op} {x})", c=column, op=Sql(op), x=param(literal))


def session_where(query: SessionQuery, dialect: Dialect) -> Sql:
    """What a session query asks of the sessions besides their project: its filter, and
    ``start_from`` <= start_time < ``start_to``."""
    clauses = [compile_filter(query.filter, SESSION_FIELDS, dialect)]
    if query.start_from is not None:
        clauses.append(sql("start_time >= {x}", x=param(query.start_from)))
    if query.start_to is not None:
        clauses.append(sql("start_time < {x}", x=param(query.start_to)))
    return join(" AND ", clauses)
