"""Versioned schema migrations, shared by every store.

Each store lists its migrations in order (version 1, 2, ...). At start it reads the highest
version recorded in its ``schema_version`` table, applies the newer migrations one by one and
records each. A store whose recorded version is newer than this code knows is refused: an older
tracehive must not write into a schema it does not understand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

SCHEMA_TABLE = "schema_version"


class SchemaTooNewError(RuntimeError):
    """The store was migrated by a newer tracehive than this one."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


def pending(migrations: Sequence[Migration], current: int, where: str) -> list[Migration]:
    """The migrations to apply to a store at ``current``; raises if it is newer than the code."""
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(migrations) + 1)):
        raise ValueError(f"migrations must be numbered 1..n in order, got {versions}")
    if current > len(migrations):
        raise SchemaTooNewError(
            f"{where} has schema version {current}, newer than this tracehive knows "
            f"({len(migrations)}): upgrade tracehive before opening it"
        )
    return list(migrations[current:])


def apply(
    migrations: Sequence[Migration],
    current: int,
    where: str,
    execute: Callable[[str], object],
    record: Callable[[Migration], object],
) -> list[int]:
    """Run each pending migration's statements, then record it; returns the versions applied."""
    applied = []
    for migration in pending(migrations, current, where):
        for statement in migration.statements:
            execute(statement)
        record(migration)
        applied.append(migration.version)
    return applied
