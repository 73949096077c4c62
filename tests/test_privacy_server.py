"""Redaction at ingest on a real server, on DuckDB and on ClickHouse (chDB): rules saved through
the API apply to every ingest path at once (our OTLP, HoneyHive's /session/start, PUT /events and
OTLP path, plain OpenTelemetry); no masked or hashed value is anywhere in the data folder; a hashed
value still filters and groups."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from tests.conftest import files_holding, start_server_on
from tests.otlp_payloads import json_request, new_span_id, new_trace_id

from tracehive.client import Client, ServerError
from tracehive.privacy import Redactor, parse_rules

RULES = [
    {"path": "user_properties.email", "action": "hash"},
    {"path": "metadata.*.ip", "action": "drop"},
    {"pattern": "email", "action": "mask"},
    {"pattern": "card", "action": "mask"},
    {"pattern": "phone", "action": "hash"},
]


@pytest.fixture(scope="module", params=["duckdb", "clickhouse"])
def served(request, tmp_path_factory):
    server = start_server_on(
        request.param, tmp_path_factory.mktemp(f"privacy-{request.param}"), "--ingest-workers", "1"
    )
    yield server
    server.stop()


def put_rules(server, project: str, rules: list) -> dict:
    with server.client() as client:
        response = client.put(f"/api/v1/projects/{project}/privacy", json={"redact": rules})
    assert response.status_code == 200, response.text
    return response.json()


def send_everywhere(server, project: str, email: str, card: str, phone: str, ip: str = "203.0.113.9") -> list[str]:
    """One session through each ingest path, all carrying personal data; returns the session ids."""
    ids = [new_trace_id() for _ in range(3)]
    record = {
        "tracehive.record": "session",
        "tracehive.session_id": ids[0],
        "tracehive.user_properties": f'{{"user_id": "u-{ids[0]}", "email": "{email}"}}',
    }
    ours = {
        "tracehive.session_id": ids[0],
        "tracehive.inputs": f'{{"q": "mail {email}, card {card}, call {phone}"}}',
        "tracehive.metadata": f'{{"client": {{"ip": "{ip}", "os": "linux"}}}}',
    }
    honeyhive = {
        "honeyhive.project": project,
        "honeyhive_user_properties.email": email,
        "honeyhive_user_properties.user_id": f"u-{ids[1]}",
        "honeyhive_inputs.q": f"from {email}",
    }
    plain = {"user.id": f"u-{ids[2]}", "input.value": f"my card is {card} and mail {email}"}
    with server.client() as client:
        for path, trace, attributes in (
            ("/v1/traces", ids[0], [record, ours]),
            ("/opentelemetry/v1/traces", ids[1], [honeyhive]),
            ("/v1/traces", ids[2], [plain]),
        ):
            spans = [{"trace_id": trace, "span_id": new_span_id(), "attributes": a} for a in attributes]
            resource = {} if path == "/opentelemetry/v1/traces" else {"tracehive.project": project}
            answer = client.post(path, json=json_request(spans, resource))
            assert answer.status_code == 200, answer.text
        rest_id = str(uuid.uuid4())
        session = {
            "project": project,
            "session_id": rest_id,
            "session_name": "rest",
            "user_properties": {"user_id": f"u-{rest_id}", "email": email},
        }
        assert client.post("/session/start", json={"session": session}).status_code == 200
        answer = client.put("/events", json={"event_id": rest_id, "metadata": {"note": f"reach {email}"}})
        assert answer.status_code == 200, answer.text
    return [*ids, rest_id]


def test_rules_apply_on_every_path_and_nothing_clear_reaches_disk(served):
    project = f"p-{uuid.uuid4().hex[:8]}"
    saved = put_rules(served, project, RULES)
    assert saved["version"] == 1 and saved["redact"] == RULES and "secret" not in saved
    email, card, phone = f"ann.{uuid.uuid4().hex[:10]}@example.com", "4111 1111 1111 1111", "+1 415-555-0132"
    # A project without rules keeps the clear value: the scan below can find what is there.
    control = f"clear.{uuid.uuid4().hex[:10]}@example.com"
    send_everywhere(served, f"{project}-open", control, "5500 0000 0000 0004", "+1 212-555-0199", "198.51.100.7")
    sessions = send_everywhere(served, project, email, card, phone)
    stored = served.get("/api/v1/sessions", project=project, limit=10)["sessions"]
    assert len(stored) == 4
    by_id = {s["session_id"]: s for s in stored}
    hashed = by_id[sessions[0]]["user_properties"]["email"]
    assert hashed.startswith("hmac:") and by_id[sessions[3]]["user_properties"]["email"] == hashed
    (honeyhive,) = served.get(f"/api/v1/sessions/{sessions[1]}")["events"]
    assert honeyhive["user_properties"]["email"] == hashed  # HoneyHive's flattened keys too
    first = served.get(f"/api/v1/sessions/{sessions[0]}")
    (event,) = first["events"]
    assert event["metadata"]["client"] == {"os": "linux"}  # the ip is dropped
    masked_email = email[0] + "***@example.com"
    assert event["inputs"]["q"].startswith(f"mail {masked_email}, card ****1111, call hmac:")
    plain = served.get(f"/api/v1/sessions/{sessions[2]}")["events"][0]
    assert plain["inputs"] == {"value": f"my card is ****1111 and mail {masked_email}"}
    assert by_id[sessions[3]]["metadata"] == {"note": f"reach {masked_email}"}
    # The server writes on; scan once the data is in the files.
    with served.client() as client:
        client.put(f"/api/v1/projects/{project}/privacy", json={"retention_days": 3650})  # a checkpointless write
    assert files_holding(served.data_dir, control.encode()), "the scan must see the clear value where no rule is"
    for secret in (email, "4111 1111 1111 1111", "415-555-0132", "203.0.113.9"):
        assert files_holding(served.data_dir, secret.encode()) == [], secret


def test_a_hashed_value_still_filters_and_groups(served):
    project = f"h-{uuid.uuid4().hex[:8]}"
    put_rules(served, project, RULES)
    email = f"bo.{uuid.uuid4().hex[:8]}@example.com"
    send_everywhere(served, project, email, "4111 1111 1111 1111", "+44 20 7946 0958")
    send_everywhere(served, project, f"other.{uuid.uuid4().hex[:8]}@example.com", "5500 0000 0000 0004", "n/a")
    found = served.get("/api/v1/sessions", project=project, filter=f'user_properties.email = "{email}"')
    assert len(found["sessions"]) == 2  # the OTLP session record and the REST session
    assert len({s["user_properties"]["email"] for s in found["sessions"]}) == 1
    others = served.get("/api/v1/sessions", project=project, filter=f'user_properties.email != "{email}"')
    assert len(others["sessions"]) == 6
    mentioned = served.get("/api/v1/sessions", project=project, filter='metadata.note contains "+44 20 7946 0958"')
    assert mentioned["sessions"] == []  # phone numbers in metadata: not there (only the email was)
    groups = served.get("/api/v1/groups", project=project, by="user_properties.email")["groups"]
    assert sorted((g["missing"], g["sessions"]) for g in groups) == [(False, 2), (False, 2), (True, 4)]
    assert all(g["value"].startswith("hmac:") for g in groups if not g["missing"])
    # An admin query over every project hashes the value with each project's secret.
    assert len(served.get("/api/v1/sessions", filter=f'user_properties.email = "{email}"')["sessions"]) == 2


def test_rules_are_validated_versioned_and_kept_per_project(served):
    project = f"v-{uuid.uuid4().hex[:8]}"
    with served.client() as client:
        bad = client.put(f"/api/v1/projects/{project}/privacy", json={"redact": [{"path": "email", "action": "hash"}]})
        assert bad.status_code == 400 and "redact[0].path" in bad.json()["detail"]
        bad = client.put(f"/api/v1/projects/{project}/privacy", json={"redact": [{"pattern": "ssn", "action": "mask"}]})
        assert bad.status_code == 400 and "redact[0].pattern" in bad.json()["detail"]
        assert client.get(f"/api/v1/projects/{project}/privacy").json()["version"] == 0
    put_rules(served, project, RULES[:1])
    put_rules(served, project, RULES)
    history = served.get(f"/api/v1/projects/{project}/privacy/history")["versions"]
    assert [(v["version"], len(v["redact"])) for v in history] == [(2, 5), (1, 1)]
    entries = served.get("/api/v1/audit", project=project)["entries"]
    assert [(e["action"], e["version"]) for e in entries] == [("settings", 2), ("settings", 1)]


def test_a_project_key_manages_only_its_project(served):
    key = _project_key(served, "mine")
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {key}"}) as client:
        assert client.put("/api/v1/projects/mine/privacy", json={"redact": RULES}).status_code == 200
        refused = client.put("/api/v1/projects/theirs/privacy", json={"redact": []})
        assert refused.status_code == 403 and "theirs" in refused.json()["detail"]
        assert client.post("/api/v1/projects/theirs/erase", json={"user_id": "x"}).status_code == 403
        assert client.get("/api/v1/audit", params={"project": "theirs"}).status_code == 403


def _project_key(server, project: str) -> str:
    from tracehive.server.auth import KEYS_FILE, KeyRing

    return KeyRing(server.data_dir / KEYS_FILE).create(f"key-{project}", project)


def test_the_secret_hashes_alike_and_erase_finds_a_hashed_user_id(served):
    project = f"s-{uuid.uuid4().hex[:8]}"
    rules = [{"path": "user_properties.user_id", "action": "hash"}]
    with Client(served.url, served.key) as client:
        with pytest.raises(ServerError, match="no privacy settings"):
            client.privacy_secret(project)
        client.set_privacy(project, redact=rules)
        secret = client.privacy_secret(project)
        with served.client() as http:
            for user in ("alice", "bob"):
                session = {"project": project, "session_id": str(uuid.uuid4()), "user_properties": {"user_id": user}}
                assert http.post("/session/start", json={"session": session}).status_code == 200
        expected = Redactor(parse_rules(rules), bytes.fromhex(secret)).hash_value("alice")
        (alice,) = client.sessions(project=project, filter='user_id = "alice"')
        assert alice["user_properties"]["user_id"] == expected
        assert client.erase_user(project, "alice")["sessions"] == 1
        assert client.sessions(project=project, filter='user_properties.user_id = "alice"') == []
        assert len(client.sessions(project=project, filter='user_properties.user_id = "bob"')) == 1
        assert "secret_read" in {e["action"] for e in client.audit(project)}


def test_a_saved_rule_applies_to_the_next_request_in_the_ingest_workers(served):
    project = f"w-{uuid.uuid4().hex[:8]}"
    with served.client() as client:
        # Until its worker processes are up the server maps requests on a thread; give them time.
        warm = {"trace_id": new_trace_id(), "span_id": new_span_id(), "name": "warm-up"}
        assert client.post("/v1/traces", json=json_request([warm])).status_code == 200
        time.sleep(5)
        for expected_masked in (False, True):
            email = f"dee.{uuid.uuid4().hex[:8]}@example.com"
            span = {"trace_id": new_trace_id(), "span_id": new_span_id(), "attributes": {"input.value": email}}
            assert (
                client.post("/v1/traces", json=json_request([span], {"tracehive.project": project})).status_code == 200
            )
            (event,) = served.get(f"/api/v1/sessions/{span['trace_id']}")["events"]
            assert (event["inputs"]["value"] != email) is expected_masked
            if not expected_masked:
                put_rules(served, project, [{"pattern": "email", "action": "mask"}])


def test_honeyhive_create_event_is_redacted_too(served):
    project = f"c-{uuid.uuid4().hex[:8]}"
    put_rules(served, project, RULES)
    email = f"eve.{uuid.uuid4().hex[:8]}@example.com"
    event = {"project": project, "event_name": "lookup", "inputs": {"q": f"for {email}"},
             "user_properties": {"email": email}}  # fmt: skip
    with served.client() as client:
        answer = client.post("/events", json={"event": event})
    assert answer.status_code == 200, answer.text
    stored = served.get(f"/api/v1/events/{answer.json()['event_id']}")
    assert stored["inputs"] == {"q": f"for {email[0]}***@example.com"}
    assert stored["user_properties"]["email"].startswith("hmac:")
