"""Map decoded OTLP spans onto the data model: which span is an event, which is a record about
its session, and where each attribute goes.

This is the one place that knows the three attribute conventions listed in
:mod:`tracehive.attributes`.
"""

from __future__ import annotations

from dataclasses import dataclass
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


# Spans of one kind repeat the same few keys; many keys are shaped afresh, keeping the cache small.
_CACHED_KEYS = 16


@lru_cache(maxsize=1024)
def _shape(keys: tuple[str, ...]) -> Any:
    """How dotted keys (``prefs.theme``) nest, with a :class:`_Leaf` naming each value's key: it
    depends on the keys alone. An object whose keys are exactly 0..n-1 becomes a list (``langs.0``,
    ``langs.1``); where a key is both a value and a prefix of others, the value keeps its key and
    the longer keys stay flat."""
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


@dataclass(frozen=True, slots=True)
class _Plan:
    """Where each attribute of a span goes, worked out once per set of keys: spans of one kind
    repeat the same keys, so mapping a span is then a few lookups instead of a pass of string
    tests over every key."""

    namespace_keys: tuple[tuple[str, str], ...]  # (key, namespace) of our JSON namespace attributes
    hh_namespaces: tuple[tuple[str, Any], ...]  # (namespace, shape of its flattened HoneyHive leaves)
    rest_keys: tuple[str, ...]  # plain attributes, copied into metadata
    rest_shape: Any  # their nesting (see _leaf_shape)
    user_id: bool
    input_value: bool
    output_value: bool
    # For each field read from the first non-empty of several keys: the keys present, in order.
    project: tuple[str, ...]
    session_id: tuple[str, ...]
    session_name: tuple[str, ...]
    source: tuple[str, ...]
    event_type: tuple[str, ...]
    event_name: tuple[str, ...]
    error: tuple[str, ...]
    record: bool
    hh_event: bool  # sent by the HoneyHive SDK (its metadata copies and span names apply)
    hh_error_type: bool


_PROJECT_KEYS = (A.PROJECT, A.HH_PROJECT)
_SESSION_ID_KEYS = (A.SESSION_ID, A.HH_SESSION_ID, A.HH_COPY_PREFIX + "session_id", A.OTEL_SESSION_ID)
_SESSION_NAME_KEYS = (A.SESSION_NAME, A.HH_SESSION_NAME)
_SOURCE_KEYS = (A.SOURCE, A.HH_SOURCE)
_EVENT_TYPE_KEYS = (A.EVENT_TYPE, A.HH_EVENT_TYPE)
_EVENT_NAME_KEYS = (A.EVENT_NAME, A.HH_EVENT_NAME)
_ERROR_KEYS = (A.ERROR, A.HH_ERROR)
_GENERIC_SPECIAL = frozenset({A.OTEL_USER_ID, A.OI_INPUT_VALUE, A.OI_OUTPUT_VALUE})
_CACHED_PLANS = 64  # spans with more keys than this are planned afresh, keeping the cache small


