"""Safe JSON serialisation of whatever a traced function receives or returns."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import uuid
from typing import Any

import pytest
from pydantic import BaseModel

from tracehive.sdk.serialize import CYCLE_MARKER, DEPTH_MARKER, MAX_REPR, dumps, jsonable


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: float
    label: str | None = None


class User(BaseModel):
    name: str
    tags: list[str] = []


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class BadDump(BaseModel):
    x: int = 1

    def model_dump(self, **kwargs: Any) -> Any:
        raise RuntimeError("cannot dump")


def loads(value: Any) -> Any:
    return json.loads(dumps(value))


@pytest.mark.parametrize(
    "value",
    [
        "text", "", "ünïcødé ✓", 0, -7, 2**62, 1.5, -0.0, True, False, None, [], {},
        [1, "a", None, True, 2.5, [[]], {"k": {"k": [False]}}],
        {"preferences": {"theme": "dark"}, "age": 25, "is_beta": True, "tags": ["a", "b"], "n": None, "f": 1.5},
    ],
)  # fmt: skip
def test_json_values_keep_their_exact_types(value: Any) -> None:
    back = loads(value)
    assert back == value
    assert type(back) is type(value)
    assert json.dumps(back, sort_keys=True) == json.dumps(value, sort_keys=True)


def test_container_and_object_conversions() -> None:
    assert loads((1, ("a", 2.0))) == [1, ["a", 2.0]]
    assert loads(Point(1, 2.5)) == {"x": 1, "y": 2.5, "label": None}
    assert loads(User(name="ann", tags=["x"])) == {"name": "ann", "tags": ["x"]}
    assert loads(b"\x00" * 10) == "<bytes: 10 bytes>"
    assert loads(bytearray(3)) == "<bytearray: 3 bytes>"
    assert sorted(loads({3, 1, 2})) == [1, 2, 3]
    assert loads({1: "a", None: "b", 2.5: "c"}) == {"1": "a", "null": "b", "2.5": "c"}
    assert loads(Color.RED) == "red"
    assert loads(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert loads(datetime.date(2024, 5, 1)) == "2024-05-01"


def test_other_objects_become_a_truncated_repr() -> None:
    class Long:
        def __repr__(self) -> str:
            return "L" * 10_000

    text = loads(Long())
    assert len(text) == MAX_REPR and text.endswith("...")
    assert loads(object()).startswith("<object object at")
    assert loads(BadRepr()) == "<BadRepr>"
    assert loads(BadDump()) == "BadDump(x=1)"


def test_cycles_are_cut_with_a_marker() -> None:
    items: list[Any] = [1]
    items.append(items)
    mapping: dict[str, Any] = {"name": "root"}
    mapping["self"] = mapping
    assert loads(items) == [1, CYCLE_MARKER]
    assert loads(mapping) == {"name": "root", "self": CYCLE_MARKER}
    point = Point(1, 2.0)
    point.label = point  # type: ignore[assignment]
    assert loads(point) == {"x": 1, "y": 2.0, "label": CYCLE_MARKER}


def test_shared_but_acyclic_values_are_not_cycles() -> None:
    shared = {"k": 1}
    assert loads({"a": shared, "b": shared, "c": [shared, shared]}) == {
        "a": {"k": 1},
        "b": {"k": 1},
        "c": [{"k": 1}, {"k": 1}],
    }


def test_deep_nesting_is_cut_with_a_marker() -> None:
    deep: Any = "bottom"
    for _ in range(1000):
        deep = [deep]
    back = loads({"deep": deep})
    depth = 0
    node = back["deep"]
    while isinstance(node, list):
        node, depth = node[0], depth + 1
    assert node == DEPTH_MARKER
    assert depth < 100


def test_values_orjson_rejects_still_serialise() -> None:
    assert loads(2**80) == 2**80
    assert loads([math.nan, math.inf, 1.0]) == [None, None, 1.0]
    assert loads({"bad": "\ud800x", "ok": 1}) == {"bad": "?x", "ok": 1}
    assert loads({(1, 2): "tuple key", "s": [1, 2, 3]}) == {"(1, 2)": "tuple key", "s": [1, 2, 3]}


def test_jsonable_returns_plain_data() -> None:
    assert jsonable({"p": Point(1, 2.0), "t": (1,)}) == {"p": {"x": 1, "y": 2.0, "label": None}, "t": [1]}
