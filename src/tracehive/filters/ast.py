"""The parsed form of a filter, shared by every backend compiler (DuckDB now, ClickHouse later).

Nodes are frozen dataclasses, so two filters that mean the same thing compare equal. Source
positions ride along for error messages but take no part in equality.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# A literal after an operator: strings, numbers, booleans and null keep their JSON types.
Value = str | int | float | bool | None

EQUALITY_OPS: tuple[str, ...] = ("=", "!=")
ORDERING_OPS: tuple[str, ...] = (">", ">=", "<", "<=")
COMPARE_OPS: tuple[str, ...] = (*EQUALITY_OPS, *ORDERING_OPS, "contains")


class FilterError(Exception):
    """A filter that cannot be parsed or compiled. ``position`` is the 0-based offset in the
    filter text the problem was found at, so a UI can point at it."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.message = message
        self.position = position


@dataclass(frozen=True, slots=True)
class Field:
    """``column`` is the first segment (a column or a namespace); ``path`` leads into its JSON:
    strings are object keys, ints are list indexes."""

    column: str
    path: tuple[str | int, ...] = ()
    position: int = dataclasses.field(default=0, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Compare:
    field: Field
    op: str  # one of COMPARE_OPS
    value: Value


@dataclass(frozen=True, slots=True)
class Exists:
    field: Field


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Expr


Expr = Compare | Exists | And | Or | Not
