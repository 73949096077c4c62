"""Issue 12, what one tenant's reads must not do, on DuckDB and on ClickHouse (chDB): a costly
filter is cancelled past the query time budget (finding 2), ingest bounds what one value may
hold (2), the login form is read bounded (3), and bad query input is a 400 naming the field on a
connection that stays open (5)."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time
from urllib.parse import urlsplit

import orjson
import pytest
from tests.otlp_payloads import new_span_id, new_trace_id, protobuf_request
from tests.tenants import PROTOBUF, start_tenants

from tracehive.server.limits import Limits

LIMITS = Limits()
QUERY_SECONDS = 2.0
# Sessions with a list at the length limit: the filter below takes far longer than the budget.
# ClickHouse checks its time limit between blocks of work, and once chDB has merged the sessions
# into one block it stops only after that block: fewer sessions keep its test short. With 8, a
# quiet machine ran the whole filter inside the budget (after the filter compilers became one).
COSTLY_SESSIONS = {"duckdb": 30, "chdb": 24}


@pytest.fixture(scope="module", params=("duckdb", "chdb"))
def budgeted(request, tmp_path_factory):
    """Tenants on a server whose queries may run ``QUERY_SECONDS``. Memory is bounded above DuckDB's
    default here: within that, the costly filter below runs out of memory before time (also a 503)."""
    folder = tmp_path_factory.mktemp(f"budget-{request.param}")
    running = start_tenants(folder, request.param, "--query-timeout", str(QUERY_SECONDS), "--query-memory-mb", "2048")
    yield running
    running.stop()


# --- finding 2: a query time budget; bounds on what one value may hold ------------------------


def test_a_costly_filter_is_cancelled_past_the_budget_and_hurts_no_one(budgeted):
    with budgeted.client("a") as client:
        client.timeout = 120
        for n in range(COSTLY_SESSIONS[budgeted.backend]):
            values = {"session_id": f"costly-{n}", "metadata": {"a": list(range(LIMITS.max_array_length))}}
            assert client.post("/session/start", json={"session": values}).status_code == 200
        # A first read of new data in chDB takes seconds outside any query's budget; take it first.
        cheap = client.get("/api/v1/sessions", params={"filter": 'metadata.a contains "1"', "limit": 1})
        assert cheap.status_code == 200
        costly = " or ".join(f'metadata.a contains "{n}"' for n in range(141))
        assert len(costly) < 4096
        began = time.monotonic()
        response = client.get("/api/v1/sessions", params={"filter": costly})
        took = time.monotonic() - began
        assert response.status_code == 503, response.text[:200]
        assert f"time limit of {QUERY_SECONDS:g} s" in response.json()["detail"]
        if budgeted.backend == "duckdb":  # DuckDB is interrupted at once
            assert took < QUERY_SECONDS * 4
        cheap = client.get("/api/v1/sessions", params={"filter": 'session_id = "costly-0"', "limit": 1})
        assert cheap.status_code == 200 and cheap.json()["sessions"][0]["session_id"] == "costly-0"
    budgeted.second_tenant_writes()


def test_a_list_longer_than_the_limit_is_400_naming_it(tenants):
    too_long = list(range(LIMITS.max_array_length + 1))
    body = protobuf_request([{"trace_id": new_trace_id(), "span_id": new_span_id(), "attributes": {"a": too_long}}])
    with tenants.client("a") as client:
        otlp = client.post("/v1/traces", content=body, headers=PROTOBUF)
        started = client.post("/session/start", json={"session": {"metadata": {"b": {"c": too_long}}}})
    assert otlp.status_code == 400 and "metadata.a" in otlp.json()["detail"]
    assert started.status_code == 400 and "metadata.b.c" in started.json()["detail"]
    tenants.second_tenant_writes()


def test_a_namespace_larger_than_the_limit_is_400_naming_it(tenants):
    text = "x" * (LIMITS.max_value_length - 100)
    metadata = {f"k{n}": text for n in range(LIMITS.max_namespace_bytes // len(text) + 1)}
    with tenants.client("a") as client:
        response = client.post("/session/start", json={"session": {"metadata": metadata}})
    assert response.status_code == 400 and response.json()["detail"].startswith("metadata: ")
    tenants.second_tenant_writes()


# --- finding 5: bad input is a 400 naming the field, and the connection stays open ----------


def cursor_of(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def export(filters=None, **body) -> tuple[str, str, bytes]:
    return "POST", "/v1/events/export", orjson.dumps({"filters": filters or [], **body})


RAW_400_DIGITS = b'{"filters": [{"field": "metrics.x", "operator": "is", "type": "number", "value": %s}]}' % (
    b"9" * 400
)
BAD_INPUT = {
    "bucket": (("GET", "/api/v1/timeseries?bucket=9300000000000", b""), "bucket"),
    "cursor-number": (("GET", f"/api/v1/sessions?cursor={cursor_of([1, 'x'])}", b""), "cursor"),
    "cursor-list": (("GET", f"/api/v1/sessions?cursor={cursor_of([[], 'x'])}", b""), "cursor"),
    "cursor-bool": (("GET", f"/api/v1/sessions?cursor={cursor_of([True, 'x'])}", b""), "cursor"),
    "cursor-object": (("GET", f"/api/v1/sessions?cursor={cursor_of({'a': 1, 'b': 2})}", b""), "cursor"),
    "export-400-digits": (
        export([{"field": "metrics.x", "operator": "is", "value": "9" * 400, "type": "number"}]),
        "filters[0].value",
    ),
    "export-400-digit-number": (("POST", "/v1/events/export", RAW_400_DIGITS), "filters[0].value"),
    "export-nan-number": (
        export([{"field": "start_time", "operator": "is", "value": "nan", "type": "number"}]),
        "filters[0].value",
    ),
    "export-nan-string": (export([{"field": "start_time", "operator": "is", "value": "nan"}]), "'nan'"),
    "export-date-range-nan": (("POST", "/v1/events/export", b'{"dateRange": {"$gte": NaN}}'), "dateRange.$gte"),
    "export-date-range-infinity": (
        ("POST", "/v1/events/export", b'{"dateRange": {"$lte": 1e400}}'),
        "dateRange.$lte",
    ),
}


def test_bad_query_input_is_400_naming_the_field_on_one_kept_connection(tenants):
    """Every case on one connection: a 500 would also have closed it (uvicorn drops the
    connection after an unhandled error)."""
    address = urlsplit(tenants.server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    headers = {"Authorization": f"Bearer {tenants.keys['a']}", "Content-Type": "application/json"}
    try:
        connection.request("GET", "/api/v1/health")
        connection.getresponse().read()
        opened = connection.sock
        for case, ((method, path, body), named) in BAD_INPUT.items():
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            detail = json.loads(response.read())["detail"]
            assert response.status == 400 and named in detail, (case, response.status, detail)
            assert connection.sock is opened, f"{case}: the connection was closed"
    finally:
        connection.close()
    tenants.second_tenant_writes()


def test_an_export_filter_on_an_odd_key_is_a_filter_not_an_error(tenants):
    """'²' is a digit to Python's str.isdigit but no list index: it is a key like any other."""
    with tenants.client("a") as client:
        body = protobuf_request([{"trace_id": new_trace_id(), "span_id": new_span_id(), "attributes": {"²": "sq"}}])
        assert client.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200
        found = client.post("/v1/events/export", json={"filters": [{"field": "metadata.²", "operator": "exists"}]})
    assert found.status_code == 200 and [e["metadata"] for e in found.json()["events"]] == [{"²": "sq"}]


