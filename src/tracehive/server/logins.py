"""Dashboard logins: a browser that showed an API key once gets a random session token in an
HttpOnly, SameSite=Strict cookie. Logins are kept in the store (the token's SHA-256, never the
token), so they survive a restart and every server on one store knows them. A login carries its
key's hash, so revoking the key ends its logins at once, and expires after IDLE_SECONDS unused.

Failed logins are counted per client address in each server's memory: past MAX_FAILURES in
FAILURE_WINDOW_SECONDS, that address is answered 429 until the oldest failure leaves the window.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from tracehive.server.auth import KeyRing, Principal, hash_key
from tracehive.store.base import Store

SESSION_COOKIE = "tracehive_session"
IDLE_SECONDS = 12 * 3600
# Using a login moves its expiry; the store is written at most this often per login.
REFRESH_SECONDS = 600
MAX_FAILURES = 10
FAILURE_WINDOW_SECONDS = 300
MAX_TRACKED_ADDRESSES = 10_000


@dataclass(slots=True)
class Login:
    key_digest: str
    csrf: str  # the token the logout form must carry
    expires: float  # epoch seconds


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class FailedLogins:
    """Recent failed logins per client address (at most MAX_FAILURES each, for the newest
    MAX_TRACKED_ADDRESSES addresses)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_address: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str) -> int | None:
        """Seconds ``address`` must wait before trying again, or None when it may try now."""
        now = time.monotonic()
        with self._lock:
            recent = self._by_address.get(address)
            while recent and recent[0] <= now - FAILURE_WINDOW_SECONDS:
                recent.popleft()
            if not recent or len(recent) < MAX_FAILURES:
                return None
            return max(math.ceil(recent[0] + FAILURE_WINDOW_SECONDS - now), 1)

    def failed(self, address: str) -> None:
        with self._lock:
            recent = self._by_address.setdefault(address, deque(maxlen=MAX_FAILURES))
            recent.append(time.monotonic())
            self._by_address.move_to_end(address)
            while len(self._by_address) > MAX_TRACKED_ADDRESSES:
                self._by_address.popitem(last=False)


class Logins:
    def __init__(self, keys: KeyRing, store: Store) -> None:
        self.keys = keys
        self.store = store
        self.failures = FailedLogins()

    def start(self, key: str) -> str | None:
        """A new login for ``key``; returns its token, or None when the key is unknown."""
        if self.keys.lookup(key) is None:
            return None
        token = secrets.token_urlsafe(32)
        self.store.save_login(_digest(token), hash_key(key), secrets.token_urlsafe(24), time.time() + IDLE_SECONDS)
        return token

    def find(self, token: str | None) -> tuple[Principal, Login] | None:
        """Who a cookie's token logs in as, while the login is fresh and its key still valid."""
        if not token:
            return None
        digest = _digest(token)
        found = self.store.find_login(digest)
        if found is None:
            return None
        login = Login(*found)
        now = time.time()
        who = self.keys.lookup_digest(login.key_digest) if login.expires >= now else None
        if who is None:
            self.store.end_login(digest)
            return None
        if login.expires - now < IDLE_SECONDS - REFRESH_SECONDS:
            login.expires = now + IDLE_SECONDS
            self.store.save_login(digest, login.key_digest, login.csrf, login.expires)
        return who, login

    def end(self, token: str) -> None:
        self.store.end_login(_digest(token))
