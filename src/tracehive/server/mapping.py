"""Map decoded OTLP spans onto the data model: which span is an event, which is a record about
its session, and where each attribute goes.

The conventions themselves are tables in :mod:`tracehive.server.conventions`; this module is the
engine that compiles them. A span's keys are looked up once per set of keys (spans of one kind
repeat the same keys), giving a :class:`_Plan`; mapping a span is then a few dictionary reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tracehive import attributes as A
from tracehive.model import DEFAULT_EVENT_TYPE, Batch, Event, Namespaces, SessionUpdate, empty_namespaces
from tracehive.server.conventions import CONVENTIONS
from tracehive.server.conventions.base import DROP, FIELDS, SESSION, ConventionError, Key, Prefix, is_namespace
from tracehive.server.model_calls import finish_model_event
from tracehive.server.otlp import STATUS_ERROR, OtlpError, Span
from tracehive.server.prices import Prices
from tracehive.server.shapes import fill, leaf_shape

# The HoneyHive SDK copies the event type and name into metadata; the copies say nothing new.
_HH_METADATA_COPIES = ((A.HH_EVENT_TYPE, "event_type"), (A.HH_EVENT_NAME, "event_name"))
# Its @trace names a span ``<module>.<function>``; in the main script the module part is noise.
_MAIN_MODULE_PREFIX = "__main__."
_CACHED_PLANS = 64  # spans with more keys than this are planned afresh, keeping the cache small

Read = Callable[[Any], Any] | None


def _compile() -> tuple[dict[str, tuple[tuple[int, Key], ...]], tuple[tuple[int, Prefix], ...]]:
    """Every row of every convention, ranked by precedence (lower wins)."""
    exact: dict[str, list[tuple[int, Key]]] = {}
    prefixes: list[tuple[int, Prefix]] = []
    rank = 0
    for convention in CONVENTIONS:
        for row in convention.keys:
            exact.setdefault(row.key, []).append((rank, row))
            rank += 1
        for prefix in convention.prefixes:
            prefixes.append((rank, prefix))
            rank += 1
    return {k: tuple(v) for k, v in exact.items()}, tuple(prefixes)


_EXACT, _PREFIXES = _compile()


@dataclass(frozen=True, slots=True)
class _Source:
    """Where one candidate value comes from: one key, or a group of keys nested by a shape."""

    key: str | None
    shape: Any
    read: Read

    def value(self, attrs: dict[str, Any]) -> Any:
        value = attrs[self.key] if self.key is not None else fill(self.shape, attrs)
        if value is None or value == "":
            return None
        return value if self.read is None else self.read(value)


@dataclass(frozen=True, slots=True)
class _Plan:
    """Where each attribute of a span goes, worked out once per set of keys."""

    # Event and session fields, and namespace paths: (target, candidates best first); the first
    # candidate with a value wins.
    fields: tuple[tuple[str, tuple[_Source, ...]], ...]
    paths: tuple[tuple[str, tuple[str, ...], tuple[_Source, ...]], ...]  # (namespace, path parts, candidates)
    # Whole namespaces merged from JSON objects, lowest precedence first (later ones win).
    merges: tuple[tuple[str, _Source], ...]
    # The same two for the span's session (targets ``session.<namespace>[.<path>]``).
    session_paths: tuple[tuple[str, tuple[str, ...], tuple[_Source, ...]], ...]
    session_merges: tuple[tuple[str, _Source], ...]
    rest_keys: tuple[str, ...]  # attributes no convention names, copied into metadata
    rest_shape: Any
    hh_event: bool  # sent by the HoneyHive SDK (its metadata copies and span names apply)
    hh_error_type: bool


def _make_plan(keys: tuple[str, ...]) -> _Plan:
    candidates: dict[str, list[tuple[int, _Source]]] = {}
    merges: list[tuple[int, str, _Source]] = []
    session_candidates: dict[str, list[tuple[int, _Source]]] = {}
    session_merges: list[tuple[int, str, _Source]] = []
    groups: dict[int, tuple[Prefix, list[str]]] = {}
    rest = []

    def add(rank: int, target: str, source: _Source) -> None:
        if target == DROP:
            return
        if target.startswith(SESSION):
            target = target[len(SESSION) :]
            if is_namespace(target):
                session_merges.append((rank, target, source))
            else:
                session_candidates.setdefault(target, []).append((rank, source))
        elif is_namespace(target):
            merges.append((rank, target, source))
        else:
            candidates.setdefault(target, []).append((rank, source))

    for key in keys:
        rows = _EXACT.get(key)
        if rows is not None:
            for rank, row in rows:
                add(rank, row.target, _Source(key, None, row.read))
            continue
        for rank, prefix in _PREFIXES:
            if key.startswith(prefix.prefix):
                groups.setdefault(rank, (prefix, []))[1].append(key)
                break
        else:
            rest.append(key)
    for rank, (prefix, group) in groups.items():
        add(rank, prefix.target, _Source(None, leaf_shape(group, len(prefix.prefix)), prefix.read))

    def best_first(found: list[tuple[int, _Source]]) -> tuple[_Source, ...]:
        return tuple(source for _, source in sorted(found, key=lambda item: item[0]))

    def lowest_first(found: list[tuple[int, str, _Source]]) -> tuple[tuple[str, _Source], ...]:
        return tuple((ns, source) for _, ns, source in sorted(found, key=lambda item: -item[0]))

    fields = tuple((t, best_first(c)) for t, c in candidates.items() if t in FIELDS)
    paths = tuple(
        (t.split(".", 1)[0], tuple(t.split(".")[1:]), best_first(c)) for t, c in candidates.items() if t not in FIELDS
    )
    session_paths = tuple(
        (t.split(".", 1)[0], tuple(t.split(".")[1:]), best_first(c)) for t, c in session_candidates.items()
    )
    present = set(keys)
    return _Plan(
        fields=fields,
        paths=paths,
        merges=lowest_first(merges),
        session_paths=session_paths,
        session_merges=lowest_first(session_merges),
        rest_keys=tuple(rest),
        rest_shape=leaf_shape(rest, 0),
        hh_event=A.HH_EVENT_TYPE in present,
        hh_error_type=A.HH_ERROR_TYPE in present,
    )


@lru_cache(maxsize=1024)
def _cached_plan(keys: tuple[str, ...]) -> _Plan:
    return _make_plan(keys)


def _plan(attrs: dict[str, Any]) -> _Plan:
    keys = tuple(attrs)
    return _cached_plan(keys) if len(keys) <= _CACHED_PLANS else _make_plan(keys)


def _first(attrs: dict[str, Any], sources: tuple[_Source, ...]) -> Any:
    for source in sources:
        value = source.value(attrs)
        if value is not None and value != "":
            return value
    return None


def _set_path(namespace: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set ``a.b`` inside a namespace unless something is there already (it came from a convention
    of higher precedence, or the namespace's own object)."""
    if len(path) == 1:
        namespace.setdefault(path[0], value)
        return
    *parents, last = path
    node = namespace
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return
        node = child
    node.setdefault(last, value)


