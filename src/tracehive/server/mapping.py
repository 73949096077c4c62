"""Map decoded OTLP spans onto the data model: which span is an event, which is a record about
its session, and where each attribute goes.

This is the one place that knows the three attribute conventions listed in
:mod:`tracehive.attributes`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson

from tracehive import attributes as A
from tracehive.model import (
    DEFAULT_EVENT_TYPE,
    NAMESPACES,
    Batch,
    Event,
    Namespaces,
    SessionUpdate,
    empty_namespaces,
)
from tracehive.server.otlp import STATUS_ERROR, OtlpError, Span

# Attributes that carry identity or timing and are not copied into metadata.
_CONSUMED = frozenset(
    {
        A.SESSION_ID, A.PROJECT, A.SESSION_NAME, A.SOURCE, A.EVENT_TYPE, A.EVENT_NAME, A.ERROR, A.RECORD,
        A.HH_SESSION_ID, A.HH_PROJECT, A.HH_SOURCE, A.HH_SESSION_NAME, A.HH_EVENT_TYPE, A.HH_EVENT_NAME,
        A.HH_DURATION_MS, A.HH_ERROR, A.HH_ERROR_TYPE, A.OTEL_SESSION_ID,
    }
)  # fmt: skip
_OUR_NAMESPACE_KEYS = {f"{A.NAMESPACE_PREFIX}{ns}": ns for ns in NAMESPACES}
_HH_NAMESPACE_PREFIXES = tuple((f"{A.HH_NAMESPACE_PREFIX}{ns}.", ns) for ns in NAMESPACES)
_OPENINFERENCE_KINDS = {"LLM": "model", "TOOL": "tool", "CHAIN": "chain", "AGENT": "chain", "RETRIEVER": "tool"}
# The HoneyHive SDK copies the event type and name into metadata; the copies say nothing new.
_HH_METADATA_COPIES = ((A.HH_EVENT_TYPE, "event_type"), (A.HH_EVENT_NAME, "event_name"))
# Its @trace names a span ``<module>.<function>``; in the main script the module part is noise.
_MAIN_MODULE_PREFIX = "__main__."


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """Rebuild nested objects from dotted keys (``prefs.theme``); an object whose keys are exactly
    0..n-1 becomes a list (``langs.0``, ``langs.1``). Where a key is both a value and a prefix of
    others, the value keeps its key and the longer keys stay flat."""
    if not any("." in key for key in flat):
        return dict(flat)
    keys = tuple(flat)
    # Spans of one kind repeat the same few keys; many keys are shaped afresh, keeping the cache small.
    return _fill(_shape(keys) if len(keys) <= _CACHED_KEYS else _shape.__wrapped__(keys), flat)


_CACHED_KEYS = 16


@lru_cache(maxsize=1024)
def _shape(keys: tuple[str, ...]) -> Any:
    """The nesting :func:`unflatten` gives these keys, with a :class:`_Leaf` naming each value's
    key: it depends on the keys alone."""
    root: dict[str, Any] = {}
    for key in sorted(keys, key=lambda k: k.count(".")):
        parts = key.split(".")
        node: dict[str, Any] | None = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if isinstance(child, _Leaf):
                node = None
                break
            node = child
        if node is None or parts[-1] in node:
            root[key] = _Leaf(key)
        else:
            node[parts[-1]] = _Leaf(key)
    return _finish(root)


class _Leaf:
    """Marks a value's place in a shape, so that a dict value is not taken for a branch."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key


def _finish(node: dict[str, Any] | _Leaf) -> Any:
    if isinstance(node, _Leaf):
        return node
    out = {k: _finish(v) for k, v in node.items()}
    if out and all(k.isdigit() for k in out) and sorted(int(k) for k in out) == list(range(len(out))):
        return [out[str(i)] for i in range(len(out))]
    return out


def _fill(shape: Any, flat: dict[str, Any]) -> Any:
    kind = type(shape)
    if kind is _Leaf:
        return flat[shape.key]
    if kind is list:
        return [_fill(child, flat) for child in shape]
    return {key: _fill(child, flat) for key, child in shape.items()}


