"""Around a DuckDB cursor: a write's transaction and what its failures mean to the caller, and
rows from Python handed to DuckDB as a named table that statements can join, for as long as they
need it (DuckDB reads the Arrow table in place, without copying it into the database)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow as pa

from tracehive.store.base import StoreFullError, StoreOutOfMemory

_DISK_FULL_MARKERS = ("No space left on device", "disk is full", "Disk quota exceeded")


@contextmanager
def transaction(cursor: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The block's statements in one transaction. Whatever fails, none stays open: the next write on
    the cursor, maybe another tenant's, would fail on it (a failed COMMIT has ended it already, so
    the ROLLBACK's own complaint is dropped). A full disk is raised as :class:`StoreFullError` and
    exhausted memory as :class:`StoreOutOfMemory`, which clients get as 507 and 503."""
    cursor.execute("BEGIN TRANSACTION")
    try:
        yield
        cursor.execute("COMMIT")
    except BaseException as exc:
        with contextlib.suppress(duckdb.Error):
            cursor.execute("ROLLBACK")
        if isinstance(exc, duckdb.Error) and any(marker in str(exc) for marker in _DISK_FULL_MARKERS):
            raise StoreFullError(str(exc)) from exc
        if isinstance(exc, duckdb.OutOfMemoryException) or isinstance(exc.__context__, duckdb.OutOfMemoryException):
            raise StoreOutOfMemory(str(exc.__context__ or exc)) from exc
        raise


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
