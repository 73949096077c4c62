"""DuckDB's spelling of the filter language (see :mod:`tracehive.store.filter_sql`), with ``?``
parameters.

Namespaces are JSON columns. JSON paths are JSON pointers (``/a/b/0``), which can name any key,
including "" and keys holding dots, slashes or quotes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tracehive.filters.ast import Expr
from tracehive.store.filter_sql import Dialect, Sql, compile_filter, param, sql

_VALUE = Sql("_th_value")  # a lambda parameter; no column is named like this


def json_pointer(path: tuple[str | int, ...]) -> str:
    """A JSON pointer (RFC 6901); '~' and '/' in keys are escaped as '~0', '~1'."""
    return "".join("/" + str(key).replace("~", "~0").replace("/", "~1") for key in path)


def quote_column(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _let(value: Sql, body: Callable[[Sql], Sql]) -> Sql:
    return sql("list_transform([{v}], lambda {n}: {x})[1]", v=value, n=_VALUE, x=body(_VALUE))


DUCKDB = Dialect(
    quote=quote_column,
    never_null="COALESCE({x}, FALSE)",
    json_at=lambda column, path: sql("json_extract({c}, {p})", c=column, p=param(json_pointer(path))),
    json_exists=lambda column, path: sql(
        "COALESCE(json_exists({c}, {p}), FALSE)", c=column, p=param(json_pointer(path))
    ),
    let=_let,
    json_type="json_type({v})",
    types={
        "null": ("NULL",),
        "bool": ("BOOLEAN",),
        "string": ("VARCHAR",),
        "int": ("BIGINT", "UBIGINT"),
        "float": ("DOUBLE",),
        "array": ("ARRAY",),
    },
    is_null="(json_type({v}) = 'NULL')",
    as_bool="TRY_CAST({v} AS BOOLEAN)",
    as_string="json_extract_string({v}, '$')",
    as_int="TRY_CAST({v} AS HUGEINT)",
    as_float="TRY_CAST({v} AS DOUBLE)",
    any_item="list_bool_or(list_transform(json_extract({v}, '$[*]'), lambda {i}: {x}))",
    contains="(strpos(lower({t}), lower({x})) > 0)",
    to_int="CAST({x} AS BIGINT)",
)


def to_duckdb_sql(expr: Expr | None, fields: Mapping[str, str]) -> tuple[str, list[Any]]:
    """Return ``(sql, params)``: a boolean expression over the columns named in ``fields``."""
    compiled = compile_filter(expr, fields, DUCKDB)
    return compiled.text, list(compiled.params)
