"""tracehive's own convention, written by :mod:`tracehive.sdk`: identity in ``tracehive.*`` keys and
each namespace as one attribute holding a JSON object, so nested values and their types cross OTLP
exactly."""

from __future__ import annotations

from typing import Any

import orjson

from tracehive import attributes as A
from tracehive.model import NAMESPACES
from tracehive.server.conventions.base import Convention, ConventionError, Key


def _namespace(key: str):
    def read(value: Any) -> dict[str, Any]:
        if type(value) is dict:
            return value
        try:  # the hottest reader: every span of our SDK has several
            parsed = orjson.loads(value)
        except (orjson.JSONDecodeError, TypeError):
            parsed = None
        if type(parsed) is not dict:
            raise ConventionError(f"attribute {key!r} must hold a JSON object")
        return parsed

    return read


CONVENTION = Convention(
    name="ours",
    keys=(
        Key(A.PROJECT, "project", "The project the span belongs to."),
        Key(A.SESSION_ID, "session_id", "The session (one user request)."),
        Key(A.SESSION_NAME, "session_name", "The session's name."),
        Key(A.SOURCE, "source", "Where it ran (production, staging...)."),
        Key(A.EVENT_TYPE, "event_type", "model, tool, chain or function."),
        Key(A.EVENT_NAME, "event_name", "The event's name (else the span's)."),
        Key(A.ERROR, "error", "The error text."),
        Key(A.RECORD, "record", "`session`: the span is a record about its session, not an event."),
        *(
            Key(
                f"{A.NAMESPACE_PREFIX}{ns}",
                ns,
                f"The {ns} namespace as a JSON object.",
                _namespace(f"{A.NAMESPACE_PREFIX}{ns}"),
            )
            for ns in NAMESPACES
        ),
    ),
)
