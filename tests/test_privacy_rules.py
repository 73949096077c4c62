"""Redaction rules on their own: what each pattern finds and leaves alone, what each action
stores, path wildcards and precedence, and the filter rewrite that finds hashed values."""

from __future__ import annotations

import pytest

from tracehive.filters import And, Compare, Field, Not, Or, parse
from tracehive.privacy import Redactor, RuleError, parse_rules, rewrite_filter
from tracehive.privacy.detectors import DETECTORS, luhn_ok

KEY = bytes(range(32))


def found(pattern: str, text: str) -> list[str]:
    return [text[a:b] for detector in DETECTORS[pattern] for a, b in detector.spans(text)]


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("email", "write to Ann.Lee+x@mail.example.co.uk today", ["Ann.Lee+x@mail.example.co.uk"]),
        ("email", "not an address: a@b, @example.com, user@localhost", []),
        ("card", "visa 4111 1111 1111 1111, amex 3782-822463-10005", ["4111 1111 1111 1111", "3782-822463-10005"]),
        ("card", "4111-1111-1111-1111 and 378282246310005", ["4111-1111-1111-1111", "378282246310005"]),
        ("card", "order 4111111111111112 fails Luhn; ts 1767225600000000", []),
        ("ip", "from 192.168.1.20 and 2001:db8::8a2e:370:7334", ["192.168.1.20", "2001:db8::8a2e:370:7334"]),
        ("ip", "version 1.2.3, 999.1.1.1, time 12:30:45", []),
        ("phone", "call +1 415-555-0132 or (020) 7946 0958", ["+1 415-555-0132", "(020) 7946 0958"]),
        ("phone", "on 2026-01-31, id 123456789012, v1.2.3", []),
    ],
)
def test_patterns_find_what_they_name_and_leave_the_rest(pattern, text, expected):
    assert found(pattern, text) == expected


def test_luhn():
    assert luhn_ok("4111111111111111") and luhn_ok("378282246310005") and not luhn_ok("4111111111111112")


def test_actions_paths_and_precedence():
    rules = parse_rules([
        {"path": "user_properties.email", "action": "hash"},
        {"path": "metadata.*.ip", "action": "drop"},
        {"path": "*.tags.*", "action": "mask"},
        {"pattern": "email", "action": "mask"},
    ])  # fmt: skip
    redactor = Redactor(rules, KEY)
    ns = {
        "user_properties": {"email": "ann@example.com", "user_id": 7},
        "metadata": {"a": {"ip": "10.0.0.1", "os": "linux"}, "b": {"ip": "10.0.0.2"}, "tags": ["secret", 3]},
        "inputs": {"q": ["x ann@example.com y", {"deep": "bo@example.org"}]},
    }
    redactor.apply(ns)
    assert ns["user_properties"] == {"email": redactor.hash_value("ann@example.com"), "user_id": 7}
    assert ns["metadata"] == {"a": {"os": "linux"}, "b": {}, "tags": ["s***", "***"]}
    assert ns["inputs"] == {"q": ["x a***@example.com y", {"deep": "b***@example.org"}]}
    # the path rule's hash is not then masked as an email; equal values hash alike, keys differ
    assert redactor.hash_value("ann@example.com") == Redactor(rules, KEY).hash_value("ann@example.com")
    assert redactor.hash_value("ann@example.com") != Redactor(rules, b"other").hash_value("ann@example.com")
    dropped = {"user_properties": {"email": "x@example.com"}}
    Redactor(rules, None).apply(dropped)
    assert dropped == {"user_properties": {"email": "[removed]"}}


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"path": "email", "action": "hash"}, "redact[0].path"),
        ({"path": "secrets.email", "action": "hash"}, "redact[0].path"),
        ({"path": "user_properties..email", "action": "hash"}, "redact[0].path"),
        ({"path": "user_properties.email", "action": "encrypt"}, "redact[0].action"),
        ({"pattern": "ssn", "action": "mask"}, "redact[0].pattern"),
        ({"path": "user_properties.email", "pattern": "email", "action": "mask"}, "give either path or pattern"),
        ({"path": "user_properties.email", "action": "mask", "why": 1}, "unknown field"),
        ({"path": "user_properties." + "k" * 2000, "action": "mask"}, "at most 1024 characters"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(rule, field):
    with pytest.raises(RuleError, match=field.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")):
        parse_rules([rule])


def test_filters_on_clear_values_also_match_each_projects_hash():
    rules = parse_rules([{"path": "user_properties.email", "action": "hash"}, {"pattern": "phone", "action": "hash"}])
    one, two = Redactor(rules, b"1" * 32), Redactor(rules, b"2" * 32)
    email = Field("user_properties", ("email",))
    h1, h2 = one.hash_value("a@b.com"), two.hash_value("a@b.com")
    assert rewrite_filter(parse('user_properties.email = "a@b.com"'), [one, two]) == Or(
        (Compare(email, "=", "a@b.com"), Compare(email, "=", h1), Compare(email, "=", h2))
    )
    assert rewrite_filter(parse('user_properties.email != "a@b.com"'), [one]) == Not(
        Or((Compare(email, "=", "a@b.com"), Compare(email, "=", h1)))
    )
    note = Field("metadata", ("note",))
    phone = "+1 415-555-0132"
    assert rewrite_filter(parse(f'metadata.note contains "{phone}" and duration_ms > 3'), [one]) == And(
        (Or((Compare(note, "contains", phone), Compare(note, "contains", one.hash_value(phone)))),
         Compare(Field("duration_ms"), ">", 3))
    )  # fmt: skip
    untouched = parse('user_properties.plan = "pro" or user_properties.email > "a"')
    assert rewrite_filter(untouched, [one, two]) == untouched
    hashed_id = Redactor(parse_rules([{"path": "user_properties.user_id", "action": "hash"}]), KEY)
    assert rewrite_filter(parse('user_id = "u1"'), [hashed_id]) == Or(
        (Compare(Field("user_id"), "=", "u1"), Compare(Field("user_id"), "=", hashed_id.hash_value("u1")))
    )


def test_rules_travel_to_ingest_worker_processes():
    """Ingest workers get each request's rules pickled; a rule that cannot be pickled is a 500."""
    import pickle

    rules = parse_rules([{"pattern": name, "action": "mask"} for name in ("email", "card", "ip", "phone")])
    copy = pickle.loads(pickle.dumps({"p": Redactor(rules, KEY)}))["p"]
    assert copy.redact_text("mail a@b.co or 10.0.0.1") == "mail a***@b.co or 10.0.0.***"
