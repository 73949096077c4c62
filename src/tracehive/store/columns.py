"""Events as Arrow columns, the form both stores insert them in (DuckDB through a registered
table, ClickHouse through clickhouse-connect's Arrow insert)."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tracehive.model import NAMESPACES, USAGE_FIELDS, Batch, Event, SessionUpdate
from tracehive.store.usage import Usage, model_usage

# What the stores answer, in this order: a record's own fields, then its namespaces.
SESSION_COLUMNS = (
    "project", "session_id", "session_name", "source", "user_id", "start_time", "end_time",
    "duration_ms", "event_count", "error_count", *USAGE_FIELDS, *NAMESPACES,
)  # fmt: skip
EVENT_COLUMNS = (
    "project", "event_id", "session_id", "trace_id", "parent_id", "event_type", "event_name",
    "start_time", "end_time", "duration_ms", "error", *NAMESPACES,
)  # fmt: skip


def dumps(value: Any) -> str:
    """A namespace as JSON text; a missing one is ``{}``."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode() if value else "{}"


def _namespace_text(event: Event, ns: str) -> str:
    texts = event.namespace_json
    if texts is not None:
        return texts.get(ns, "{}")
    return dumps(event.namespaces.get(ns))


_META_LENGTH = struct.Struct("<I")  # the length of a serialized batch's JSON part
_TEXT = pa.string()
_TIME = pa.timestamp("us")
EVENT_SCHEMA = pa.schema(
    [
        *((name, _TEXT) for name in EVENT_COLUMNS[:7]),
        ("start_time", _TIME),
        ("end_time", _TIME),
        ("duration_ms", pa.float64()),
        ("error", _TEXT),
        *((ns, _TEXT) for ns in NAMESPACES),
    ]
)


def unique_events(events: list[Event]) -> list[Event]:
    """One copy of each (project, session_id, event_id): a client's retry inside one batch is stored once."""
    return list({(e.project, e.session_id, e.event_id): e for e in events}.values())


