"""Storage backends behind one narrow interface (:class:`tracehive.store.base.Store`)."""

from __future__ import annotations

from pathlib import Path

from tracehive.store.base import DEFAULT_BUDGET, QueryBudget, Store

DUCKDB_FILE = "tracehive.duckdb"


def open_store(url: str | None, data_dir: Path, budget: QueryBudget = DEFAULT_BUDGET) -> Store:
    """Open the store a URL names; no URL means the embedded DuckDB file in ``data_dir``.
    ClickHouse (``clickhouse://``, or ``chdb://`` in-process) needs the ``clickhouse`` extra."""
    if url is None or url.startswith("duckdb:"):
        from tracehive.store.duckdb import DuckDBStore

        path = url.removeprefix("duckdb://").removeprefix("duckdb:") if url else ""
        return DuckDBStore(Path(path) if path else data_dir / DUCKDB_FILE, budget)
    if url.startswith(("clickhouse:", "chdb:")):
        try:
            from tracehive.store.clickhouse import open_clickhouse
        except ImportError as exc:
            raise ValueError(f"{exc}: the ClickHouse store needs pip install 'tracehive[clickhouse]'") from None
        return open_clickhouse(url, budget)
    raise ValueError(
        f"unknown store URL {url!r}: use duckdb:///path/file.duckdb, clickhouse://user:pass@host:8123/db"
        " or chdb:///path/folder"
    )
