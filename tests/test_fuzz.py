"""Fuzzing: the OTLP decoders and the filter language never fail with anything but their own clear
errors, and the HTTP API, driven from its own OpenAPI spec, never answers 5xx."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import ADMIN_KEY, start_server
from tests.otlp_payloads import json_request, new_span_id, new_trace_id, protobuf_request

from tracehive.filters import SESSION_FIELDS, FilterError, parse
from tracehive.server.limits import Limits
from tracehive.server.otlp import OtlpError
from tracehive.server.workers import JSON, PROTOBUF, prepare
from tracehive.store.duckdb_filter import to_duckdb_sql
from tracehive.store.duckdb_schema import SCHEMA

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=25,
)


def ingest(content_type: str, body: bytes) -> None:
    """The whole ingest path short of the store (what a worker process runs); only OtlpError may escape."""
    with contextlib.suppress(OtlpError):
        prepare(content_type, body, "fuzz", Limits())


@FUZZ
@given(st.binary(max_size=512))
def test_protobuf_decoder_takes_any_bytes(body):
    ingest(PROTOBUF, body)


@FUZZ
@given(st.integers(0, 200), st.binary(min_size=1, max_size=8))
def test_protobuf_decoder_takes_a_valid_request_with_damage(position, junk):
    body = protobuf_request([{"trace_id": new_trace_id(), "span_id": new_span_id(), "attributes": {"a": 1, "b": "x"}}])
    ingest(PROTOBUF, body[:position] + junk + body[position + len(junk) :])


@FUZZ
@given(json_values)
def test_json_decoder_takes_any_json(document):
    ingest(JSON, json.dumps(document).encode())


ANY_VALUE_FIELDS = ["stringValue", "intValue", "doubleValue", "boolValue", "arrayValue", "kvlistValue"]
attribute_values = st.one_of(json_values, *(st.fixed_dictionaries({field: json_values}) for field in ANY_VALUE_FIELDS))


@FUZZ
@given(
    st.dictionaries(st.text(max_size=30), attribute_values, max_size=6),
    st.sampled_from(["traceId", "spanId", "startTimeUnixNano", None]),
    json_values,
)
def test_json_decoder_takes_well_shaped_requests_with_wrong_values(attributes, broken_field, junk):
    document = json_request([{"trace_id": new_trace_id(), "span_id": new_span_id()}])
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["attributes"] = [{"key": k, "value": v} for k, v in attributes.items()]
    if broken_field:
        span[broken_field] = junk
    ingest(JSON, json.dumps(document).encode())


@pytest.fixture(scope="module")
def sessions_table(tmp_path_factory):
    connection = duckdb.connect(str(tmp_path_factory.mktemp("fuzz") / "f.duckdb"))
    connection.execute(SCHEMA)
    yield connection
    connection.close()


filter_words = st.sampled_from(
    ["user_properties", "metadata", ".", "a", '"b"', "0", "=", "!=", ">", "<=", "contains", "exists", "and", "or",
     "not", "(", ")", "true", "null", "1.5", "-3", '"x"', "'y'", "duration_ms", "start_time", '"2026-01-01"', " "]
)  # fmt: skip


@FUZZ
@given(st.one_of(st.text(max_size=60), st.lists(filter_words, max_size=20).map(" ".join)))
def test_filter_language_takes_any_text(sessions_table, text):
    try:
        expr = parse(text)
        sql, params = to_duckdb_sql(expr, SESSION_FIELDS)
    except FilterError:
        return
    sessions_table.execute(f"SELECT count(*) FROM sessions WHERE {sql}", params).fetchall()


def test_api_never_answers_5xx(tmp_path):
    """Schemathesis generates requests for every operation of our OpenAPI spec, valid and not."""
    server = start_server(tmp_path / "data")
    try:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "schemathesis"), "run", f"{server.url}/openapi.json",
             "--checks", "not_a_server_error", "--header", f"Authorization: Bearer {ADMIN_KEY}",
             "--max-examples", "60", "--seed", "1", "--phases", "examples,coverage,fuzzing",
             "--report", "ndjson", "--report-dir", str(tmp_path / "report")],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        server.stop()
    assert done.returncode == 0, done.stdout[-4000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert counts and int(counts[1]) == int(counts[2]) > 100, done.stdout[-2000:]