def event_table(unique: list[Event]) -> pa.Table:
    """Events (each once, see :func:`unique_events`) as an Arrow table of :data:`EVENT_SCHEMA`.
    Every text column is cut from one Arrow array and both times from another: a request of ten
    spans pays for three conversions instead of one per column (bench/RESULTS.md)."""
    count = len(unique)
    texts = [e.project for e in unique]
    for name in ("event_id", "session_id", "trace_id", "parent_id", "event_type", "event_name", "error"):
        texts += [getattr(e, name) for e in unique]
    for ns in NAMESPACES:
        texts += [_namespace_text(e, ns) for e in unique]
    text = pa.array(texts, _TEXT)
    column = [text.slice(i * count, count) for i in range(8 + len(NAMESPACES))]
    times = pa.array([e.start_ns // 1000 for e in unique] + [e.end_ns // 1000 for e in unique], _TIME)
    arrays = [
        *column[:7],
        times.slice(0, count),
        times.slice(count, count),
        pa.array([e.duration_ms for e in unique], pa.float64()),
        *column[7:],
    ]
    return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)


# (project, session_id, first start, last end, events, errors, model calls, prompt tokens,
# completion tokens, total tokens, cost or None when no model event had one)
SessionTotals = tuple[str, str, int, int, int, int, int, int, int, int, float | None]


def session_totals(events: Iterable[tuple[str, str, int, int, bool, Usage | None]]) -> list[SessionTotals]:
    """What events, given as (project, session_id, start, end, is_error, usage of a model event or
    None), add to each session they belong to (see :attr:`Rows.totals`)."""
    totals: dict[tuple[str, str], list[Any]] = {}
    for project, session_id, start, end, is_error, usage in events:
        found = totals.get((project, session_id))
        if found is None:
            found = totals[(project, session_id)] = [start, end, 0, 0, 0, 0, 0, 0, None]
        found[0] = min(found[0], start)
        found[1] = max(found[1], end)
        found[2] += 1
        found[3] += is_error
        if usage is not None:
            add_usage(found, 4, (1, *usage))
    return [(project, session_id, *values) for (project, session_id), values in totals.items()]


def add_usage(totals: list[Any], at: int, usage: tuple[int, int, int, int, float | None]) -> None:
    """Add roll-ups (model calls, prompt, completion and total tokens, cost or None) to the ones held
    in ``totals[at:at + 5]``. Cost stays None until some model call has one."""
    calls, prompt, completion, total, cost = usage
    totals[at] += calls
    totals[at + 1] += prompt
    totals[at + 2] += completion
    totals[at + 3] += total
    if cost is not None:
        totals[at + 4] = cost if totals[at + 4] is None else totals[at + 4] + cost


@dataclass(slots=True)
class Rows:
    """A batch in the form the stores write it: the events as one Arrow table and the session
    updates as they are. Ingest builds it where it maps the request (a worker process), so that the
    single writer only concatenates tables and inserts them."""

    events: pa.Table
    sessions: list[SessionUpdate]
    # Per session the events touch: (project, session_id, first start, last end in microseconds,
    # events, errors, then the model calls' roll-ups); a session may appear more than once (from
    # several requests).
    totals: list[SessionTotals]
    # Sessions across requests: (project, trace_id, session_id) for each trace whose spans name a
    # session, and (project, trace_id) of traces with spans that named none (their session_id is
    # the trace id). The store joins the latter to the session the trace names, whenever it comes.
    claims: list[tuple[str, str, str]] = field(default_factory=list)
    orphans: list[tuple[str, str]] = field(default_factory=list)
    # These rows as bytes (:meth:`to_bytes`), once made. Rows are not changed after they are built,
    # so a batch mapped in a worker process crosses to the server in this form (see __reduce__)
    # and the ingest log writes it as it came.
    encoded: bytes | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, batch: Batch) -> Rows:
        unique = unique_events(batch.events)
        totals = session_totals(
            (
                e.project,
                e.session_id,
                e.start_ns // 1000,
                e.end_ns // 1000,
                e.error is not None,
                model_usage(e.event_type, e.namespaces.get("metadata")),
            )
            for e in unique
        )
        # An event with no trace (one written through HoneyHive's REST routes) neither claims nor joins one.
        claims = {(e.project, e.trace_id): e.session_id for e in unique if e.trace_id and not e.session_from_trace}
        orphans = {(e.project, e.trace_id) for e in unique if e.trace_id and e.session_from_trace}
        return cls(
            event_table(unique),
            list(batch.sessions),
            totals,
            [(p, t, s) for (p, t), s in claims.items() if s != t],
            list(orphans),
        )

    @classmethod
    def empty(cls) -> Rows:
        return cls(EVENT_SCHEMA.empty_table(), [], [])

    @classmethod
    def concat(cls, parts: list[Rows]) -> Rows:
        if len(parts) == 1:
            return parts[0]
        return cls(
            pa.concat_tables([p.events for p in parts]),
            [u for p in parts for u in p.sessions],
            [t for p in parts for t in p.totals],
            [c for p in parts for c in p.claims],
            [o for p in parts for o in p.orphans],
        )

    def first_claims(self) -> dict[tuple[str, str], str]:
        """(project, trace_id) -> the session the trace named first in these rows."""
        named: dict[tuple[str, str], str] = {}
        for project, trace_id, session_id in self.claims:
            named.setdefault((project, trace_id), session_id)
        return named

    def orphans_claimed_here(self) -> tuple[dict[tuple[str, str], str], list[tuple[str, str]]]:
        """The orphan traces these rows also name a session for (a request the writer merged with
        another), and the rest, for the store to look up."""
        named = self.first_claims()
        found = {key: named[key] for key in self.orphans if key in named}
        return found, [key for key in self.orphans if key not in found]

    def rejoined(self, sessions: dict[tuple[str, str], str]) -> Rows:
        """These rows with the events of the traces in ``sessions`` ((project, trace_id) -> session
        id) that named no session moved into it, with their totals and session updates."""
        table = self.events
        projects, traces = table["project"].to_pylist(), table["trace_id"].to_pylist()
        old = table["session_id"].to_pylist()
        new = [sessions.get((p, t), s) if s == t else s for p, t, s in zip(projects, traces, old, strict=True)]
        table = table.set_column(table.schema.get_field_index("session_id"), "session_id", pa.array(new, pa.string()))
        # A session may appear in the totals more than once: the moved ones just change their key.
        totals = [(t[0], sessions.get((t[0], t[1]), t[1]), *t[2:]) for t in self.totals]
        updates = []
        for update in self.sessions:
            moved = sessions.get((update.project, update.session_id))
            updates.append(update if moved is None else replace(update, session_id=moved))
        rejoined = {key for key in sessions}
        orphans = [key for key in self.orphans if key not in rejoined]
        return Rows(table, updates, totals, self.claims, orphans)

    def __len__(self) -> int:
        return self.events.num_rows + len(self.sessions)

    def to_bytes(self) -> bytes:
        """The rows as bytes, the form of an ingest log record (no pickle: a data folder must never
        be able to run code): the session updates, totals and trace claims as JSON, then the events
        as one Arrow record batch of :data:`EVENT_SCHEMA` (fixed, so not written). Arrow's format
        writes only what a sliced column holds, where pickling a slice copies its whole buffer."""
        if self.encoded is None:
            meta = orjson.dumps(
                {"sessions": self.sessions, "totals": self.totals, "claims": self.claims, "orphans": self.orphans},
                option=orjson.OPT_NON_STR_KEYS,
            )
            events = b""
            if self.events.num_rows:
                (batch,) = self.events.combine_chunks().to_batches()
                events = batch.serialize().to_pybytes()
            self.encoded = _META_LENGTH.pack(len(meta)) + meta + events
        return self.encoded

    @classmethod
    def from_bytes(cls, payload: bytes) -> Rows:
        (length,) = _META_LENGTH.unpack_from(payload)
        start = _META_LENGTH.size
        meta = orjson.loads(payload[start : start + length])
        events = EVENT_SCHEMA.empty_table()
        if len(payload) > start + length:
            batch = pa.ipc.read_record_batch(pa.py_buffer(payload[start + length :]), EVENT_SCHEMA)
            events = pa.Table.from_batches([batch])
        return cls(
            events,
            [SessionUpdate(**u) for u in meta["sessions"]],
            [tuple(t) for t in meta["totals"]],
            [tuple(c) for c in meta["claims"]],
            [tuple(o) for o in meta["orphans"]],
            payload,
        )

    def __reduce__(self) -> tuple:
        return Rows.from_bytes, (self.to_bytes(),)

    def projects(self) -> set[str]:
        """Every project the rows write to."""
        return {*pc.unique(self.events["project"]).to_pylist(), *(u.project for u in self.sessions)}
