"""Per-project keys: a key for project A can neither read nor write project B, through any route."""

from __future__ import annotations

import base64
import subprocess
import sys

import httpx
import pytest
from tests.conftest import ADMIN_KEY, start_server
from tests.otlp_payloads import new_span_id, new_trace_id, protobuf_request

PROTOBUF = {"Content-Type": "application/x-protobuf"}
# The Basic credentials of a Langfuse key pair for "alpha", made with the module's server.
LANGFUSE_ALPHA: dict[str, str] = {}


def create_key(data_dir, project: str | None, name: str) -> str:
    args = ["keys", "create", "--name", name, "--data-dir", str(data_dir)]
    if project:
        args += ["--project", project]
    done = subprocess.run([sys.executable, "-m", "tracehive", *args], capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def two_projects(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("isolation")
    server = start_server(data_dir)
    keys = {p: create_key(data_dir, p, f"key-{p}") for p in ("alpha", "beta")}
    pair = subprocess.run([sys.executable, "-m", "tracehive", "keys", "create", "--project", "alpha", "--langfuse",
                           "--name", "langfuse-alpha", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, check=True).stdout.splitlines()  # fmt: skip
    public, secret = (line.split("=", 1)[1] for line in pair)
    LANGFUSE_ALPHA["Authorization"] = "Basic " + base64.b64encode(f"{public}:{secret}".encode()).decode()
    data = {}
    for project, key in keys.items():
        trace_id, span_id = new_trace_id(), new_span_id()
        body = protobuf_request([{"trace_id": trace_id, "span_id": span_id,
                                  "attributes": {"user.id": f"user-of-{project}"}}])  # fmt: skip
        response = httpx.post(f"{server.url}/v1/traces", content=body, timeout=30,  # a busy machine is slow
                              headers={**PROTOBUF, "Authorization": f"Bearer {key}"})  # fmt: skip
        assert response.status_code == 200, response.text
        data[project] = {"session_id": trace_id, "event_id": span_id}
    yield server, keys, data
    server.stop()


def as_alpha(server, keys):
    return server.client(keys["alpha"])


# Each route of the OpenAPI spec, with what a key for "alpha" must see when it reaches for "beta".
def check_sessions(client, beta):
    assert client.get("/api/v1/sessions", params={"project": "beta"}).status_code == 403
    listed = client.get("/api/v1/sessions").json()["sessions"]
    assert listed and {s["project"] for s in listed} == {"alpha"}


def check_session(client, beta):
    assert client.get(f"/api/v1/sessions/{beta['session_id']}").status_code == 404
    assert client.get(f"/api/v1/sessions/{beta['session_id']}", params={"project": "beta"}).status_code == 403


def check_event(client, beta):
    assert client.get(f"/api/v1/events/{beta['event_id']}").status_code == 404
    assert client.get(f"/api/v1/events/{beta['event_id']}", params={"project": "beta"}).status_code == 403


def check_users(client, beta):
    assert client.get("/api/v1/users", params={"project": "beta"}).status_code == 403
    users = client.get("/api/v1/users").json()["users"]
    assert [u["user_id"] for u in users] == ["user-of-alpha"]


def refused_ingest(client, path: str, project_attribute: str) -> None:
    body = protobuf_request([{"trace_id": new_trace_id(), "span_id": new_span_id(),
                              "attributes": {project_attribute: "beta"}}])  # fmt: skip
    response = client.post(path, content=body, headers=PROTOBUF)
    assert response.status_code == 403 and "beta" in response.json()["detail"]


def check_ingest(client, beta):
    refused_ingest(client, "/v1/traces", "tracehive.project")


def check_health(client, beta):
    assert set(client.get("/api/v1/health").json()) == {"status", "version", "store"}


def check_groups(client, beta):
    assert client.get("/api/v1/groups", params={"project": "beta", "by": "user_id"}).status_code == 403
    groups = client.get("/api/v1/groups", params={"by": "user_id"}).json()["groups"]
    assert [g["value"] for g in groups] == ["user-of-alpha"]


def check_timeseries(client, beta):
    assert client.get("/api/v1/timeseries", params={"project": "beta"}).status_code == 403
    points = client.get("/api/v1/timeseries", params={"split_by": "user_id"}).json()["points"]
    assert {p["value"] for p in points} == {"user-of-alpha"}


def check_fields(client, beta):
    assert client.get("/api/v1/fields", params={"project": "beta"}).status_code == 403
    assert client.get("/api/v1/fields").json()["sample_size"] == 1


def check_values(client, beta):
    params = {"field": "user_properties.user_id"}
    assert client.get("/api/v1/fields/values", params={**params, "project": "beta"}).status_code == 403
    values = client.get("/api/v1/fields/values", params=params).json()["values"]
    assert [v["value"] for v in values] == ['"user-of-alpha"']


def check_hh_event(client, beta):
    for found_by_id in (beta["event_id"], beta["session_id"]):
        assert client.get(f"/v1/events/{found_by_id}").status_code == 404


def check_hh_export(client, beta):
    assert client.post("/v1/events/export", json={"project": "beta"}).status_code == 403
    session = {"field": "session_id", "operator": "is", "value": beta["session_id"]}
    assert client.post("/v1/events/export", json={"filters": [session]}).json()["events"] == []


def check_hh_session_start(client, beta):
    response = client.post("/session/start", json={"session": {"project": "beta"}})
    assert response.status_code == 403 and "beta" in response.json()["detail"]


def check_hh_ingest(client, beta):
    refused_ingest(client, "/opentelemetry/v1/traces", "honeyhive.project")


def check_hh_enrich(client, beta):
    """Enriching beta's session id with alpha's key makes a session of alpha's; beta's is untouched."""
    enrich = {"event_id": beta["session_id"], "metadata": {"from": "alpha"}}
    assert client.put("/events", json=enrich).status_code == 200
    assert beta_session(client, beta)["metadata"] == {}


def check_hh_create_event(client, beta):
    """An event naming beta is refused; one naming beta's session id makes a session of alpha's."""
    response = client.post("/events", json={"event": {"event_name": "x", "project": "beta"}})
    assert response.status_code == 403 and "beta" in response.json()["detail"]
    event = {"event": {"event_name": "x", "session_id": beta["session_id"]}}
    assert client.post("/events", json=event).status_code == 200
    assert beta_session(client, beta)["event_count"] == 1


def as_alpha_langfuse(client):
    return httpx.Client(base_url=client.base_url, headers=LANGFUSE_ALPHA)


def beta_session(client, beta) -> dict:
    with httpx.Client(base_url=client.base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
        return admin.get(f"/api/v1/sessions/{beta['session_id']}", params={"project": "beta"}).json()


def check_langfuse_ingest(client, beta):
    with as_alpha_langfuse(client) as langfuse:
        refused_ingest(langfuse, "/api/public/otel/v1/traces", "tracehive.project")


def check_langfuse_scores(client, beta):
    """Scores naming beta's trace, session or event stay in alpha: beta's session and event get no feedback."""
    trace, event = beta["session_id"], beta["event_id"]
    scores = [{"traceId": trace, "name": "stolen", "value": 1},
              {"sessionId": trace, "name": "stolen", "value": 1},
              {"traceId": trace, "observationId": event, "name": "stolen", "value": 1}]  # fmt: skip
    with as_alpha_langfuse(client) as langfuse:
        assert langfuse.post("/api/public/scores", json=scores).status_code == 202
    session = beta_session(client, beta)
    assert session["feedback"] == {}
    assert [event["feedback"] for event in session["events"]] == [{}]


def check_langfuse_projects(client, beta):
    with as_alpha_langfuse(client) as langfuse:
        assert [p["id"] for p in langfuse.get("/api/public/projects").json()["data"]] == ["alpha"]


def _as_admin(client) -> httpx.Client:
    return httpx.Client(base_url=client.base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})


def check_prices(client, beta):
    with _as_admin(client) as admin:
        assert admin.put("/api/v1/prices/beta/beta-model", json={"input_mtok": 1, "output_mtok": 2}).status_code == 200
    assert client.get("/api/v1/prices", params={"project": "beta"}).status_code == 403
    assert all(p["project"] == "alpha" for p in client.get("/api/v1/prices").json()["prices"])


def check_set_price(client, beta):
    assert client.put("/api/v1/prices/beta/gpt-4o", json={"input_mtok": 0, "output_mtok": 0}).status_code == 403


def check_delete_price(client, beta):
    with _as_admin(client) as admin:
        assert admin.put("/api/v1/prices/beta/kept", json={"input_mtok": 1, "output_mtok": 2}).status_code == 200
        assert client.delete("/api/v1/prices/beta/kept").status_code == 403
        kept = admin.get("/api/v1/prices", params={"project": "beta"}).json()["prices"]
    assert "kept" in [p["model"] for p in kept]


def check_unpriced(client, beta):
    assert client.get("/api/v1/models/unpriced", params={"project": "beta"}).status_code == 403
    assert all(m["project"] == "alpha" for m in client.get("/api/v1/models/unpriced").json()["models"])


def check_privacy_get(client, beta):
    assert client.get("/api/v1/projects/beta/privacy").status_code == 403
    assert client.get("/api/v1/projects/alpha/privacy").status_code == 200


def check_privacy_put(client, beta):
    assert client.put("/api/v1/projects/beta/privacy", json={"retention_days": 1}).status_code == 403
    with httpx.Client(base_url=client.base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
        assert admin.get("/api/v1/projects/beta/privacy").json()["version"] == 0


def check_privacy_history(client, beta):
    assert client.get("/api/v1/projects/beta/privacy/history").status_code == 403


def check_privacy_secret(client, beta):
    assert client.get("/api/v1/projects/beta/privacy/secret").status_code == 403


def check_erase(client, beta):
    assert client.post("/api/v1/projects/beta/erase", json={"user_id": "user-of-beta"}).status_code == 403
    with httpx.Client(base_url=client.base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
        assert admin.get(f"/api/v1/sessions/{beta['session_id']}", params={"project": "beta"}).status_code == 200


def check_audit(client, beta):
    assert client.get("/api/v1/audit", params={"project": "beta"}).status_code == 403
    assert all(e["project"] == "alpha" for e in client.get("/api/v1/audit").json()["entries"])


def check_export(client, beta):
    assert client.get("/api/v1/export", params={"project": "beta"}).status_code == 403
    rows = [line for line in client.get("/api/v1/export").text.splitlines() if line]
    assert rows and all('"project":"alpha"' in line for line in rows)


ROUTES = {
    ("GET", "/api/v1/sessions"): check_sessions,
    ("GET", "/api/v1/sessions/{session_id}"): check_session,
    ("GET", "/api/v1/events/{event_id}"): check_event,
    ("GET", "/api/v1/users"): check_users,
    ("POST", "/v1/traces"): check_ingest,
    ("GET", "/api/v1/health"): check_health,
    ("GET", "/api/v1/groups"): check_groups,
    ("GET", "/api/v1/timeseries"): check_timeseries,
    ("GET", "/api/v1/fields"): check_fields,
    ("GET", "/api/v1/fields/values"): check_values,
    ("GET", "/v1/events/{event_id}"): check_hh_event,
    ("POST", "/v1/events/export"): check_hh_export,
    ("POST", "/session/start"): check_hh_session_start,
    ("POST", "/opentelemetry/v1/traces"): check_hh_ingest,
    ("PUT", "/events"): check_hh_enrich,
    ("GET", "/api/v1/prices"): check_prices,
    ("PUT", "/api/v1/prices/{project}/{model}"): check_set_price,
    ("DELETE", "/api/v1/prices/{project}/{model}"): check_delete_price,
    ("GET", "/api/v1/models/unpriced"): check_unpriced,
    ("POST", "/events"): check_hh_create_event,
    ("POST", "/api/public/otel/v1/traces"): check_langfuse_ingest,
    ("POST", "/api/public/scores"): check_langfuse_scores,
    ("GET", "/api/public/projects"): check_langfuse_projects,
    ("GET", "/api/v1/projects/{project}/privacy"): check_privacy_get,
    ("PUT", "/api/v1/projects/{project}/privacy"): check_privacy_put,
    ("GET", "/api/v1/projects/{project}/privacy/history"): check_privacy_history,
    ("GET", "/api/v1/projects/{project}/privacy/secret"): check_privacy_secret,
    ("POST", "/api/v1/projects/{project}/erase"): check_erase,
    ("GET", "/api/v1/audit"): check_audit,
    ("GET", "/api/v1/export"): check_export,
}


def test_every_route_is_covered_by_an_isolation_check(two_projects):
    server, _, _ = two_projects
    spec = httpx.get(f"{server.url}/openapi.json").json()
    routes = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    assert routes <= set(ROUTES), f"routes without an isolation check: {sorted(routes - set(ROUTES))}"


@pytest.mark.parametrize("route", list(ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_project_key_cannot_reach_another_project(two_projects, route):
    server, keys, data = two_projects
    with as_alpha(server, keys) as client:
        ROUTES[route](client, data["beta"])


def test_project_key_writes_its_own_project_when_spans_name_none(two_projects):
    server, keys, data = two_projects
    with server.client(keys["beta"]) as client:
        session = client.get(f"/api/v1/sessions/{data['beta']['session_id']}").json()
    assert session["project"] == "beta"


def test_revoked_key_is_refused_by_the_running_server(two_projects):
    server, _, _ = two_projects
    key = create_key(server.data_dir, "alpha", "short-lived")
    with server.client(key) as client:
        assert client.get("/api/v1/sessions").status_code == 200
        subprocess.run([sys.executable, "-m", "tracehive", "keys", "revoke", "short-lived", "--data-dir",
                        str(server.data_dir)], check=True, capture_output=True)  # fmt: skip
        assert client.get("/api/v1/sessions").status_code == 401


def test_keys_are_kept_only_as_hashes(two_projects):
    server, keys, _ = two_projects
    stored = (server.data_dir / "keys.json").read_text()
    assert all(key not in stored for key in keys.values())
    assert (server.data_dir / "keys.json").stat().st_mode & 0o077 == 0
