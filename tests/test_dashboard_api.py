"""The query API endpoints behind the dashboard: group-by, time series, field completion, and the
per-user figures, against a real server loaded by the SDK."""

from __future__ import annotations

import textwrap
import uuid
from datetime import datetime, timedelta

import pytest

from tracehive.store.base import MAX_BUCKETS, TooManyBuckets, bucket_seconds


@pytest.fixture(scope="module")
def project(server) -> str:
    name = f"stats-{uuid.uuid4().hex[:8]}"
    done = server.run_program(textwrap.dedent("""
        from tracehive import HoneyHiveTracer, trace

        @trace
        def work(fail):
            if fail:
                raise ValueError("no")

        for i in range(6):
            tracer = HoneyHiveTracer.init(session_name=f"s{i}")
            props = {"user_id": f"u{i % 2}", "plan": "pro" if i < 4 else "free", "odd key": i}
            if i == 5:
                del props["plan"]
            tracer.enrich_session(user_properties=props, metadata={"http.status": 200})
            try:
                work(i == 0)
            except ValueError:
                pass
        tracer.flush()
    """), project=name)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return name


def test_group_by_a_user_property(server, project):
    answer = server.get("/api/v1/groups", project=project, by="user_properties.plan")
    groups = {(g["value"], g["missing"]): g for g in answer["groups"]}
    assert set(groups) == {("pro", False), ("free", False), (None, True)}
    pro = groups[("pro", False)]
    assert (pro["sessions"], pro["users"], pro["error_rate"]) == (4, 2, 0.25)
    assert pro["p50_ms"] is not None and pro["p95_ms"] >= pro["p50_ms"]
    by_source = server.get("/api/v1/groups", project=project, by="source")["groups"]
    assert [g["sessions"] for g in by_source] == [6]


def test_timeseries_total_and_split(server, project):
    total = server.get("/api/v1/timeseries", project=project)
    assert sum(p["sessions"] for p in total["points"]) == 6
    assert total["bucket_seconds"] >= 1
    split = server.get("/api/v1/timeseries", project=project, split_by="user_properties.plan", groups=1)
    kept = sum(p["sessions"] for p in split["points"] if p["value"] == "pro")
    other = sum(p["sessions"] for p in split["points"] if p["other"])
    assert (kept, other) == (4, 2)


def test_users_carry_error_rate_and_durations(server, project):
    users = {u["user_id"]: u for u in server.get("/api/v1/users", project=project)["users"]}
    assert users["u0"]["error_rate"] == pytest.approx(1 / 3)
    assert users["u1"]["error_rate"] == 0.0
    assert users["u1"]["p95_ms"] >= users["u1"]["p50_ms"] > 0


def test_known_fields_and_values_for_completion(server, project):
    fields = [f["field"] for f in server.get("/api/v1/fields", project=project)["fields"]]
    assert {"user_properties.plan", 'user_properties."odd key"', 'metadata."http.status"', "duration_ms"} <= set(fields)
    values = server.get("/api/v1/fields/values", project=project, field="user_properties.plan")
    assert values["values"] == [{"value": '"pro"', "count": 4}, {"value": '"free"', "count": 1}]
    quoted = server.get("/api/v1/fields/values", project=project, field='metadata."http.status"')
    assert quoted["values"] == [{"value": "200", "count": 6}]


def test_bad_parameters_are_400_naming_them(server, project):
    with server.client() as client:
        cases = {
            "by": client.get("/api/v1/groups", params={"by": "start_time"}),
            "by ": client.get("/api/v1/groups", params={"by": "user_properties"}),
            "split_by": client.get("/api/v1/timeseries", params={"split_by": "nope.x"}),
            "bucket": client.get("/api/v1/timeseries", params={"bucket": 0}),
            "field": client.get("/api/v1/fields/values", params={"field": "user_properties."}),
        }  # fmt: skip
    for name, response in cases.items():
        assert response.status_code == 400, (name, response.text)
        assert response.json()["detail"].startswith(name.strip()), response.text


def test_openapi_documents_the_dashboard_queries(server):
    spec = server.get("/openapi.json")
    for path in ("/api/v1/groups", "/api/v1/timeseries", "/api/v1/fields", "/api/v1/fields/values"):
        assert path in spec["paths"], path
    assert not any(path in spec["paths"] for path in ("/", "/login", "/users"))


def test_bucket_width_is_round_and_bounded():
    start = datetime(2026, 1, 1)
    assert bucket_seconds(start, start + timedelta(hours=1), None) == 60
    assert bucket_seconds(start, start + timedelta(days=7), None) == 3 * 3600
    assert bucket_seconds(None, None, None) == 1
    assert bucket_seconds(start, start + timedelta(days=365 * 20), None) * MAX_BUCKETS >= 365 * 20 * 86400
    with pytest.raises(TooManyBuckets, match="bucket"):
        bucket_seconds(start, start + timedelta(days=1), 1)
