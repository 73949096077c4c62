"""How flattened dotted keys (``prefs.langs.0``) nest back into objects and lists.

A key set's nesting depends on the keys alone, so it is worked out once per key set (a *shape*
whose leaves name the keys) and filled from each span's values.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

# Spans of one kind repeat the same few keys; many keys are shaped afresh, keeping the cache small.
_CACHED_KEYS = 16


@lru_cache(maxsize=1024)
def _shape(keys: tuple[str, ...]) -> Any:
    """How dotted keys (``prefs.theme``) nest, with a :class:`Leaf` naming each value's key: it
    depends on the keys alone. An object whose keys are exactly 0..n-1 becomes a list (``langs.0``,
    ``langs.1``); where a key is both a value and a prefix of others, the value keeps its key and
    the longer keys stay flat."""
    root: dict[str, Any] = {}
    for key in sorted(keys, key=lambda k: k.count(".")):
        parts = key.split(".")
        node: dict[str, Any] | None = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if isinstance(child, Leaf):
                node = None
                break
            node = child
        if node is None or parts[-1] in node:
            root[key] = Leaf(key)
        else:
            node[parts[-1]] = Leaf(key)
    return _finish(root)


class Leaf:
    """Marks a value's place in a shape, so that a dict value is not taken for a branch."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key


def _finish(node: dict[str, Any] | Leaf) -> Any:
    if isinstance(node, Leaf):
        return node
    out = {k: _finish(v) for k, v in node.items()}
    if out and all(k.isdigit() for k in out) and sorted(int(k) for k in out) == list(range(len(out))):
        return [out[str(i)] for i in range(len(out))]
    return out


def fill(shape: Any, flat: dict[str, Any]) -> Any:
    kind = type(shape)
    if kind is Leaf:
        return flat[shape.key]
    if kind is list:
        return [fill(child, flat) for child in shape]
    return {key: fill(child, flat) for key, child in shape.items()}


def leaf_shape(keys: list[str], cut: int) -> Any:
    """The nesting of ``keys`` without their first ``cut`` characters (see :func:`_shape`); its
    leaves name the full attribute keys, so it fills straight from the span's attributes. Keys
    without a dot stay as they are (``0`` and ``1`` alone do not make a list)."""
    short = tuple(key[cut:] for key in keys)
    if not any("." in key for key in short):
        return {part: Leaf(key) for part, key in zip(short, keys, strict=True)}
    shape = _shape(short) if len(short) <= _CACHED_KEYS else _shape.__wrapped__(short)
    return _rename_leaves(shape, dict(zip(short, keys, strict=True)))


def _rename_leaves(shape: Any, full: dict[str, str]) -> Any:
    if type(shape) is Leaf:
        return Leaf(full[shape.key])
    if type(shape) is list:
        return [_rename_leaves(child, full) for child in shape]
    return {key: _rename_leaves(child, full) for key, child in shape.items()}