def _json_namespace(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        parsed = orjson.loads(value) if isinstance(value, str | bytes) else None
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise OtlpError(f"attribute {key!r} must hold a JSON object")
    return parsed


def _namespaces(attrs: dict[str, Any]) -> tuple[Namespaces, dict[str, Any]]:
    """Split attributes into namespaces (ours and HoneyHive's) and the rest."""
    namespaces = empty_namespaces()
    hh_flat: dict[str, dict[str, Any]] = {}
    rest: dict[str, Any] = {}
    for key, value in attrs.items():
        ns = _OUR_NAMESPACE_KEYS.get(key)
        if ns is not None:
            parsed = _json_namespace(key, value)
            # A fresh parse is taken as it is; an object from the span is copied, as merging does.
            namespaces[ns] = {**namespaces[ns], **parsed} if namespaces[ns] or parsed is value else parsed
            continue
        if key in _CONSUMED or key.startswith(A.HH_COPY_PREFIX):
            continue
        if key.startswith(A.HH_NAMESPACE_PREFIX):
            for prefix, hh_ns in _HH_NAMESPACE_PREFIXES:
                if key.startswith(prefix):
                    hh_flat.setdefault(hh_ns, {})[key[len(prefix) :]] = value
                    break
            else:
                rest[key] = value
            continue
        rest[key] = value
    for ns, flat in hh_flat.items():
        namespaces[ns].update(unflatten(flat))
    return namespaces, rest


def _first(attrs: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value not in (None, ""):
            return value
    return None


def _error(span: Span, attrs: dict[str, Any]) -> str | None:
    error = _first(attrs, A.ERROR, A.HH_ERROR)
    if error is not None:
        return str(error)
    if span.status_code != STATUS_ERROR:
        return None
    for name, event_attrs in span.events:
        if name == A.OTEL_EXCEPTION_EVENT:
            kind = event_attrs.get(A.OTEL_EXCEPTION_TYPE, "Error")
            return f"{kind}: {event_attrs.get(A.OTEL_EXCEPTION_MESSAGE, '')}"
    return span.status_message or "error"


def _apply_generic(namespaces: Namespaces, rest: dict[str, Any]) -> str | None:
    """Place plain OpenTelemetry / OpenInference attributes; returns a user id if one was given."""
    user_id = rest.pop(A.OTEL_USER_ID, None)
    if user_id is not None:
        namespaces["user_properties"].setdefault("user_id", user_id)
    for key, ns in ((A.OI_INPUT_VALUE, "inputs"), (A.OI_OUTPUT_VALUE, "outputs")):
        if key in rest:
            namespaces[ns].setdefault("value", rest.pop(key))
    if rest:
        namespaces["metadata"] = {**unflatten(rest), **namespaces["metadata"]}
    return user_id


def _is_hh_error_marker(span: Span) -> bool:
    """The HoneyHive SDK follows a failed traced call with a separate ``<function>_error`` span.
    The failed call's own span already carries the error (status and exception event), so the
    marker is not an event of its own."""
    return A.HH_ERROR_TYPE in span.attributes and span.name.endswith("_error")


def _drop_hh_metadata_copies(namespaces: Namespaces, attrs: dict[str, Any]) -> None:
    metadata = namespaces["metadata"]
    for key, copy in _HH_METADATA_COPIES:
        if copy in metadata and metadata[copy] == attrs.get(key):
            del metadata[copy]


def _event_name(span: Span, attrs: dict[str, Any]) -> str:
    name = _first(attrs, A.EVENT_NAME, A.HH_EVENT_NAME)
    if name is not None:
        return str(name)
    if A.HH_EVENT_TYPE in attrs and span.name.startswith(_MAIN_MODULE_PREFIX):
        return span.name[len(_MAIN_MODULE_PREFIX) :]
    return span.name


def spans_to_batch(spans: list[Span], default_project: str) -> Batch:
    """Turn decoded spans into events and session updates for one project-default."""
    batch = Batch()
    # What event spans tell about their session (source, user id): one update per session.
    facts: dict[tuple[str, str], SessionUpdate] = {}
    for span in spans:
        attrs = span.attributes
        if _is_hh_error_marker(span):
            continue
        project = str(_first(attrs, A.PROJECT, A.HH_PROJECT) or _first(span.resource, A.PROJECT) or default_project)
        session_id = str(
            _first(attrs, A.SESSION_ID, A.HH_SESSION_ID, A.HH_COPY_PREFIX + "session_id", A.OTEL_SESSION_ID)
            or span.trace_id
        )
        namespaces, rest = _namespaces(attrs)
        source = _first(attrs, A.SOURCE, A.HH_SOURCE)
        if attrs.get(A.RECORD) == A.RECORD_SESSION:
            batch.sessions.append(
                SessionUpdate(
                    project=project,
                    session_id=session_id,
                    session_name=_first(attrs, A.SESSION_NAME, A.HH_SESSION_NAME),
                    source=source,
                    start_ns=span.start_ns or None,
                    end_ns=span.end_ns or None,
                    namespaces=namespaces,
                )
            )
            continue
        _drop_hh_metadata_copies(namespaces, attrs)
        user_id = _apply_generic(namespaces, rest)
        if source is None:
            service = span.resource.get(A.OTEL_SERVICE_NAME)
            if isinstance(service, str) and not service.startswith("unknown_service"):
                source = service
        event_type = _first(attrs, A.EVENT_TYPE, A.HH_EVENT_TYPE)
        if event_type is None:
            event_type = _OPENINFERENCE_KINDS.get(str(attrs.get(A.OI_SPAN_KIND, "")).upper(), DEFAULT_EVENT_TYPE)
        batch.events.append(
            Event(
                project=project,
                event_id=span.span_id,
                session_id=session_id,
                trace_id=span.trace_id,
                parent_id=span.parent_id,
                event_type=str(event_type),
                event_name=_event_name(span, attrs),
                start_ns=span.start_ns,
                end_ns=max(span.end_ns, span.start_ns),
                error=_error(span, attrs),
                namespaces=namespaces,
            )
        )
        if source is not None or user_id is not None:
            update = facts.get((project, session_id))
            if update is None:
                update = facts[(project, session_id)] = SessionUpdate(project=project, session_id=session_id)
            update.source = source or update.source
            if user_id is not None:
                update.namespaces["user_properties"]["user_id"] = user_id
    batch.sessions.extend(facts.values())
    return batch
