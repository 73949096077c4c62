"""Storage backends behind one narrow interface (:class:`tracehive.store.base.Store`)."""

from __future__ import annotations

from pathlib import Path

from tracehive.store.base import Store

DUCKDB_FILE = "tracehive.duckdb"


def open_store(url: str | None, data_dir: Path) -> Store:
    """Open the store a URL names; no URL means the embedded DuckDB file in ``data_dir``."""
    if url is None or url.startswith("duckdb:"):
        from tracehive.store.duckdb import DuckDBStore

        path = url.removeprefix("duckdb://").removeprefix("duckdb:") if url else ""
        return DuckDBStore(Path(path) if path else data_dir / DUCKDB_FILE)
    raise ValueError(f"unknown store URL {url!r}: use duckdb:///path/file.duckdb")
