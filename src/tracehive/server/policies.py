"""Per-project privacy settings (redaction rules, retention), as the server holds them.

Settings are stored in the store, one row per version, with the project's hashing secret, which
never leaves the server. The server keeps the newest version of each in memory: a save updates it
at once (ingest requests prepared after the save carry the new rules to the workers), and a
background refresh picks up what other servers on the same ClickHouse saved.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

import orjson

from tracehive.filters import Expr
from tracehive.privacy import Redactor, Rule, RuleError, parse_rules, rewrite_filter
from tracehive.store.base import Row

MAX_RETENTION_DAYS = 100 * 365


@dataclass(frozen=True, slots=True)
class ProjectPolicy:
    project: str
    version: int = 0
    redact: tuple[Rule, ...] = ()
    retention_days: float | None = None
    saved_at: str | None = None
    saved_by: str | None = None
    secret: str = field(default="", repr=False)

    @classmethod
    def from_row(cls, row: Row) -> ProjectPolicy:
        body = orjson.loads(row["settings"])
        return cls(
            project=row["project"],
            version=row["version"],
            redact=parse_rules(body.get("redact", [])),
            retention_days=body.get("retention_days"),
            saved_at=row["saved_at"],
            saved_by=row["saved_by"],
            secret=row["secret"],
        )

    def public(self) -> dict[str, Any]:
        """What the API shows: everything but the secret."""
        return {
            "project": self.project,
            "version": self.version,
            "redact": [rule.to_dict() for rule in self.redact],
            "retention_days": self.retention_days,
            "saved_at": self.saved_at,
            "saved_by": self.saved_by,
        }

    def redactor(self) -> Redactor:
        return Redactor(self.redact, bytes.fromhex(self.secret) if self.secret else None)


def check_retention(days: Any) -> float | None:
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= MAX_RETENTION_DAYS:
        raise RuleError(f"retention_days: a number of days above 0 and at most {MAX_RETENTION_DAYS}, or null")
    return float(days)


class PolicyBook:
    def __init__(self, store: Any) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._policies: dict[str, ProjectPolicy] = {}
        self._redactors: dict[str, Redactor] = {}
        self.refresh()

    def refresh(self) -> None:
        """Read every project's newest settings from the store."""
        loaded = {row["project"]: ProjectPolicy.from_row(row) for row in self._store.project_settings()}
        with self._lock:
            for project, policy in loaded.items():
                if policy.version >= self._policies.get(project, ProjectPolicy(project)).version:
                    self._set(policy)

    def _set(self, policy: ProjectPolicy) -> None:
        self._policies[policy.project] = policy
        redactor = policy.redactor()
        if redactor:
            self._redactors[policy.project] = redactor
        else:
            self._redactors.pop(policy.project, None)

    def get(self, project: str) -> ProjectPolicy:
        with self._lock:
            return self._policies.get(project, ProjectPolicy(project))

    def all(self) -> list[ProjectPolicy]:
        with self._lock:
            return list(self._policies.values())

    def save(self, project: str, changes: dict[str, Any], saved_by: str) -> ProjectPolicy:
        """A new version of a project's settings: ``changes`` may hold ``redact`` and
        ``retention_days``; what it leaves out keeps its current value."""
        current = self.get(project)
        redact = parse_rules(changes["redact"]) if "redact" in changes else current.redact
        days = check_retention(changes["retention_days"]) if "retention_days" in changes else current.retention_days
        body = orjson.dumps({"redact": [r.to_dict() for r in redact], "retention_days": days}).decode()
        secret = current.secret or secrets.token_hex(32)
        self._store.save_project_settings(project, body, secret, saved_by)
        policy = ProjectPolicy.from_row(self._store.project_settings_history(project)[0])
        with self._lock:
            self._set(policy)
        return policy

    def history(self, project: str) -> list[dict[str, Any]]:
        return [ProjectPolicy.from_row(row).public() for row in self._store.project_settings_history(project)]

    def ingest_redactors(self) -> dict[str, Redactor] | None:
        """The rules ingest applies, per project; None when no project has any (the usual case)."""
        with self._lock:
            return dict(self._redactors) if self._redactors else None

    def rewrite(self, expr: Expr | None, projects: tuple[str, ...] | None) -> Expr | None:
        """A filter that also finds values the readable projects stored hashed."""
        if expr is None:
            return None
        with self._lock:
            chosen = self._redactors.values() if projects is None else (self._redactors.get(p) for p in projects)
            redactors = [r for r in chosen if r is not None]
        return rewrite_filter(expr, redactors)
