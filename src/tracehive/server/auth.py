"""API keys. A key is a random token; only its SHA-256 is kept at rest (keys are long and random,
so a slow password hash buys nothing). An admin key reads and writes every project; a project key
only its own project."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

KEY_PREFIX = "th-"
# A Langfuse key pair: the SDK sends ``Basic base64(public:secret)``. The public key names the pair
# (it is kept as it is); the secret is a project key like any other, kept as its hash.
LANGFUSE_PUBLIC_PREFIX = "pk-th-"
LANGFUSE_SECRET_PREFIX = "sk-th-"
KEYS_FILE = "keys.json"
ID_LENGTH = 12


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


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key as kept at rest: its hash, never the key."""

    digest: str
    name: str
    project: str | None
    created: str
    public_key: str | None = None  # set for a Langfuse key pair

    @property
    def key_id(self) -> str:
        return self.digest[:ID_LENGTH]


class KeyRing:
    """The keys a server accepts. Keys made with ``tracehive keys`` are kept as hashes in
    ``keys.json`` in the data folder and picked up by a running server when the file changes;
    a key given on the command line lives in memory only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        # Both indexed by the key id (the digest's first characters).
        self._memory: dict[str, tuple[str, Principal]] = {}
        self._stored: dict[str, StoredKey] = {}
        self._stamp: tuple[int, int] | None = None
        self._reload()

    def __len__(self) -> int:
        return len(self._memory) + len(self._stored)

    def _reload(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stored, self._stamp = {}, None
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        items = json.loads(self.path.read_text())
        self._stored = {item["hash"][:ID_LENGTH]: StoredKey(item["hash"], item["name"], item.get("project"),
                                                             item["created"], item.get("public_key"))
                        for item in items}  # fmt: skip
        self._stamp = stamp

    def add_in_memory(self, key: str, name: str, project: str | None = None) -> None:
        digest = hash_key(key)
        self._memory[digest[:ID_LENGTH]] = (digest, Principal(name, project))

    def create(self, name: str, project: str | None = None) -> str:
        """Make a new key, keep its hash, and return the key (the only time it is seen)."""
        key = new_key()
        self._keep(key, name, project)
        return key

    def create_langfuse_pair(self, name: str, project: str) -> tuple[str, str]:
        """Make a Langfuse (public, secret) pair for one project; only the secret's hash is kept."""
        public = LANGFUSE_PUBLIC_PREFIX + secrets.token_urlsafe(16)
        secret = LANGFUSE_SECRET_PREFIX + secrets.token_urlsafe(32)
        self._keep(secret, name, project, public)
        return public, secret

    def _keep(self, key: str, name: str, project: str | None, public_key: str | None = None) -> None:
        digest = hash_key(key)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock:
            self._reload()
            self._stored[digest[:ID_LENGTH]] = StoredKey(digest, name, project, created, public_key)
            self._save()

    def revoke(self, key_id_or_name: str) -> list[StoredKey]:
        with self._lock:
            self._reload()
            gone = [h for h, k in self._stored.items() if key_id_or_name in (k.key_id, k.name, k.public_key)]
            removed = [self._stored.pop(h) for h in gone]
            if removed:
                self._save()
        return removed

    def stored(self) -> list[StoredKey]:
        with self._lock:
            self._reload()
            return list(self._stored.values())

    def lookup(self, key: str) -> Principal | None:
        """The key's owner. Keys are found by the first characters of their digest, then the whole
        digest is compared in constant time, so timing tells nothing about a stored key."""
        return self.lookup_digest(hash_key(key))

    def lookup_digest(self, digest: str) -> Principal | None:
        """The key with this SHA-256, if it is still valid (a dashboard login re-checks it)."""
        with self._lock:
            self._reload()
            stored = self._stored.get(digest[:ID_LENGTH])
            memory = self._memory.get(digest[:ID_LENGTH])
        if stored is not None and hmac.compare_digest(stored.digest, digest):
            return Principal(stored.name, stored.project)
        if memory is not None and hmac.compare_digest(memory[0], digest):
            return memory[1]
        return None

    def lookup_pair(self, public_key: str, secret: str) -> Principal | None:
        """The owner of a Langfuse key pair: the secret must be a stored key made with this public key."""
        digest = hash_key(secret)
        with self._lock:
            self._reload()
            stored = self._stored.get(digest[:ID_LENGTH])
        if stored is None or stored.public_key is None or not hmac.compare_digest(stored.digest, digest):
            return None
        if not hmac.compare_digest(stored.public_key.encode(), public_key.encode()):
            return None
        return Principal(stored.name, stored.project)

    def _save(self) -> None:
        items = [{"hash": k.digest, "name": k.name, "project": k.project, "created": k.created}
                 | ({"public_key": k.public_key} if k.public_key else {}) for k in self._stored.values()]  # fmt: skip
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(items, out, indent=1)
        os.replace(tmp, self.path)
        stat = self.path.stat()
        self._stamp = (stat.st_mtime_ns, stat.st_size)


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(user, password)`` from ``Authorization: Basic base64(user:password)``, else None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, colon, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if colon and user and password else None


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