def _make_plan(keys: tuple[str, ...]) -> _Plan:
    namespace_keys = []
    hh_leaves: dict[str, tuple[str, str, list[str]]] = {}  # namespace -> (its prefix, itself, its keys)
    rest = []
    for key in keys:
        ns = _OUR_NAMESPACE_KEYS.get(key)
        if ns is not None:
            namespace_keys.append((key, ns))
        elif key in _CONSUMED or key.startswith(A.HH_COPY_PREFIX):
            continue
        elif key.startswith(A.HH_NAMESPACE_PREFIX):
            for prefix, hh_ns in _HH_NAMESPACE_PREFIXES:
                if key.startswith(prefix):
                    hh_leaves.setdefault(hh_ns, (prefix, hh_ns, []))[2].append(key)
                    break
            else:
                rest.append(key)
        elif key not in _GENERIC_SPECIAL:
            rest.append(key)
    present = set(keys)

    def among(candidates: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(key for key in candidates if key in present)

    return _Plan(
        namespace_keys=tuple(namespace_keys),
        hh_namespaces=tuple((ns, _leaf_shape(leaves, len(prefix))) for prefix, ns, leaves in hh_leaves.values()),
        rest_keys=tuple(rest),
        rest_shape=_leaf_shape(rest, 0),
        user_id=A.OTEL_USER_ID in present,
        input_value=A.OI_INPUT_VALUE in present,
        output_value=A.OI_OUTPUT_VALUE in present,
        project=among(_PROJECT_KEYS),
        session_id=among(_SESSION_ID_KEYS),
        session_name=among(_SESSION_NAME_KEYS),
        source=among(_SOURCE_KEYS),
        event_type=among(_EVENT_TYPE_KEYS),
        event_name=among(_EVENT_NAME_KEYS),
        error=among(_ERROR_KEYS),
        record=A.RECORD in present,
        hh_event=A.HH_EVENT_TYPE in present,
        hh_error_type=A.HH_ERROR_TYPE in present,
    )


def _leaf_shape(keys: list[str], cut: int) -> Any:
    """The nesting of ``keys`` without their first ``cut`` characters (see :func:`_shape`); its
    leaves name the full attribute keys, so it fills straight from the span's attributes. Keys
    without a dot stay as they are (``0`` and ``1`` alone do not make a list)."""
    short = tuple(key[cut:] for key in keys)
    if not any("." in key for key in short):
        return {part: _Leaf(key) for part, key in zip(short, keys, strict=True)}
    shape = _shape(short) if len(short) <= _CACHED_KEYS else _shape.__wrapped__(short)
    return _rename_leaves(shape, dict(zip(short, keys, strict=True)))


def _rename_leaves(shape: Any, full: dict[str, str]) -> Any:
    if type(shape) is _Leaf:
        return _Leaf(full[shape.key])
    if type(shape) is list:
        return [_rename_leaves(child, full) for child in shape]
    return {key: _rename_leaves(child, full) for key, child in shape.items()}


@lru_cache(maxsize=1024)
def _cached_plan(keys: tuple[str, ...]) -> _Plan:
    return _make_plan(keys)


def _plan(attrs: dict[str, Any]) -> _Plan:
    keys = tuple(attrs)
    return _cached_plan(keys) if len(keys) <= _CACHED_PLANS else _make_plan(keys)


def _namespaces(plan: _Plan, attrs: dict[str, Any]) -> Namespaces:
    """The span's namespaces: ours (JSON objects) merged in attribute order, then HoneyHive's leaves."""
    namespaces = empty_namespaces()
    for key, ns in plan.namespace_keys:
        value = attrs[key]
        parsed = _json_namespace(key, value)
        # A fresh parse is taken as it is; an object from the span is copied, as merging does.
        namespaces[ns] = {**namespaces[ns], **parsed} if namespaces[ns] or parsed is value else parsed
    for ns, shape in plan.hh_namespaces:
        namespaces[ns].update(_fill(shape, attrs))
    return namespaces


def _first(attrs: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = attrs[key]
        if value is not None and value != "":
            return value
    return None


def _error(span: Span, plan: _Plan, attrs: dict[str, Any]) -> str | None:
    error = _first(attrs, plan.error)
    if error is not None:
        return str(error)
    if span.status_code != STATUS_ERROR:
        return None
    for name, event_attrs in span.events:
        if name == A.OTEL_EXCEPTION_EVENT:
            kind = event_attrs.get(A.OTEL_EXCEPTION_TYPE, "Error")
            return f"{kind}: {event_attrs.get(A.OTEL_EXCEPTION_MESSAGE, '')}"
    return span.status_message or "error"


def _apply_generic(namespaces: Namespaces, plan: _Plan, attrs: dict[str, Any]) -> str | None:
    """Place plain OpenTelemetry / OpenInference attributes; returns a user id if one was given."""
    user_id = attrs[A.OTEL_USER_ID] if plan.user_id else None
    if user_id is not None:
        namespaces["user_properties"].setdefault("user_id", user_id)
    if plan.input_value:
        namespaces["inputs"].setdefault("value", attrs[A.OI_INPUT_VALUE])
    if plan.output_value:
        namespaces["outputs"].setdefault("value", attrs[A.OI_OUTPUT_VALUE])
    if plan.rest_keys:
        namespaces["metadata"] = {**_fill(plan.rest_shape, attrs), **namespaces["metadata"]}
    return user_id


def _drop_hh_metadata_copies(namespaces: Namespaces, attrs: dict[str, Any]) -> None:
    """The HoneyHive SDK copies the event type and name into metadata; the copies say nothing new."""
    metadata = namespaces["metadata"]
    for key, copy in _HH_METADATA_COPIES:
        if copy in metadata and key in attrs and metadata[copy] == attrs[key]:
            del metadata[copy]


def _event_name(span: Span, plan: _Plan, attrs: dict[str, Any]) -> str:
    name = _first(attrs, plan.event_name)
    if name is not None:
        return str(name)
    if plan.hh_event and span.name.startswith(_MAIN_MODULE_PREFIX):
        return span.name[len(_MAIN_MODULE_PREFIX) :]
    return span.name


def _event_type(plan: _Plan, attrs: dict[str, Any]) -> str:
    event_type = _first(attrs, plan.event_type)
    if event_type is None:
        return _OPENINFERENCE_KINDS.get(str(attrs.get(A.OI_SPAN_KIND, "")).upper(), DEFAULT_EVENT_TYPE)
    return str(event_type)


def spans_to_batch(spans: list[Span], default_project: str) -> Batch:
    """Turn decoded spans into events and session updates for one project-default."""
    batch = Batch()
    # What event spans tell about their session (source, user id): one update per session.
    facts: dict[tuple[str, str], SessionUpdate] = {}
    for span in spans:
        attrs = span.attributes
        plan = _plan(attrs)
        # The HoneyHive SDK follows a failed call with a ``<function>_error`` span; the call's own
        # span already carries the error (status and exception event): the marker is no event.
        if plan.hh_error_type and span.name.endswith("_error"):
            continue
        resource = span.resource
        project = (_first(attrs, plan.project) or resource.get(A.PROJECT) or resource.get(A.OI_PROJECT_NAME)
                   or default_project)  # fmt: skip
        project = str(project)
        session_id = str(_first(attrs, plan.session_id) or span.trace_id)
        namespaces = _namespaces(plan, attrs)
        source = _first(attrs, plan.source)
        if plan.record and attrs[A.RECORD] == A.RECORD_SESSION:
            batch.sessions.append(
                SessionUpdate(
                    project=project,
                    session_id=session_id,
                    session_name=_first(attrs, plan.session_name),
                    source=source,
                    start_ns=span.start_ns or None,
                    end_ns=span.end_ns or None,
                    namespaces=namespaces,
                )
            )
            continue
        if plan.hh_event or A.HH_EVENT_NAME in plan.event_name:
            _drop_hh_metadata_copies(namespaces, attrs)
        user_id = _apply_generic(namespaces, plan, attrs)
        if source is None:
            service = span.resource.get(A.OTEL_SERVICE_NAME)
            if isinstance(service, str) and not service.startswith("unknown_service"):
                source = service
        batch.events.append(
            Event(
                project=project,
                event_id=span.span_id,
                session_id=session_id,
                trace_id=span.trace_id,
                parent_id=span.parent_id,
                event_type=_event_type(plan, attrs),
                event_name=_event_name(span, plan, attrs),
                start_ns=span.start_ns,
                end_ns=max(span.end_ns, span.start_ns),
                error=_error(span, plan, attrs),
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
