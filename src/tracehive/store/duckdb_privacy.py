"""What the DuckDB store does for privacy: project settings (redaction rules, retention), deleting
sessions with their events (erase, retention), and rewriting the file so that deleted data is gone
from disk too.

DuckDB marks deleted rows and frees blocks without clearing them, so an erased value can stay in
the file (in a row group that still holds other rows, or in a free block) until overwritten. After
an erase the store copies every live row into a new file and puts it in the old one's place.
"""

from __future__ import annotations

import contextlib
import os
import threading

import duckdb
import pyarrow as pa

from tracehive.filters import EVENT_FIELDS, SESSION_FIELDS, Expr
from tracehive.store.base import Row
from tracehive.store.columns import EVENT_COLUMNS
from tracehive.store.duckdb_cursor import columns_of, registered, transaction
from tracehive.store.duckdb_filter import to_duckdb_sql
from tracehive.store.durable import fsync_path
from tracehive.store.gate import gated
from tracehive.store.migrations import Migration
from tracehive.store.rows import record_row

PROJECT_SETTINGS = """
CREATE TABLE IF NOT EXISTS project_settings (
    project VARCHAR NOT NULL, version INTEGER NOT NULL, settings VARCHAR NOT NULL, secret VARCHAR NOT NULL,
    saved_at TIMESTAMP NOT NULL, saved_by VARCHAR NOT NULL, PRIMARY KEY (project, version)
)
"""
MIGRATION = Migration(9, "project settings: redaction rules and retention, versioned", (PROJECT_SETTINGS,))
_SETTINGS_COLUMNS = "project, version, settings, secret, saved_at, saved_by"
REWRITE_SUFFIX = ".rewrite"
_REWRITE_ALIAS = "tracehive_rewrite"


def _settings_row(values: tuple) -> Row:
    row = dict(zip(("project", "version", "settings", "secret", "saved_at", "saved_by"), values, strict=True))
    row["saved_at"] = row["saved_at"].isoformat() + "Z"
    return row


