"""Dashboard logins are kept in the store (the token's hash, with an expiry), on DuckDB and on
ClickHouse: they survive a restart, and two servers on one ClickHouse share them. Failed logins
are rate-limited per client address (429 with Retry-After)."""

from __future__ import annotations

import re
import threading
import time

import clickhouse_connect
import httpx
import pytest
from tests.conftest import ADMIN_KEY, start_server

from tracehive.server import logins as logins_module
from tracehive.server.auth import KeyRing
from tracehive.server.logins import MAX_FAILURES, SESSION_COOKIE, Logins, _digest
from tracehive.store.clickhouse import ClickHouseStore
from tracehive.store.duckdb import DuckDBStore


@pytest.fixture
def keys(tmp_path) -> KeyRing:
    ring = KeyRing(tmp_path / "keys.json")
    ring.add_in_memory(ADMIN_KEY, "admin")
    return ring


def clickhouse(chdb_dsn: str, database: str) -> ClickHouseStore:
    return ClickHouseStore(clickhouse_connect.get_client(dsn=chdb_dsn), database=database)


def test_a_login_outlives_its_duckdb_store_and_keeps_no_token(tmp_path, keys):
    path = tmp_path / "logins.duckdb"
    first = DuckDBStore(path)
    token = Logins(keys, first).start(ADMIN_KEY)
    assert token and Logins(keys, first).start("th-unknown") is None
    first.close()
    reopened = DuckDBStore(path)  # a restart
    try:
        who, login = Logins(keys, reopened).find(token)
        assert who.name == "admin" and login.expires > time.time()
        stored = reopened._cursor().execute("SELECT * FROM logins").fetchall()
        assert len(stored) == 1 and token not in repr(stored) and stored[0][0] == _digest(token)
        Logins(keys, reopened).end(token)
        assert Logins(keys, reopened).find(token) is None
    finally:
        reopened.close()


def test_two_servers_on_one_clickhouse_share_logins(chdb_dsn, keys):
    one, two = clickhouse(chdb_dsn, "shared_logins"), clickhouse(chdb_dsn, "shared_logins")
    token = Logins(keys, one).start(ADMIN_KEY)
    who, login = Logins(keys, two).find(token)
    assert who.name == "admin"
    assert Logins(keys, one).find(token)[1].csrf == login.csrf  # the logout form works on either
    Logins(keys, two).end(token)  # logging out on one server ends it on the other
    assert Logins(keys, one).find(token) is None
    assert Logins(keys, one).find("never-issued") is None


@pytest.mark.parametrize("backend", ["duckdb", "clickhouse"])
def test_logins_expire_and_end_with_their_key(backend, tmp_path, chdb_dsn, keys, monkeypatch):
    store = DuckDBStore(tmp_path / "x.duckdb") if backend == "duckdb" else clickhouse(chdb_dsn, "expiring_logins")
    logins = Logins(keys, store)
    token = logins.start(ADMIN_KEY)
    now = time.time()
    monkeypatch.setattr(logins_module.time, "time", lambda: now + logins_module.IDLE_SECONDS / 2)
    assert logins.find(token) is not None  # used: its expiry moves on
    monkeypatch.setattr(logins_module.time, "time", lambda: now + logins_module.IDLE_SECONDS * 1.4)
    assert logins.find(token) is not None
    monkeypatch.setattr(logins_module.time, "time", lambda: now + logins_module.IDLE_SECONDS * 3)
    assert logins.find(token) is None  # idle too long
    monkeypatch.undo()
    revoked = KeyRing(tmp_path / "other.json")
    assert Logins(revoked, store).find(logins.start(ADMIN_KEY)) is None  # a key this server does not know
    store.close()


def log_in(url: str, key: str, client: httpx.Client) -> httpx.Response:
    form = client.get(f"{url}/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    return client.post(f"{url}/login", data={"csrf": csrf, "key": key, "next": "/"})


@pytest.mark.parametrize("backend", ["duckdb", "clickhouse"])
def test_a_dashboard_login_survives_a_server_restart(backend, tmp_path):
    extra = ("--store", f"chdb://{tmp_path / 'chdb'}?database=restart") if backend == "clickhouse" else ()
    server = start_server(tmp_path / "data", *extra)
    try:
        with httpx.Client() as browser:
            assert log_in(server.url, server.key, browser).status_code == 303
            token = browser.cookies[SESSION_COOKIE]
    finally:
        server.stop()
    server = start_server(tmp_path / "data", *extra)
    try:
        page = httpx.get(f"{server.url}/", cookies={SESSION_COOKIE: token})
        assert page.status_code == 200 and "Log out" in page.text
    finally:
        server.stop()


def test_failed_logins_are_rate_limited_per_address(tmp_path):
    server = start_server(tmp_path / "data")  # its own: this test blocks 127.0.0.1 for a while
    from_here = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.1"))
    from_elsewhere = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    with from_here, from_elsewhere:
        for _ in range(MAX_FAILURES):
            assert log_in(server.url, "th-guess", from_here).status_code == 401
        refused = log_in(server.url, "th-guess", from_here)
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= logins_module.FAILURE_WINDOW_SECONDS
        assert "Too many failed logins" in refused.text
        assert log_in(server.url, server.key, from_here).status_code == 429  # even the right key waits
        assert log_in(server.url, server.key, from_elsewhere).status_code == 303  # another address does not
    server.stop()


def test_concurrent_requests_refreshing_and_ending_logins_all_succeed(tmp_path, keys, monkeypatch):
    """Many requests of one browser at once, just as its login is due a refresh, and other logins
    starting and ending meanwhile: DuckDB refuses a second concurrent writer of a row."""
    store = DuckDBStore(tmp_path / "busy.duckdb")
    logins = Logins(keys, store)
    shared = logins.start(ADMIN_KEY)
    later = time.time() + logins_module.REFRESH_SECONDS + 1
    monkeypatch.setattr(logins_module.time, "time", lambda: later)
    failures: list[BaseException] = []

    def browse() -> None:
        try:
            for _ in range(30):
                assert logins.find(shared) is not None
                logins.end(logins.start(ADMIN_KEY))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=browse) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    assert failures == []
