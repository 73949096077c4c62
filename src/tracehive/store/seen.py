"""Which sessions a store may already hold, answered without asking it.

Most sessions a batch touches are new. DuckDB has no cheap point lookup on the sessions table's
key (a lookup scans the key columns), so the store keeps a Bloom filter of the keys it has written:
"no" is certain, and those sessions are inserted straight away; only a "maybe" costs a lookup. A
false "maybe" (about 0.1% at a million sessions) costs only that lookup.
"""

from __future__ import annotations

from collections.abc import Iterable

_BITS = 1 << 26  # 8 MiB


class SeenKeys:
    def __init__(self, keys: Iterable[tuple[str, str]] = ()) -> None:
        self._bits = bytearray(_BITS // 8)
        for key in keys:
            self.add(key)

    @staticmethod
    def _positions(key: tuple[str, str]) -> tuple[int, int]:
        # Two positions from the two halves of one 64-bit hash (stable within the process, which is
        # all the filter needs: it is rebuilt from the store at each start).
        digest = hash(key)
        return digest & (_BITS - 1), (digest >> 32) & (_BITS - 1)

    def add(self, key: tuple[str, str]) -> None:
        for position in self._positions(key):
            self._bits[position >> 3] |= 1 << (position & 7)

    def __contains__(self, key: tuple[str, str]) -> bool:
        bits = self._bits
        return all(bits[position >> 3] & (1 << (position & 7)) for position in self._positions(key))