def remove_rewrite_leftover(path: str) -> None:
    """A rewrite cut short (the process killed mid-copy) leaves its new file: the old one is whole."""
    for leftover in (path + REWRITE_SUFFIX, path + REWRITE_SUFFIX + ".wal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(leftover)


class DuckDBPrivacy:
    """Mixed into :class:`~tracehive.store.duckdb.DuckDBStore`."""

    path: str
    _db: duckdb.DuckDBPyConnection
    _local: threading.local

    def _cursor(self) -> duckdb.DuckDBPyConnection: ...
    def _connect(self) -> duckdb.DuckDBPyConnection: ...

    # --- settings -------------------------------------------------------------------------
    @gated
    def save_project_settings(self, project: str, settings: str, secret: str, saved_by: str) -> int:
        """Store a new version of a project's settings; returns its version number."""
        (version,) = (
            self._cursor()
            .execute(
                f"INSERT INTO project_settings ({_SETTINGS_COLUMNS}) "
                "SELECT ?, coalesce(max(version), 0) + 1, ?, ?, now()::TIMESTAMP, ? FROM project_settings "
                "WHERE project = ? RETURNING version",
                [project, settings, secret, saved_by, project],
            )
            .fetchone()
        )
        return version

    @gated
    def project_settings(self) -> list[Row]:
        """The newest settings of every project that has any."""
        rows = (
            self._cursor()
            .execute(
                f"SELECT {_SETTINGS_COLUMNS} FROM project_settings "
                "QUALIFY row_number() OVER (PARTITION BY project ORDER BY version DESC) = 1 ORDER BY project"
            )
            .fetchall()
        )
        return [_settings_row(values) for values in rows]

    @gated
    def project_settings_history(self, project: str) -> list[Row]:
        rows = (
            self._cursor()
            .execute(
                f"SELECT {_SETTINGS_COLUMNS} FROM project_settings WHERE project = ? ORDER BY version DESC",
                [project],
            )
            .fetchall()
        )
        return [_settings_row(values) for values in rows]

    # --- export ---------------------------------------------------------------------------
    @gated
    def events_of_sessions(self, keys: list[tuple[str, str]]) -> list[Row]:
        """The events of these (project, session_id) sessions, by session then start time."""
        if not keys:
            return []
        cursor = self._cursor()
        with registered(cursor, "wanted", columns_of(keys, "p", "s")):
            # The sessions' time span bounds their events: the scan skips row groups outside it.
            first, last = cursor.execute(
                "SELECT min(start_time), max(end_time) FROM sessions JOIN wanted ON project = p AND session_id = s"
            ).fetchone()
            span = "" if first is None or last is None else "WHERE e.start_time BETWEEN ? AND ? "
            rows = cursor.execute(
                f"SELECT {', '.join(f'e.{c}' for c in EVENT_COLUMNS)} FROM events e "
                f"JOIN wanted ON e.project = wanted.p AND e.session_id = wanted.s {span}"
                "ORDER BY e.project, e.session_id, e.start_time, e.event_id",
                [first, last] if span else [],
            ).fetchall()
        return [record_row(EVENT_COLUMNS, values) for values in rows]

    # --- deleting -------------------------------------------------------------------------
    @gated
    def delete_sessions(
        self, project: str, where: Expr, limit: int | None = None, events_where: Expr | None = None
    ) -> tuple[int, int]:
        """Delete, in one transaction, the sessions of ``project`` that ``where`` selects (at most
        ``limit``), every event of theirs, and the events ``events_where`` selects. Returns how many
        sessions and events went."""
        cursor = self._cursor()
        sql, params = to_duckdb_sql(where, SESSION_FIELDS)
        with transaction(cursor):
            ids = cursor.execute(
                f"SELECT session_id FROM sessions WHERE project = ? AND ({sql}) ORDER BY start_time LIMIT ?",
                [project, *params, limit],
            ).fetchall()
            with registered(cursor, "doomed", pa.table(columns_of(ids, "session_id"), schema=_IDS)):
                (events,) = cursor.execute(
                    "DELETE FROM events WHERE project = ? AND session_id IN (SELECT session_id FROM doomed)", [project]
                ).fetchone()
                if events_where is not None:
                    event_sql, event_params = to_duckdb_sql(events_where, EVENT_FIELDS)
                    others = cursor.execute(
                        f"SELECT DISTINCT session_id FROM events WHERE project = ? AND ({event_sql})",
                        [project, *event_params],
                    ).fetchall()
                    (more,) = cursor.execute(
                        f"DELETE FROM events WHERE project = ? AND ({event_sql})", [project, *event_params]
                    ).fetchone()
                    events += more
                    _recount(cursor, project, [row[0] for row in others])
                (sessions,) = cursor.execute(
                    "DELETE FROM sessions WHERE project = ? AND session_id IN (SELECT session_id FROM doomed)",
                    [project],
                ).fetchone()
        return sessions, events

    def reclaim(self, scrub: bool) -> bool:
        """Give deleted rows' space back: a checkpoint folds the write-ahead log into the file and
        frees their blocks for new data (run it where no write is under way: the writer's thread).
        ``scrub`` also rewrites the file, so that nothing deleted is left in it; calls wait for the
        rewrite (seconds per GB)."""
        if not scrub:
            self._cursor().execute("CHECKPOINT")
            return True
        with self._gate.alone():
            self._db.execute("CHECKPOINT")
            self._rewrite()
        return True

    def _rewrite(self) -> None:
        fresh = self.path + REWRITE_SUFFIX
        remove_rewrite_leftover(self.path)
        (name,) = self._db.execute("SELECT current_database()").fetchone()
        self._db.execute(f"ATTACH '{fresh.replace(chr(39), chr(39) * 2)}' AS {_REWRITE_ALIAS}")
        try:
            self._db.execute(f'COPY FROM DATABASE "{name}" TO {_REWRITE_ALIAS}')
        finally:
            self._db.execute(f"DETACH {_REWRITE_ALIAS}")
        # Closing checkpoints and removes the old file's write-ahead log, so nothing replays into the new one.
        self._db.close()
        fsync_path(fresh)
        os.replace(fresh, self.path)
        fsync_path(os.path.dirname(os.path.abspath(self.path)))
        self._db = self._connect()
        self._local = threading.local()  # every thread's cursor belonged to the closed connection


_IDS = pa.schema([("session_id", pa.string())])


def _recount(cursor: duckdb.DuckDBPyConnection, project: str, session_ids: list[str]) -> None:
    """Count again, from the events they have left, the events, errors, model calls, tokens and cost
    of sessions that lost some of their events (those of an erased user in another user's session).
    The doomed sessions are among them, already gone: the update finds no row of theirs."""
    from tracehive.store.duckdb_schema import RECOUNT_SESSIONS  # that module imports this one

    if not session_ids:
        return
    with registered(cursor, "recounted", pa.table({"session_id": session_ids}, schema=_IDS)):
        cursor.execute(RECOUNT_SESSIONS, [project, project])
