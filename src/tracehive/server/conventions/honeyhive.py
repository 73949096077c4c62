"""The HoneyHive SDK's convention (1.x): identity in ``honeyhive.*`` keys (with copies under
Traceloop's association properties) and each namespace leaf as its own flattened attribute
``honeyhive_<namespace>.<dotted path>``."""

from __future__ import annotations

from tracehive import attributes as A
from tracehive.model import NAMESPACES
from tracehive.server.conventions.base import DROP, Convention, Key, Prefix

CONVENTION = Convention(
    name="honeyhive",
    keys=(
        Key(A.HH_PROJECT, "project", "The project."),
        Key(A.HH_SESSION_ID, "session_id", "The session id."),
        Key(A.HH_SESSION_NAME, "session_name", "The session's name."),
        Key(A.HH_SOURCE, "source", "Where it ran."),
        Key(A.HH_EVENT_TYPE, "event_type", "model, tool or chain."),
        Key(A.HH_EVENT_NAME, "event_name", "The event's name."),
        Key(A.HH_ERROR, "error", "The error text."),
        Key(A.HH_DURATION_MS, DROP, "The span's own times say it."),
        Key(A.HH_ERROR_TYPE, DROP, "Marks the SDK's `<function>_error` span (skipped, see mapping)."),
    ),
    prefixes=tuple(
        Prefix(f"{A.HH_NAMESPACE_PREFIX}{ns}.", ns, f"One leaf of the {ns} namespace, by its dotted path.")
        for ns in NAMESPACES
    ),
)
