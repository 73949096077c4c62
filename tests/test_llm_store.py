"""What LLM calls need of both stores: sessions across requests (a span that names no session joins
the session its trace names, whichever span names it and in whichever request or order the spans
arrive), project prices and the models seen without one."""

from __future__ import annotations

import itertools

import clickhouse_connect
import pytest

from tracehive.server.mapping import spans_to_batch
from tracehive.server.otlp import Span
from tracehive.server.prices import ModelPrice, Prices
from tracehive.store.base import SessionQuery
from tracehive.store.clickhouse import ClickHouseStore
from tracehive.store.columns import Rows
from tracehive.store.duckdb import DuckDBStore

T0 = 1_767_225_600_000_000_000  # 2026-01-01


def trace_spans(n: int) -> tuple[str, str, list[Span]]:
    """A root naming session ``s-<n>`` (gen_ai keys only), a model call under it and a tool under that."""
    trace, session = f"{n:032x}", f"s-{n}"
    root = Span(trace, f"{n:08x}00000001", None, "agent", T0, T0 + 9000, {"session.id": session, "user.id": "u1"}, {})
    model = Span(trace, f"{n:08x}00000002", root.span_id, "chat", T0 + 1000, T0 + 5000,
                 {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                  "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 2}, {})  # fmt: skip
    tool = Span(trace, f"{n:08x}00000003", model.span_id, "lookup", T0 + 2000, T0 + 3000, {"user.id": "u1"}, {})
    return trace, session, [root, model, tool]


@pytest.fixture(params=["duckdb", "clickhouse"])
def store(request, tmp_path, chdb_dsn):
    if request.param == "duckdb":
        opened = DuckDBStore(tmp_path / "t.duckdb")
    else:
        opened = ClickHouseStore(clickhouse_connect.get_client(dsn=chdb_dsn), database=f"traces_{tmp_path.name[-12:]}")
    yield opened
    opened.close()


def test_every_order_of_three_requests_gives_one_session(store):
    cases = []
    for n, order in enumerate(itertools.permutations(range(3)), start=1):
        trace, session, spans = trace_spans(n)
        for index in order:  # each span in a request of its own, as SimpleSpanProcessor sends them
            store.write(Rows.of(spans_to_batch([spans[index]], "p")))
        cases.append((trace, session, order))
    # The last two in one write (two requests the writer merged), the first before.
    trace, session, spans = trace_spans(99)
    store.write(Rows.of(spans_to_batch([spans[2]], "p")))
    store.write(Rows.concat([Rows.of(spans_to_batch([s], "p")) for s in spans[:2]]))
    cases.append((trace, session, "merged"))
    for trace, session, order in cases:
        found = store.get_session(session, ("p",))
        assert found is not None, order
        assert found["event_count"] == 3, order
        assert sorted(e["event_name"] for e in found["events"]) == ["agent", "chat", "lookup"], order
        assert found["user_id"] == "u1"
        assert (found["model_calls"], found["total_tokens"]) == (1, 12), order  # the roll-ups moved too
        assert store.get_session(trace, ("p",)) is None, f"stray session left for {order}"
    listed = store.list_sessions(SessionQuery(projects=("p",), limit=50))
    assert sorted(s["session_id"] for s in listed) == sorted(session for _, session, _ in cases)


def test_a_trace_that_never_names_a_session_is_its_own(store):
    trace, _, spans = trace_spans(7)
    del spans[0].attributes["session.id"]
    for span in spans:
        store.write(Rows.of(spans_to_batch([span], "p")))
    assert store.get_session(trace, ("p",))["event_count"] == 3


def test_prices_are_kept_per_project_and_unpriced_models_listed(store):
    _, _, spans = trace_spans(41)
    spans[1].attributes["gen_ai.request.model"] = "acme-7b"
    for span in spans:
        store.write(Rows.of(spans_to_batch([span], "p", Prices())))
    store.write(Rows.of(spans_to_batch(trace_spans(42)[2], "q", Prices())))  # gpt-4o-mini: priced
    (row,) = store.unpriced_models(("p", "q"))
    assert (row["project"], row["model"], row["calls"]) == ("p", "acme-7b", 1)
    assert store.unpriced_models(("q",)) == []
    price = ModelPrice(input_mtok=1.0, output_mtok=2.0).to_json()
    store.set_price("p", "acme-7b", price)
    store.set_price("p", "other", price)
    store.set_price("p", "other", None)
    store.set_price("q", "acme-7b", {**price, "input_mtok": 3.0})
    assert store.get_prices() == {"p": {"acme-7b": price}, "q": {"acme-7b": {**price, "input_mtok": 3.0}}}