def _place(
    namespaces: Namespaces,
    merges: tuple[tuple[str, _Source], ...],
    paths: tuple[tuple[str, tuple[str, ...], tuple[_Source, ...]], ...],
    attrs: dict[str, Any],
) -> Namespaces:
    try:
        for ns, source in merges:
            value = source.value(attrs)
            if isinstance(value, dict):
                # A fresh object is taken as it is; one from the span is copied, as merging does.
                current = namespaces[ns]
                namespaces[ns] = {**current, **value} if current or value is attrs.get(source.key) else value
        for ns, path, sources in paths:
            value = _first(attrs, sources)
            if value is not None:
                _set_path(namespaces[ns], path, value)
    except ConventionError as exc:
        raise OtlpError(str(exc)) from None
    return namespaces


def _namespaces(plan: _Plan, attrs: dict[str, Any]) -> Namespaces:
    namespaces = _place(empty_namespaces(), plan.merges, plan.paths, attrs)
    if plan.rest_keys:
        namespaces["metadata"] = {**fill(plan.rest_shape, attrs), **namespaces["metadata"]}
    return namespaces


def _error(span: Span, error: Any) -> str | None:
    if error is not None:
        return str(error)
    if span.status_code != STATUS_ERROR:
        return None
    for name, event_attrs in span.events:
        if name == A.OTEL_EXCEPTION_EVENT:
            kind = event_attrs.get(A.OTEL_EXCEPTION_TYPE, "Error")
            return f"{kind}: {event_attrs.get(A.OTEL_EXCEPTION_MESSAGE, '')}"
    return span.status_message or "error"


def _drop_hh_metadata_copies(namespaces: Namespaces, attrs: dict[str, Any]) -> None:
    """The HoneyHive SDK copies the event type and name into metadata; the copies say nothing new."""
    metadata = namespaces["metadata"]
    for key, copy in _HH_METADATA_COPIES:
        if copy in metadata and key in attrs and metadata[copy] == attrs[key]:
            del metadata[copy]


