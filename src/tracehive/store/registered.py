"""Rows from Python handed to DuckDB as a named table that statements can join, for as long as
they need it (DuckDB reads the Arrow table in place, without copying it into the database)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow as pa


@contextmanager
def registered(cursor: duckdb.DuckDBPyConnection, name: str, table: pa.Table | Mapping[str, Any]) -> Iterator[None]:
    """``table`` (an Arrow table, or its columns) as ``name`` on ``cursor`` inside the block."""
    cursor.register(name, table if isinstance(table, pa.Table) else pa.table(table))
    try:
        yield
    finally:
        cursor.unregister(name)


def columns_of(rows: Iterable[tuple], *names: str) -> dict[str, list]:
    """Tuples as columns: ``names[i]`` holds every tuple's ``i``-th item."""
    rows = list(rows)
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}