# --- finding 3: the login form is read bounded ------------------------------------------------


def post_login_slowly(url: str, headers: list[str], chunks: list[bytes]) -> bytes:
    """Send the headers and some of a large body, then wait for the answer without sending more."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as raw:
        head = ["POST /login HTTP/1.1", f"Host: {address.netloc}", "Content-Type: application/x-www-form-urlencoded"]
        raw.sendall(("\r\n".join(head + headers) + "\r\n\r\n").encode())
        for chunk in chunks:
            raw.sendall(chunk)
        try:
            return raw.recv(4096)
        except TimeoutError:
            return b"no answer while the body was still coming"


def test_a_large_login_form_is_refused_before_it_is_read(server):
    """No store is involved: the shared server shows it."""
    declared = post_login_slowly(server.url, ["Content-Length: 300000000"], [b"key=" + b"x" * 65536])
    assert declared.startswith(b"HTTP/1.1 413"), declared[:100]
    chunk = b"key=" + b"x" * 4092
    chunked = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 4
    streamed = post_login_slowly(server.url, ["Transfer-Encoding: chunked"], chunked)
    assert streamed.startswith(b"HTTP/1.1 413"), streamed[:100]


def test_an_unexpected_error_is_a_500_that_keeps_the_connection():
    """Defence in depth for errors no test foresaw: the server's middleware answers them 500 and
    the client's keep-alive connection carries on (Starlette's handler alone lets uvicorn drop it)."""
    import threading

    import uvicorn
    from fastapi import FastAPI
    from tests.conftest import free_port

    from tracehive.server.errors import KeepConnectionOnError

    app = FastAPI()

    @app.get("/fails")
    def fails() -> dict:
        raise RuntimeError("a bug")

    @app.get("/works")
    def works() -> dict:
        return {"ok": True}

    app.add_middleware(KeepConnectionOnError)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/works")
        assert connection.getresponse().read() == b'{"ok":true}'
        opened = connection.sock
        connection.request("GET", "/fails")
        failed = connection.getresponse()
        assert failed.status == 500 and b"internal error" in failed.read()
        connection.request("GET", "/works")
        assert connection.getresponse().status == 200 and connection.sock is opened
        connection.close()
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_memory_bound_cancels_a_read_and_a_write_past_it_stores_nothing(tmp_path, chdb_dsn):
    """``--query-memory-mb``: ClickHouse cancels a read past it (a 503 to the client); on DuckDB it
    bounds the database, writes included: a write past it is refused whole (a 503 to retry)."""
    import clickhouse_connect

    from tracehive.model import Batch, SessionUpdate
    from tracehive.store.base import QueryBudget, QueryTooCostly, SessionQuery, StoreOutOfMemory
    from tracehive.store.clickhouse import ClickHouseStore
    from tracehive.store.columns import Rows
    from tracehive.store.duckdb import DuckDBStore

    big = Rows.of(Batch(sessions=[SessionUpdate("a", f"big-{n}", start_ns=10**18 + n,
                                                namespaces={"metadata": {"u": ["y" * 60_000] * 8}})
                                  for n in range(60)]))  # fmt: skip
    small = Rows.of(Batch(sessions=[SessionUpdate("b", "small", start_ns=10**18)]))
    clickhouse = ClickHouseStore(clickhouse_connect.get_client(dsn=chdb_dsn), "memory", QueryBudget(30, 16))
    try:
        clickhouse.write(big)
        with pytest.raises(QueryTooCostly, match="memory limit"):
            clickhouse.list_sessions(SessionQuery(("a",), limit=1000))
    finally:
        clickhouse.close()
    unbounded = ClickHouseStore(clickhouse_connect.get_client(dsn=chdb_dsn), "memory")
    try:  # the read was cancelled, the data is there
        assert unbounded.get_session("big-59", ("a",))["metadata"]["u"][7] == "y" * 60_000
    finally:
        unbounded.close()
    duck = DuckDBStore(tmp_path / "memory.duckdb", QueryBudget(30, 32))
    try:
        with pytest.raises(StoreOutOfMemory):
            duck.write(big)
        duck.write(small)
        assert duck.get_session("small", ("b",)) is not None and duck.get_session("big-0", ("a",)) is None
    finally:
        duck.close()
