"""What the ClickHouse store does for privacy: project settings (redaction rules, retention),
deleting sessions with their events (erase, retention), and making sure deleted data is gone from
disk: a delete mutation writes new parts without the rows, and the parts it replaced, which still
hold them, are removed (see :meth:`ClickHousePrivacy.reclaim`).
"""

from __future__ import annotations

from typing import Any

from clickhouse_connect.driver.client import Client

from tracehive.filters import EVENT_FIELDS, SESSION_FIELDS, Expr
from tracehive.store.base import Row
from tracehive.store.clickhouse_filter import to_clickhouse_sql
from tracehive.store.columns import EVENT_COLUMNS
from tracehive.store.migrations import Migration
from tracehive.store.rows import record_row

_PROJECT_SETTINGS = """
CREATE TABLE IF NOT EXISTS {db}.project_settings (
    project String, version UInt32, settings String, secret String,
    saved_at DateTime64(3, 'UTC'), saved_by String
) ENGINE = ReplacingMergeTree ORDER BY (project, version)
"""
MIGRATION = Migration(6, "project settings: redaction rules and retention, versioned", (_PROJECT_SETTINGS,))
_SETTINGS_COLUMNS = "project, version, settings, secret, saved_at, saved_by"
# Tables holding session or event data, each rebuilt by a scrub.
DATA_TABLES = ("sessions", "session_updates", "events")
_SYNC = "SETTINGS mutations_sync = 2"
SCRATCH_SUFFIX = "_scrub"


def _settings_row(values: tuple) -> Row:
    row = dict(zip(("project", "version", "settings", "secret", "saved_at", "saved_by"), values, strict=True))
    row["saved_at"] = row["saved_at"].replace(tzinfo=None).isoformat() + "Z"
    return row


