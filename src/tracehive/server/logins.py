"""Dashboard logins: a browser that showed an API key once gets a random session token in an
HttpOnly, SameSite=Strict cookie. Tokens live in server memory only (a restart logs everyone out)
and carry the key's hash, so revoking the key ends its logins at once."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from tracehive.server.auth import KeyRing, Principal, hash_key

SESSION_COOKIE = "tracehive_session"
IDLE_SECONDS = 12 * 3600
MAX_LOGINS = 10_000


@dataclass(slots=True)
class Login:
    key_digest: str
    csrf: str  # the token the logout form must carry
    expires: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Logins:
    def __init__(self, keys: KeyRing) -> None:
        self.keys = keys
        self._lock = threading.Lock()
        self._by_token: dict[str, Login] = {}

    def start(self, key: str) -> str | None:
        """A new login for ``key``; returns its token, or None when the key is unknown."""
        if self.keys.lookup(key) is None:
            return None
        token = secrets.token_urlsafe(32)
        with self._lock:
            if len(self._by_token) >= MAX_LOGINS:
                oldest = min(self._by_token, key=lambda t: self._by_token[t].expires)
                del self._by_token[oldest]
            login = Login(hash_key(key), secrets.token_urlsafe(24), time.monotonic() + IDLE_SECONDS)
            self._by_token[_digest(token)] = login
        return token

    def find(self, token: str | None) -> tuple[Principal, Login] | None:
        """Who a cookie's token logs in as, while the login is fresh and its key still valid."""
        if not token:
            return None
        digest = _digest(token)
        with self._lock:
            login = self._by_token.get(digest)
            if login is None or login.expires < time.monotonic():
                self._by_token.pop(digest, None)
                return None
            login.expires = time.monotonic() + IDLE_SECONDS
        who = self.keys.lookup_digest(login.key_digest)
        if who is None:
            self.end(token)
            return None
        return who, login

    def end(self, token: str) -> None:
        with self._lock:
            self._by_token.pop(_digest(token), None)
