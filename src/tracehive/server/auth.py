"""API keys. A key is a random token; only its SHA-256 is kept at rest (keys are long and random,
so a slow password hash buys nothing). An admin key reads and writes every project; a project key
only its own project."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

KEY_PREFIX = "th-"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: ``project`` is None for an admin key."""

    name: str
    project: str | None

    @property
    def projects(self) -> tuple[str, ...] | None:
        return None if self.project is None else (self.project,)


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """The keys a server accepts, persisted as hashes in ``keys.json`` in the data folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._keys: dict[str, Principal] = {}
        if path.exists():
            for item in json.loads(path.read_text()):
                self._keys[item["hash"]] = Principal(item["name"], item.get("project"))

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str, name: str, project: str | None = None, persist: bool = True) -> Principal:
        principal = Principal(name, project)
        with self._lock:
            self._keys[hash_key(key)] = principal
            if persist:
                self._save()
        return principal

    def create(self, name: str, project: str | None = None) -> str:
        key = new_key()
        self.add(key, name, project)
        return key

    def lookup(self, key: str) -> Principal | None:
        # The dict lookup compares digests of the key, never the key itself.
        return self._keys.get(hash_key(key))

    def _save(self) -> None:
        items = [{"hash": h, "name": p.name, "project": p.project} for h, p in self._keys.items()]
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(items, out, indent=1)
        os.replace(tmp, self.path)


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
