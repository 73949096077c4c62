"""Erase one user: every session whose ``user_properties.user_id`` is theirs, with all its events,
and every event that names them, in the store and on disk.

An erase is journalled before it starts (a file in ``erase-journal/`` holding the project and the
user id) and the journal entry is removed only once the rows are deleted, the store has scrubbed
its files and the audit log has the entry. A server killed during an erase finds the entry when it
starts again and carries the erase out before it serves any request, so nobody sees a user half
erased. The journal is the only place the user id is kept meanwhile, and it is deleted after.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import orjson

from tracehive.filters import Compare, Expr, Field, Or
from tracehive.server.audit import AuditLog
from tracehive.server.policies import PolicyBook
from tracehive.store.durable import fsync_path, write_synced
from tracehive.store.writer import BulkWriter

log = logging.getLogger("tracehive.server")

JOURNAL_DIR = "erase-journal"
_USER_ID = Field("user_properties", ("user_id",))


def user_filter(user_id: str) -> Expr:
    """Sessions or events whose user_properties.user_id is ``user_id`` (as text, or as the number
    it spells: the users view shows both alike)."""
    same = Compare(_USER_ID, "=", user_id)
    if user_id.lstrip("-").isdigit() and len(user_id) < 19:
        return Or((same, Compare(_USER_ID, "=", int(user_id))))
    return same


class Eraser:
    def __init__(self, data_dir: Path, store: Any, writer: BulkWriter, policies: PolicyBook, audit: AuditLog) -> None:
        self.journal = data_dir / JOURNAL_DIR
        self.store = store
        self.writer = writer
        self.policies = policies
        self.audit = audit
        self._lock = threading.Lock()  # one erase at a time: each ends with a whole-store scrub

    def erase(self, project: str, user_id: str, who: str) -> dict[str, Any]:
        """Erase a user and return the audit entry (counts, no user id)."""
        job = {"id": uuid.uuid4().hex, "project": project, "user_id": user_id, "who": who}
        self.journal.mkdir(mode=0o700, exist_ok=True)
        # Written whole under a temporary name, then renamed: an entry is there complete or not at all.
        path, partial = self.journal / f"{job['id']}.json", self.journal / f"{job['id']}.partial"
        write_synced(partial, orjson.dumps(job), os.O_CREAT | os.O_EXCL)
        os.replace(partial, path)
        fsync_path(self.journal)
        return self._carry_out(job, path, redone=False)

    def redo_pending(self) -> list[dict[str, Any]]:
        """Finish the erases a previous run started and did not complete."""
        if not self.journal.is_dir():
            return []
        for partial in self.journal.glob("*.partial"):  # killed before the entry was whole: never began
            partial.unlink()
        done = []
        for path in sorted(self.journal.glob("*.json")):
            try:
                job = orjson.loads(path.read_bytes())
            except orjson.JSONDecodeError:
                # Killed while writing the entry, so before deleting anything: nothing to redo.
                log.warning("removing an erase journal entry cut short: %s", path.name)
                path.unlink()
                continue
            done.append(self._carry_out(job, path, redone=True))
            log.warning("finished an erase cut short by a stop: %s", job["id"])
        return done

    def _carry_out(self, job: dict[str, Any], path: Path, redone: bool) -> dict[str, Any]:
        project, user_id = job["project"], job["user_id"]
        where = self.policies.rewrite(user_filter(user_id), (project,))
        with self._lock:
            sessions, events = self.writer.run(
                lambda: self.store.delete_sessions(project, where, events_where=where)
            ).result()
            scrubbed = self.writer.run(lambda: self.store.reclaim(scrub=True)).result()
        redactor = self.policies.get(project).redactor()
        entry = self.audit.record(
            "erase_user",
            project,
            job["who"],
            erase_id=job["id"],
            user_fingerprint=redactor.hash_value(user_id) if redactor.secret else None,
            sessions=sessions,
            events=events,
            scrubbed=scrubbed,
            redone=redone,
        )
        path.unlink()
        fsync_path(self.journal)
        return entry