def _event_name(span: Span, plan: _Plan, name: Any) -> str:
    if name is not None:
        return str(name)
    if plan.hh_event and span.name.startswith(_MAIN_MODULE_PREFIX):
        return span.name[len(_MAIN_MODULE_PREFIX) :]
    return span.name


def spans_to_batch(spans: list[Span], default_project: str, prices: Prices | None = None) -> Batch:
    """Turn decoded spans into events and session updates for one project-default; model calls
    without a cost get one from ``prices`` (see :mod:`tracehive.server.prices`)."""
    batch = Batch()
    told: list[tuple] = []  # events that tell their session something (source, user id, name, namespaces)
    for span in spans:
        attrs = span.attributes
        plan = _plan(attrs)
        # The HoneyHive SDK follows a failed call with a ``<function>_error`` span; the call's own
        # span already carries the error (status and exception event): the marker is no event.
        if plan.hh_error_type and span.name.endswith("_error"):
            continue
        found = {target: _first(attrs, sources) for target, sources in plan.fields}
        resource = span.resource
        project = str(found.get("project") or resource.get(A.PROJECT) or resource.get(A.OI_PROJECT_NAME)
                      or default_project)  # fmt: skip
        explicit_session = found.get("session_id")
        session_id = str(explicit_session or span.trace_id)
        namespaces = _namespaces(plan, attrs)
        source = found.get("source")
        if found.get("record") == A.RECORD_SESSION:
            batch.sessions.append(
                SessionUpdate(
                    project=project,
                    session_id=session_id,
                    session_name=found.get("session_name"),
                    source=source,
                    start_ns=span.start_ns or None,
                    end_ns=span.end_ns or None,
                    namespaces=_place(namespaces, plan.session_merges, plan.session_paths, attrs),
                )
            )
            continue
        if plan.hh_event or A.HH_EVENT_NAME in attrs:
            _drop_hh_metadata_copies(namespaces, attrs)
        user_id = found.get("user_id")
        if user_id is not None:
            namespaces["user_properties"].setdefault("user_id", user_id)
        if source is None:
            service = span.resource.get(A.OTEL_SERVICE_NAME)
            if isinstance(service, str) and not service.startswith("unknown_service"):
                source = service
        event = Event(
            project=project,
            event_id=span.span_id,
            session_id=session_id,
            trace_id=span.trace_id,
            parent_id=span.parent_id,
            event_type=str(found.get("event_type") or DEFAULT_EVENT_TYPE),
            event_name=_event_name(span, plan, found.get("event_name")),
            start_ns=span.start_ns,
            end_ns=max(span.end_ns, span.start_ns),
            error=_error(span, found.get("error")),
            namespaces=namespaces,
            session_from_trace=explicit_session is None,
        )
        if event.event_type == "model":
            finish_model_event(event, prices)
        batch.events.append(event)
        session_name = found.get("session_name")
        about_session = bool(plan.session_merges or plan.session_paths)
        if source is not None or user_id is not None or session_name is not None or about_session:
            told.append((event, source, user_id, session_name, attrs if about_session else None, plan))
    _join_trace_sessions(batch)
    # What event spans tell about their session (source, user id, name, session namespaces): one
    # update per session, made after spans of a trace joined the session it names.
    facts: dict[tuple[str, str], SessionUpdate] = {}
    for event, source, user_id, session_name, session_attrs, plan in told:
        key = (event.project, event.session_id)
        update = facts.get(key)
        if update is None:
            update = facts[key] = SessionUpdate(project=event.project, session_id=event.session_id)
        update.source = source or update.source
        update.session_name = session_name or update.session_name
        if user_id is not None:
            update.namespaces["user_properties"]["user_id"] = user_id
        if session_attrs is not None:
            _place(update.namespaces, plan.session_merges, plan.session_paths, session_attrs)
    batch.sessions.extend(facts.values())
    return batch


def _join_trace_sessions(batch: Batch) -> None:
    """A span that named no session joins the session a span of its trace named in this batch;
    across batches the store does the same (see :class:`tracehive.store.columns.Rows`)."""
    orphans = [e for e in batch.events if e.session_from_trace]
    if not orphans or len(orphans) == len(batch.events):
        return
    named: dict[tuple[str, str], str] = {}
    for event in batch.events:
        if not event.session_from_trace:
            named.setdefault((event.project, event.trace_id), event.session_id)
    for event in orphans:
        session_id = named.get((event.project, event.trace_id))
        if session_id is not None:
            event.session_id = session_id
            event.session_from_trace = False
