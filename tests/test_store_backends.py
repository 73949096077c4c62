"""One store test suite, run on both backends: DuckDB (a real file) and ClickHouse (the same
ClickHouse SQL, run by chDB in this process through clickhouse-connect). Each question is asked of
both after the same writes, and the answers must be identical, as well as right."""

from __future__ import annotations

import clickhouse_connect
import pytest
from tests.store_scenario import ALL, BATCHES, LLM, QUESTIONS, T0, WEB, event, update

from tracehive.filters import Field, parse
from tracehive.model import USAGE_FIELDS, Batch
from tracehive.store import clickhouse_schema, duckdb_schema
from tracehive.store.base import SessionQuery
from tracehive.store.clickhouse import ClickHouseStore
from tracehive.store.columns import Rows
from tracehive.store.duckdb import DuckDBStore
from tracehive.store.migrations import SchemaTooNewError

BACKENDS = ("duckdb", "clickhouse")
MIGRATIONS = {"duckdb": duckdb_schema.MIGRATIONS, "clickhouse": clickhouse_schema.MIGRATIONS}


def open_backend(backend: str, tmp_path, chdb_dsn: str, name: str):
    if backend == "duckdb":
        return DuckDBStore(tmp_path / f"{name}.duckdb")
    return ClickHouseStore(clickhouse_connect.get_client(dsn=chdb_dsn), database=name)


@pytest.fixture(scope="module")
def stores(tmp_path_factory, chdb_dsn):
    folder = tmp_path_factory.mktemp("stores")
    opened = {backend: open_backend(backend, folder, chdb_dsn, "suite") for backend in BACKENDS}
    for store in opened.values():
        for batch in BATCHES:
            store.write(Rows.of(batch))
    yield opened
    for store in opened.values():
        store.close()


@pytest.fixture(params=BACKENDS)
def store(request, stores):
    return stores[request.param]


@pytest.mark.parametrize("question", QUESTIONS)
def test_both_backends_answer_alike(stores, question):
    answers = {backend: QUESTIONS[question](store) for backend, store in stores.items()}
    assert answers["duckdb"], f"{question}: an empty answer proves nothing"
    assert answers["clickhouse"] == answers["duckdb"]


def test_enrichment_merges_deeply_in_write_order(store):
    session = store.get_session("s1", WEB)
    assert session["user_properties"] == {
        "user_id": "u1",
        "plan": "enterprise",
        "prefs": {"theme": "light", "langs": ["fr", "de"], "font": None},
        "email": "a@example.com",
    }
    assert session["metadata"] == {"flags": {"new_ui": True}}
    assert (session["session_name"], session["source"], session["user_id"]) == ("chat", "batch-job", "u1")


def test_a_retried_event_counts_once(store):
    session = store.get_session("s1", WEB)
    assert (session["event_count"], session["error_count"]) == (2, 1)
    assert [e["event_id"] for e in session["events"]] == ["e1", "e2"]
    assert session["start_time"] == "2026-01-01T00:00:00Z"
    assert session["end_time"] == "2026-01-01T00:00:03Z"
    assert session["duration_ms"] == 3000.0


def test_enrichment_before_the_events_and_enrichment_alone(store):
    late = store.get_session("s-late", ALL)
    assert late["event_count"] == 2 and late["user_properties"]["prefs"] == {"theme": "dark"}
    assert late["start_time"] == "2026-02-10T00:00:00Z"
    only = store.get_session("s-only", WEB)
    assert only["events"] == [] and only["event_count"] == 0 and only["start_time"] is None
    assert (only["session_name"], only["feedback"]) == ("enrich only", {"rating": 5})


def test_pages_walk_every_session_newest_first(store):
    walked = QUESTIONS["pages"](store)
    assert walked == ["s-late", "s3", "s2", "s1"]  # s-only has no start time: it sorts last, after any cursor


def test_projects_do_not_leak(store):
    assert store.get_session("o1", WEB) is None
    assert store.get_event("e7", WEB) is None
    assert store.get_event("e7", ("other",))["metadata"] == {"secret": True}
    assert {s["project"] for s in store.list_sessions(SessionQuery(projects=("nobody",)))} == set()
    assert store.get_session("nope", ALL) is None and store.get_event("nope", ALL) is None


def test_users(store):
    users = {u["user_id"]: u for u in store.list_users(SessionQuery(projects=ALL))}
    assert set(users) == {"u1", "42", "True", "u3"}
    assert (users["u1"]["session_count"], users["u1"]["event_count"], users["u1"]["error_count"]) == (3, 5, 1)
    assert users["u1"]["last_seen"] == "2026-02-10T00:00:03Z"


def _usage(row: dict) -> tuple:
    return tuple(row[name] for name in USAGE_FIELDS)


def test_model_calls_roll_up_into_their_session(store):
    """Counted: model events only, each once (m1 was sent twice), figures that are JSON numbers
    from 0 to 10**15 (12.7 rounds down; true, "5", -3 and 2**62 do not count); total is prompt +
    completion when absent; cost sums the known costs, and stays null when no call had one."""
    assert _usage(store.get_session("m-s", LLM)) == (3, 212, 50, 269, 0.0003)
    assert _usage(store.get_session("m-none", LLM)) == (1, 0, 0, 0, None)
    assert _usage(store.get_session("s1", WEB)) == (0, 0, 0, 0, None)
    premium = parse('total_tokens > 100 and user_properties.plan = "premium"')
    assert [s["session_id"] for s in store.list_sessions(SessionQuery(ALL, premium))] == ["m-s"]


