"""A filter on a clear value finds what was stored hashed: the parsed filter is rewritten before
any store compiles it, so every backend gets the same plain filter language.

``user_properties.email = "a@b.com"`` becomes ``user_properties.email = "a@b.com" or
user_properties.email = "hmac:…"``, with one hashed value per project the query may read (each
project hashes with its own secret). ``!=`` stays exactly ``not (=)``. Ordering operators compare
stored text and are left as they are.
"""

from __future__ import annotations

from tracehive.filters import And, Compare, Expr, Field, Not, Or
from tracehive.privacy.rules import Redactor

# The sessions' user_id column is derived from user_properties.user_id.
_ALIASES = {"user_id": ("user_properties", "user_id")}


def _path(field: Field) -> tuple[str | int, ...]:
    return _ALIASES.get(field.column, (field.column, *field.path))


def _rewrite_compare(expr: Compare, redactors: list[Redactor]) -> Expr:
    if expr.op not in ("=", "!=", "contains") or expr.value is None:
        return expr
    path = _path(expr.field)
    alternatives = []
    for redactor in redactors:
        stored = redactor.stored_form(path, expr.value)
        if stored != expr.value and stored not in alternatives:
            alternatives.append(stored)
    if not alternatives:
        return expr
    op = "contains" if expr.op == "contains" else "="
    either = Or(tuple(Compare(expr.field, op, value) for value in (expr.value, *alternatives)))
    return Not(either) if expr.op == "!=" else either


def rewrite_filter(expr: Expr | None, redactors: list[Redactor]) -> Expr | None:
    """``expr`` with every comparison against a value some project hashes widened to its hashes."""
    if expr is None or not redactors:
        return expr
    if isinstance(expr, Compare):
        return _rewrite_compare(expr, redactors)
    if isinstance(expr, And):
        return And(tuple(rewrite_filter(item, redactors) for item in expr.items))
    if isinstance(expr, Or):
        return Or(tuple(rewrite_filter(item, redactors) for item in expr.items))
    if isinstance(expr, Not):
        return Not(rewrite_filter(expr.item, redactors))
    return expr
