"""The vocabulary of the convention tables: what a row says and the small named transforms rows use.

A convention is a list of :class:`Key` rows (one attribute key each) and :class:`Prefix` rows (every
key under a prefix, read together: indexed messages, flattened namespaces). A row's ``target`` is
where the value lands:

- an event or session field: ``project``, ``session_id``, ``session_name``, ``source``,
  ``event_type``, ``event_name``, ``error``, ``record``, ``user_id`` (into
  ``user_properties.user_id`` and the session's user);
- a whole namespace (``inputs``, ``config``, ...): the value is a JSON object merged into it;
- a path inside a namespace (``config.model``, ``metadata.prompt_tokens``): set unless a
  convention of higher precedence set it first;
- ``session.`` and a namespace or a path inside one (``session.metadata``,
  ``session.metadata.tags``): the same, on the span's session instead of its event (what a
  convention says about the whole trace, such as Langfuse's trace metadata);
- :data:`DROP`: read by nobody, kept out of metadata (copies, noise).

Keys no row names are copied into ``metadata`` as they are (dotted keys nested).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from tracehive.model import NAMESPACES

DROP = "-"
SESSION = "session."  # a target on the session: session.<namespace>[.<path>]
FIELDS = ("project", "session_id", "session_name", "source", "event_type", "event_name", "error", "record", "user_id")


class ConventionError(ValueError):
    """An attribute a convention defines holds a value of the wrong shape; the message names it."""


@dataclass(frozen=True, slots=True)
class Key:
    key: str
    target: str
    doc: str
    read: Callable[[Any], Any] | None = None  # turns the value into what the target holds; None: skip


@dataclass(frozen=True, slots=True)
class Prefix:
    prefix: str
    target: str
    doc: str
    # Gets the keys under the prefix nested (``0.message.role`` -> [{"message": {"role": ...}}]).
    read: Callable[[Any], Any] | None = None


@dataclass(frozen=True, slots=True)
class Convention:
    name: str
    keys: tuple[Key, ...]
    prefixes: tuple[Prefix, ...] = ()


def is_namespace(target: str) -> bool:
    return target in NAMESPACES


# --- transforms shared by several conventions ------------------------------------------------------


def json_value(value: Any) -> Any:
    """A JSON text parsed; a value that is not JSON text is kept as it came."""
    if isinstance(value, str | bytes):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def json_object(value: Any) -> dict[str, Any] | None:
    """A JSON object (or its text); anything else is not one (None: the row is skipped)."""
    parsed = json_value(value)
    return parsed if isinstance(parsed, dict) else None


def integer(value: Any) -> int | None:
    """A token count: an int, or a number or numeric text; anything else is skipped."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def text(value: Any) -> str | None:
    return None if value is None else str(value)


def kinds(table: dict[str, str]) -> Callable[[Any], str | None]:
    """A span kind's event type, looked up case-insensitively; an unknown kind sets none."""
    upper = {k.upper(): v for k, v in table.items()}

    def event_type(value: Any) -> str | None:
        return upper.get(str(value).upper())

    return event_type


def parsed_items(parse: Callable[[Any], Any], items: list[Any]) -> list[Any] | None:
    """Each item parsed, those that parse to None left out; None when none is left (a message
    list no convention could read is no list at all)."""
    found = [parsed for parsed in map(parse, items) if parsed is not None]
    return found or None


def first_item(found: list[Any] | None) -> Any:
    """The first of ``found`` (an answer is its first output message), or None."""
    return found[0] if found else None


def as_list(value: Any) -> list[Any]:
    """Indexed attributes nest into a list when their indices run 0..n-1, else into an object
    keyed by index text; either way, the items in index order."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [value[k] for k in sorted(value, key=lambda k: int(k) if k.isdigit() else 1 << 62)]
    return []


def obj(value: Any) -> dict[str, Any]:
    """A nested object of a message, or an empty one when what came is not an object."""
    return value if isinstance(value, dict) else {}


def openai_tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """A tool call as HoneyHive (and OpenAI's chat API) shows it; arguments stay JSON text."""
    if arguments is not None and not isinstance(arguments, str):
        arguments = orjson.dumps(arguments).decode()
    call: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if call_id is not None:
        call = {"id": call_id, **call}
    return call


def clean(message: dict[str, Any]) -> dict[str, Any]:
    """A message without its empty fields."""
    return {k: v for k, v in message.items() if v is not None and v != []}