class ClickHousePrivacy:
    """Mixed into :class:`~tracehive.store.clickhouse.ClickHouseStore`."""

    _client: Client
    _db: str
    database: str

    def _select(self, sql: str, params: dict[str, Any]) -> list[tuple]: ...

    # --- settings -------------------------------------------------------------------------
    def save_project_settings(self, project: str, settings: str, secret: str, saved_by: str) -> int:
        ((latest,),) = self._select(
            f"SELECT max(version) FROM {self._db}.project_settings WHERE project = {{p:String}}", {"p": project}
        )
        version = int(latest or 0) + 1
        self._client.command(
            f"INSERT INTO {self._db}.project_settings ({_SETTINGS_COLUMNS}) VALUES "
            "({p:String}, {v:UInt32}, {s:String}, {k:String}, now64(3), {by:String})",
            {"p": project, "v": version, "s": settings, "k": secret, "by": saved_by},
        )
        return version

    def project_settings(self) -> list[Row]:
        rows = self._select(
            f"SELECT {_SETTINGS_COLUMNS} FROM {self._db}.project_settings FINAL "
            "ORDER BY project, version DESC LIMIT 1 BY project",
            {},
        )
        return [_settings_row(values) for values in rows]

    def project_settings_history(self, project: str) -> list[Row]:
        rows = self._select(
            f"SELECT {_SETTINGS_COLUMNS} FROM {self._db}.project_settings FINAL WHERE project = {{p:String}} "
            "ORDER BY version DESC",
            {"p": project},
        )
        return [_settings_row(values) for values in rows]

    # --- export ---------------------------------------------------------------------------
    def events_of_sessions(self, keys: list[tuple[str, str]]) -> list[Row]:
        """The events of these (project, session_id) sessions, by session then start time."""
        if not keys:
            return []
        rows = self._select(
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM {self._db}.events FINAL"
            " WHERE has({projects:Array(String)}, project) AND has({ids:Array(String)}, session_id)"
            " AND (project, session_id) IN (SELECT arrayJoin({keys:Array(Tuple(String, String))}))"
            " ORDER BY project, session_id, start_time, event_id",
            {"projects": sorted({k[0] for k in keys}), "ids": [k[1] for k in keys], "keys": keys},
        )
        return [record_row(EVENT_COLUMNS, values) for values in rows]

    # --- deleting -------------------------------------------------------------------------
    def delete_sessions(
        self, project: str, where: Expr, limit: int | None = None, events_where: Expr | None = None
    ) -> tuple[int, int]:
        """Delete the sessions of ``project`` that ``where`` selects (at most ``limit``), every event of
        theirs, and the events ``events_where`` selects. Returns how many sessions and events went.
        Each table's delete is a synchronous mutation; a server killed between them leaves the rest
        to the caller's redo (the erase journal; retention simply finds the rest next time). While
        they run, a reader may see a session whose events are already gone."""
        from tracehive.store.clickhouse import _session_view  # that module imports this one

        params: dict[str, Any] = {"project": project}
        sql, filter_params = to_clickhouse_sql(where, SESSION_FIELDS)
        params.update(filter_params)
        view = _session_view(self._db, "project = {project:String}")
        limit_sql = "" if limit is None else f" LIMIT {int(limit)}"
        ids = [
            row[0]
            for row in self._select(
                f"SELECT session_id FROM ({view}) WHERE {sql} ORDER BY start_time{limit_sql}", params
            )
        ]
        in_ids = "project = {project:String} AND has({ids:Array(String)}, session_id)"
        event_clause = in_ids
        event_params: dict[str, Any] = {"project": project, "ids": ids}
        if events_where is not None:
            extra_sql, extra_params = to_clickhouse_sql(events_where, EVENT_FIELDS, prefix="e")
            event_clause = f"project = {{project:String}} AND (has({{ids:Array(String)}}, session_id) OR ({extra_sql}))"
            event_params.update(extra_params)
        if not ids and events_where is None:
            return 0, 0
        ((events,),) = self._select(f"SELECT count() FROM {self._db}.events FINAL WHERE {event_clause}", event_params)
        others = sorted(
            {row[0] for row in self._select(f"SELECT DISTINCT session_id FROM {self._db}.events WHERE {event_clause}",
                                            event_params)} - set(ids)
        )  # fmt: skip
        # Other users' sessions that held some of these events are counted again first, from their
        # events less these: a server killed before the events go finds them again and redoes it.
        self._recount(project, others, event_clause, event_params)
        # The sessions' own rows go last: they are how a redo finds the sessions, so a server killed
        # between these mutations leaves what the redo needs to finish the erase.
        if events:
            self._client.command(f"ALTER TABLE {self._db}.events DELETE WHERE {event_clause} {_SYNC}", event_params)
        if ids:
            for table in ("session_updates", "sessions"):
                self._client.command(f"ALTER TABLE {self._db}.{table} DELETE WHERE {in_ids} {_SYNC}", event_params)
        return len(ids), int(events)

    def _recount(self, project: str, session_ids: list[str], erased: str, erased_params: dict[str, Any]) -> None:
        """Sessions about to lose some of their events (an erased user's, in another user's session):
        their aggregate rows are deleted and made again from the events not ``erased``, by the same
        queries as the materialized views that fill them. Run before those events are deleted, it
        can be redone whole after a crash at any point."""
        from tracehive.store.clickhouse_schema import MODEL_CALLS_OF_EVENTS, SESSIONS_OF_EVENTS, SESSIONS_OF_UPDATES

        if not session_ids:
            return
        params = {**erased_params, "others": session_ids}
        picked = "project = {project:String} AND has({others:Array(String)}, session_id)"
        remaining = f"(SELECT * FROM {self._db}.events WHERE NOT ({erased}))"
        self._client.command(f"ALTER TABLE {self._db}.sessions DELETE WHERE {picked} {_SYNC}", params)
        for columns, select in (
            ("start_time, end_time, event_ids, error_ids", SESSIONS_OF_EVENTS),
            ("session_name, source, start_time, end_time, updates", SESSIONS_OF_UPDATES),
            ("model_usage", MODEL_CALLS_OF_EVENTS),
        ):
            self._client.command(
                f"INSERT INTO {self._db}.sessions (project, session_id, {columns}) "
                f"SELECT * FROM ({select.format(db=self._db).replace(f'{self._db}.events', remaining)}) WHERE {picked}",
                params,
            )

    def reclaim(self, scrub: bool) -> bool:
        """Without ``scrub``, nothing: the delete mutations already wrote parts without the rows,
        and ClickHouse removes the replaced ones after ``old_parts_lifetime``. With it, make sure
        the replaced parts go from disk; returns whether they are gone already.

        chDB (one process, run on the writer's thread so its writes wait) rebuilds each table: its
        clean parts are attached to a scratch table, the table is truncated (which removes every
        part file at once), and the parts come back, without re-running the materialized views.
        A ClickHouse server may have other writers, whose inserts a truncate could lose, so there
        the parts are merged and the tables' ``old_parts_lifetime`` set to zero: ClickHouse removes
        the replaced parts at its next cleanup (about a minute), and False says so."""
        if not scrub:
            return True
        if "chdb" in type(self._client).__module__:
            for table in DATA_TABLES:
                self._rebuild(table)
            return True
        for table in DATA_TABLES:
            self._client.command(f"OPTIMIZE TABLE {self._db}.{table} FINAL")
            self._client.command(f"ALTER TABLE {self._db}.{table} MODIFY SETTING old_parts_lifetime = 0")
        return False

    def _rebuild(self, table: str) -> None:
        scratch = f"{self._db}.{table}{SCRATCH_SUFFIX}"
        self._restore_from_scratch(table)
        self._client.command(f"DROP TABLE IF EXISTS {scratch} SYNC")
        self._client.command(f"CREATE TABLE {scratch} AS {self._db}.{table}")
        self._client.command(f"ALTER TABLE {scratch} ATTACH PARTITION ALL FROM {self._db}.{table}")
        self._client.command(f"TRUNCATE TABLE {self._db}.{table} SYNC")
        self._client.command(f"ALTER TABLE {self._db}.{table} ATTACH PARTITION ALL FROM {scratch}")
        self._client.command(f"DROP TABLE {scratch} SYNC")

    def _restore_from_scratch(self, table: str) -> None:
        """A rebuild killed after its truncate left the table's parts only in the scratch table: put
        back every partition the scratch table has and the table lacks. Killed at any other step, the
        table has all of its partitions and the scratch table is only a copy, so nothing moves."""
        exists = "SELECT 1 FROM system.tables WHERE database = {db:String} AND name = {t:String}"
        if not self._select(exists, {"db": self.database, "t": table + SCRATCH_SUFFIX}):
            return
        parts = (
            "SELECT DISTINCT partition_id FROM system.parts"
            " WHERE database = {db:String} AND table = {t:String} AND active"
        )
        kept = {row[0] for row in self._select(parts, {"db": self.database, "t": table})}
        for (partition,) in self._select(parts, {"db": self.database, "t": table + SCRATCH_SUFFIX}):
            if partition not in kept:
                self._client.command(
                    f"ALTER TABLE {self._db}.{table} ATTACH PARTITION ID '{partition}'"
                    f" FROM {self._db}.{table}{SCRATCH_SUFFIX}"
                )
