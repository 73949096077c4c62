"""Redaction rules and how they change a record's namespaces, shared by the server and the SDK.

A rule picks values by key path (``user_properties.email``, ``metadata.*.ip``: ``*`` is any key or
list index) or by a pattern found in any string value (``email``, ``phone``, ``card``, ``ip``), and
says what becomes of them: ``drop`` (removed), ``mask`` (``u***@example.com``) or ``hash`` (a keyed
HMAC-SHA256, so equal values stay equal and a filter on the clear value can be hashed alike). Path
rules win over patterns for the values they pick.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import orjson

from tracehive.model import NAMESPACES
from tracehive.privacy.detectors import DETECTORS, PATTERN_NAMES

ACTIONS = ("drop", "mask", "hash")
HASH_PREFIX = "hmac:"
HASH_HEX_CHARS = 32  # 128 bits of the HMAC-SHA256
DROPPED_TEXT = "[removed]"
MAX_RULES = 100
MAX_PATH_DEPTH = 32
MAX_PATH_LENGTH = 1024
ANY = "*"


class RuleError(ValueError):
    """A rule that cannot be used; the message names the rule and the field."""


@dataclass(frozen=True, slots=True)
class Rule:
    action: str
    path: tuple[str, ...] | None = None
    pattern: str | None = None

    @classmethod
    def from_dict(cls, given: Any, index: int = 0) -> Rule:
        where = f"redact[{index}]"
        if not isinstance(given, dict):
            raise RuleError(f"{where}: a rule is an object like {{'path': 'user_properties.email', 'action': 'hash'}}")
        unknown = set(given) - {"path", "pattern", "action"}
        if unknown:
            raise RuleError(f"{where}: unknown field(s) {', '.join(sorted(unknown))} (use path or pattern, and action)")
        action = given.get("action")
        if action not in ACTIONS:
            raise RuleError(f"{where}.action: one of {', '.join(ACTIONS)}, got {action!r}")
        path, pattern = given.get("path"), given.get("pattern")
        if (path is None) == (pattern is None):
            raise RuleError(f"{where}: give either path or pattern")
        if pattern is not None:
            if pattern not in PATTERN_NAMES:
                raise RuleError(f"{where}.pattern: one of {', '.join(PATTERN_NAMES)}, got {pattern!r}")
            return cls(action, pattern=pattern)
        return cls(action, path=parse_path(path, where))

    def to_dict(self) -> dict[str, str]:
        target = {"pattern": self.pattern} if self.pattern else {"path": ".".join(self.path or ())}
        return {**target, "action": self.action}


def parse_path(text: Any, where: str) -> tuple[str, ...]:
    """``user_properties.email`` as its keys; the first names a namespace (or ``*``: any)."""
    if not isinstance(text, str) or not text or len(text) > MAX_PATH_LENGTH:
        shown = repr(text) if len(repr(text)) < 80 else f"{len(text)} characters"
        raise RuleError(
            f"{where}.path: a dotted key path like user_properties.email (at most "
            f"{MAX_PATH_LENGTH} characters), got {shown}"
        )
    parts = tuple(text.split("."))
    if len(parts) < 2 or len(parts) > MAX_PATH_DEPTH or "" in parts:
        raise RuleError(f"{where}.path: a namespace and at least one key, like user_properties.email, got {text!r}")
    if parts[0] not in (*NAMESPACES, ANY):
        raise RuleError(f"{where}.path: {parts[0]!r} is not a namespace ({', '.join(NAMESPACES)} or *)")
    return parts


def parse_rules(given: Any) -> tuple[Rule, ...]:
    if not isinstance(given, list):
        raise RuleError("redact: a list of rules")
    if len(given) > MAX_RULES:
        raise RuleError(f"redact: at most {MAX_RULES} rules, got {len(given)}")
    return tuple(Rule.from_dict(item, index) for index, item in enumerate(given))


def _key_matches(pattern: str, key: Any) -> bool:
    return pattern == ANY or pattern == str(key)


def mask_text(text: str, kind: str | None = None) -> str:
    """Enough of a value left to recognise its shape, none to recover it."""
    if kind == "email" or (kind is None and "@" in text):
        local, _, domain = text.partition("@")
        return f"{local[:1]}***@{domain}"
    if kind == "card":
        return "****" + "".join(c for c in text if c.isdigit())[-4:]
    if kind == "phone":
        return "***" + "".join(c for c in text if c.isdigit())[-2:]
    if kind == "ip":
        head, sep, _ = text.rpartition("." if "." in text else ":")
        return f"{head}{sep}***"
    return text[:1] + "***"


class Redactor:
    """One project's rules with its secret, ready to apply. ``secret`` None (an SDK given no
    secret) makes ``hash`` rules drop their values: without the key, no hash would match the
    server's, and the clear value must not leave."""

    def __init__(self, rules: tuple[Rule, ...], secret: bytes | None) -> None:
        self.rules = rules
        self.secret = secret
        self.paths = [r for r in rules if r.path is not None]
        self.patterns = [(r, DETECTORS[r.pattern]) for r in rules if r.pattern is not None]

    def __bool__(self) -> bool:
        return bool(self.rules)

    # --- single values ------------------------------------------------------------------
    def hash_value(self, value: Any) -> str:
        data = value.encode() if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        digest = hmac.new(self.secret or b"", data, hashlib.sha256).hexdigest()
        return HASH_PREFIX + digest[:HASH_HEX_CHARS]

    def _act(self, action: str, value: Any, kind: str | None = None) -> Any:
        if action == "hash" and self.secret is not None:
            return self.hash_value(value)
        if action == "mask":
            return mask_text(value, kind) if isinstance(value, str) else "***"
        return DROPPED_TEXT

    def redact_text(self, text: str, only_hash: bool = False) -> str:
        """``text`` with what the pattern rules find replaced, rule by rule in order."""
        for rule, detectors in self.patterns:
            if only_hash and rule.action != "hash":
                continue
            for detector in detectors:
                found = detector.spans(text)
                for start, end in reversed(found):
                    text = text[:start] + self._act(rule.action, text[start:end], detector.name) + text[end:]
        return text

    # --- records ------------------------------------------------------------------------
    def apply(self, namespaces: dict[str, dict[str, Any]]) -> None:
        """Redact every namespace in place."""
        done: set[tuple[int, Any]] = set()
        for rule in self.paths:
            for ns, values in namespaces.items():
                if values and _key_matches(rule.path[0], ns):
                    self._apply_path(values, rule.path[1:], rule.action, done)
        if self.patterns:
            for values in namespaces.values():
                if values:
                    self._apply_patterns(values, done)

    def _apply_path(self, node: Any, path: tuple[str, ...], action: str, done: set) -> None:
        head, rest = path[0], path[1:]
        items = (
            list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(node, list) else []
        )
        for key, value in items:
            if not _key_matches(head, key):
                continue
            if rest:
                self._apply_path(value, rest, action, done)
            elif action == "drop" and isinstance(node, dict):
                del node[key]
            elif (id(node), key) not in done:
                node[key] = None if action == "drop" else self._act(action, value)
                done.add((id(node), key))

    def _apply_patterns(self, root: dict | list, done: set) -> None:
        stack: list[dict | list] = [root]
        while stack:
            node = stack.pop()
            for key, value in list(node.items() if isinstance(node, dict) else enumerate(node)):
                if isinstance(value, str):
                    if (id(node), key) not in done:
                        node[key] = self.redact_text(value)
                elif isinstance(value, dict | list):
                    stack.append(value)

    # --- filters ------------------------------------------------------------------------
    def stored_form(self, path: tuple[str | int, ...], value: Any) -> Any:
        """What a hashing rule stores for ``value`` at ``path``, or ``value`` if none changes it."""
        for rule in self.paths:
            rule_path = rule.path or ()
            if len(rule_path) == len(path) and all(_key_matches(p, k) for p, k in zip(rule_path, path, strict=True)):
                return self.hash_value(value) if rule.action == "hash" and value is not None else value
        return self.redact_text(value, only_hash=True) if isinstance(value, str) else value
