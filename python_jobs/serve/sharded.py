"""A dict split into many small dicts by the key's hash, for the in-process state's big maps.

Why: a dict grows by rebuilding its whole table in one C call that holds the interpreter
lock. The state's maps hold millions of entries at bank scale (every transaction of the last
weeks, every first-seen pair), so one insert now and then stalled every request in flight
for the rebuild of millions of entries (seen as a half-second decision on the 10M lake).
Split into SHARDS dicts, a growth rebuilds one shard: a few hundredth of the entries.

Only the in-process backend uses it (python_jobs/serve/state.py OnlineState); lookups cost
one hash (cached for strings) and one list index more than a dict's. PairMap keeps pairs of
atomic values in two of them, out of the cyclic collector's way (its docstring says why).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from itertools import chain
from typing import Generic, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")

SHARDS = 256  # a power of two: the shard is the hash's low bits


class ShardedDict(MutableMapping[K, V]):
    """A MutableMapping over SHARDS dicts; iteration goes shard by shard (no global order)."""

    __slots__ = ("_shards",)

    def __init__(self) -> None:
        self._shards: list[dict[K, V]] = [{} for _ in range(SHARDS)]

    def shard(self, key: K) -> dict[K, V]:
        return self._shards[hash(key) & (SHARDS - 1)]

    def __getitem__(self, key: K) -> V:
        return self._shards[hash(key) & (SHARDS - 1)][key]

    def __setitem__(self, key: K, value: V) -> None:
        self._shards[hash(key) & (SHARDS - 1)][key] = value

    def __delitem__(self, key: K) -> None:
        del self._shards[hash(key) & (SHARDS - 1)][key]

    def __contains__(self, key: object) -> bool:
        return key in self._shards[hash(key) & (SHARDS - 1)]

    def __iter__(self) -> Iterator[K]:
        for shard in self._shards:
            yield from shard

    def __len__(self) -> int:
        return sum(len(shard) for shard in self._shards)

    # the shards' own views, chained: Mapping's mixins would look every key up again in
    # Python (seconds over a million tracks, for the readiness's sizes)
    def values(self) -> Iterator[V]:  # type: ignore[override]
        return chain.from_iterable(shard.values() for shard in self._shards)

    def items(self) -> Iterator[tuple[K, V]]:  # type: ignore[override]
        return chain.from_iterable(shard.items() for shard in self._shards)

    @overload
    def get(self, key: K, /) -> V | None: ...
    @overload
    def get(self, key: K, default: V | D, /) -> V | D: ...

    def get(self, key: K, default: object = None) -> object:
        return self._shards[hash(key) & (SHARDS - 1)].get(key, default)

    _MISSING = object()

    def pop(self, key: K, default: object = _MISSING) -> object:  # type: ignore[override]
        shard = self._shards[hash(key) & (SHARDS - 1)]
        if default is ShardedDict._MISSING:
            return shard.pop(key)
        return shard.pop(key, default)

    def shards(self) -> list[dict[K, V]]:
        """The dicts themselves, for work done one shard at a time (pruning)."""
        return self._shards


A = TypeVar("A")
B = TypeVar("B")


def pair_key(first: str, second: str) -> str:
    """One string for a pair of strings, unambiguous whatever they hold (length-prefixed)."""
    return f"{len(first)}:{first}{second}"


class PairMap(Generic[A, B]):
    """key -> (a, b) for atomic a and b (str, int, None), held as two ShardedDicts of str keys.

    Why not a dict of tuples: CPython's collector untracks a dict whose keys and values are
    all atomic (a tuple of atomics is untracked in turn), and tracks it again, as a young
    object, at the next insert of a new tuple. The next collection then walks all of it: on a
    10M-transaction state, collections of 0.1 to 2 s every few dozen requests. Strings and
    ints never make a dict tracked, so these dicts stay out of every collection."""

    __slots__ = ("firsts", "seconds")

    def __init__(self) -> None:
        self.firsts: ShardedDict[str, A] = ShardedDict()
        self.seconds: ShardedDict[str, B] = ShardedDict()

    def get(self, key: str) -> tuple[A, B] | None:
        shard = hash(key) & (SHARDS - 1)
        first = self.firsts.shards()[shard].get(key, _ABSENT)
        if first is _ABSENT:
            return None
        return first, self.seconds.shards()[shard][key]  # type: ignore[return-value]

    def __setitem__(self, key: str, value: tuple[A, B]) -> None:
        shard = hash(key) & (SHARDS - 1)
        self.firsts.shards()[shard][key] = value[0]
        self.seconds.shards()[shard][key] = value[1]

    def __contains__(self, key: str) -> bool:
        return key in self.firsts

    def __len__(self) -> int:
        return len(self.firsts)

    def update(self, items: Iterable[tuple[str, tuple[A, B]]]) -> None:
        for key, value in items:
            self[key] = value

    def drop(self, part: int, keep: Callable[[A, B], bool]) -> int:
        """Deletes the entries of shard `part` that `keep` refuses; returns how many."""
        firsts, seconds = self.firsts.shards()[part], self.seconds.shards()[part]
        gone = [key for key, first in firsts.items() if not keep(first, seconds[key])]
        for key in gone:
            del firsts[key]
            del seconds[key]
        return len(gone)


_ABSENT = object()