def test_usage_per_group_and_per_user(store):
    groups = {g["value"]: g for g in store.group_sessions(SessionQuery(LLM), Field("user_properties", ("plan",)))}
    assert _usage(groups["premium"]) == (3, 212, 50, 269, 0.0003)
    assert (groups["premium"]["avg_total_tokens"], groups["premium"]["avg_cost"]) == (269.0, 0.0003)
    assert (groups["free"]["cost"], groups["free"]["avg_cost"], groups["free"]["model_calls"]) == (None, None, 1)
    (user,) = store.list_users(SessionQuery(LLM))
    assert (user["user_id"], user["total_tokens"], user["cost"], user["avg_total_tokens"]) == ("u3", 269, 0.0003, 134.5)
    series = store.session_timeseries(SessionQuery(LLM), bucket=60, split_by=Field("user_properties", ("plan",)))
    assert {p["value"]: p["cost"] for p in series["points"]} == {"premium": 0.0003, "free": None}


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_rolls_up_the_model_calls_stored_before(backend, tmp_path, chdb_dsn):
    """A store written before the roll-ups existed gets them from its stored events on opening."""
    name = f"usage_{backend}"
    store = open_backend(backend, tmp_path, chdb_dsn, name)
    for batch in BATCHES:
        store.write(Rows.of(batch))
    expected = [_usage(store.get_session(s, LLM)) for s in ("m-s", "m-none")]
    # The roll-ups' migration and those after it are applied again on opening.
    rollup = next(m.version for m in MIGRATIONS[backend] if "model calls" in m.description)
    if backend == "duckdb":  # back to the schema before the roll-ups
        for column in USAGE_FIELDS:
            store._db.execute(f"ALTER TABLE sessions DROP COLUMN {column}")
        store._db.execute("DELETE FROM schema_version WHERE version >= ?", [rollup])
    else:
        store._client.command(f"DROP VIEW {name}.model_usage_from_events")
        store._client.command(f"ALTER TABLE {name}.sessions DROP COLUMN model_usage")
        store._client.command(f"DELETE FROM {name}.schema_version WHERE version >= {rollup}")
    store.close()
    store = open_backend(backend, tmp_path, chdb_dsn, name)
    migrated = [_usage(store.get_session(s, LLM)) for s in ("m-s", "m-none")]
    assert migrated == expected == [(3, 212, 50, 269, 0.0003), (1, 0, 0, 0, None)]
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_newer_schema_is_refused(backend, tmp_path, chdb_dsn):
    name = f"newer_{backend}"
    store = open_backend(backend, tmp_path, chdb_dsn, name)
    if backend == "duckdb":
        store._db.execute("INSERT INTO schema_version VALUES (99, 'from the future')")
    else:
        store._client.command(f"INSERT INTO {name}.schema_version (version, description) VALUES (99, 'future')")
    store.close()
    with pytest.raises(SchemaTooNewError, match="schema version 99"):
        open_backend(backend, tmp_path, chdb_dsn, name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_reopening_applies_nothing_twice(backend, tmp_path, chdb_dsn):
    name = f"reopen_{backend}"
    open_backend(backend, tmp_path, chdb_dsn, name).close()
    store = open_backend(backend, tmp_path, chdb_dsn, name)
    if backend == "duckdb":
        versions = store._db.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    else:
        versions = store._client.query(f"SELECT version FROM {name}.schema_version ORDER BY version").result_rows
    assert versions == [(m.version,) for m in MIGRATIONS[backend]]
    store.close()


def test_two_store_instances_share_one_clickhouse(tmp_path, chdb_dsn):
    """Two servers' stores on one ClickHouse: half of a session through each reads back whole.

    chDB opens a data folder in one process only, so the two instances live in this process, each
    with its own client; nothing else is shared between them."""
    first, second = (ClickHouseStore(clickhouse_connect.get_client(dsn=chdb_dsn), "shared") for _ in range(2))
    reference = DuckDBStore(tmp_path / "reference.duckdb")
    halves = [
        Batch(events=[event("x", "x1", T0), event("x", "x2", T0 + 1, parent="x1")],
              sessions=[update("x", session_name="split", user_properties={"user_id": "u9", "prefs": {"a": 1}})]),
        Batch(events=[event("x", "x3", T0 + 2, parent="x1", error="boom"), event("x", "x1", T0)],
              sessions=[update("x", user_properties={"prefs": {"b": 2}}, metadata={"via": "second"})]),
    ]  # fmt: skip
    first.write(Rows.of(halves[0]))
    second.write(Rows.of(halves[1]))
    for batch in halves:
        reference.write(Rows.of(batch))
    for store in (first, second):
        whole = store.get_session("x", WEB)
        assert [e["event_id"] for e in whole["events"]] == ["x1", "x2", "x3"]
        assert whole["user_properties"] == {"user_id": "u9", "prefs": {"a": 1, "b": 2}}
        assert (whole["event_count"], whole["error_count"]) == (3, 1)
        assert whole == reference.get_session("x", WEB)
    for store in (first, second, reference):
        store.close()
