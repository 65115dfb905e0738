"""ShardedDict (python_jobs/serve/sharded.py) behaves as a dict, spread over its shards."""

from __future__ import annotations

import random

import pytest

from python_jobs.serve.sharded import SHARDS, PairMap, ShardedDict, pair_key


def test_random_operations_give_what_a_dict_gives() -> None:
    rng = random.Random(7)
    sharded: ShardedDict[object, int] = ShardedDict()
    plain: dict[object, int] = {}
    keys: list[object] = [f"T{n}" for n in range(400)] + [
        (f"C{n}", f"K{n % 7}") for n in range(300)
    ]
    for step in range(20_000):
        key = rng.choice(keys)
        operation = rng.random()
        if operation < 0.5:
            sharded[key] = plain[key] = step
        elif operation < 0.7:
            assert sharded.pop(key, -1) == plain.pop(key, -1)
        elif operation < 0.8 and key in plain:
            del sharded[key]
            del plain[key]
        else:
            assert sharded.get(key) == plain.get(key)
            assert (key in sharded) == (key in plain)
    assert len(sharded) == len(plain)
    assert dict(sharded.items()) == plain
    assert sorted(map(str, sharded)) == sorted(map(str, plain))
    sharded.update({"new": 1})
    assert sharded["new"] == 1 and sharded.setdefault("new", 2) == 1
    # the entries are spread: no shard holds most of them
    assert max(len(shard) for shard in sharded.shards()) < len(sharded) / 10
    assert len(sharded.shards()) == SHARDS


def test_missing_keys_raise_as_a_dict_does() -> None:
    sharded: ShardedDict[str, int] = ShardedDict()
    with pytest.raises(KeyError, match="T1"):
        sharded["T1"]
    with pytest.raises(KeyError, match="T1"):
        sharded.pop("T1")
    with pytest.raises(KeyError):
        del sharded["T1"]
    assert sharded.get("T1", 3) == 3


def test_pair_maps_stay_out_of_the_cyclic_collector() -> None:
    """A dict of tuples is untracked by a collection and tracked again by the next insert of
    a new tuple, so every collection walked millions of entries; PairMap's dicts hold
    strings and ints only and are never tracked, however they are filled."""
    import gc

    pairs: PairMap[str | None, int] = PairMap()
    pairs.update((f"T{n}", (f"K{n % 9}" if n % 3 else None, n)) for n in range(5_000))
    gc.collect()
    pairs[pair_key("C1", "K1")] = ("T9", 10)
    tracked = [d for m in (pairs.firsts, pairs.seconds) for d in m.shards() if gc.is_tracked(d)]
    assert tracked == []
    assert pairs.get(pair_key("C1", "K1")) == ("T9", 10) and pairs.get("nope") is None
    assert pairs.get("T4") == ("K4", 4) and pairs.get("T3") == (None, 3)
    assert len(pairs) == 5_001 and "T1" in pairs
    # the same entries as a dict of tuples: tracked again at once by an insert
    plain = {f"T{n}": (f"K{n}", n) for n in range(100)}
    gc.collect()
    plain["new"] = (f"K{len(plain)}", 1)  # a tuple built at run time (a literal is a constant)
    assert gc.is_tracked(plain)
    # drop: what `keep` refuses, in one shard
    dropped = sum(pairs.drop(part, lambda _, n: n >= 2_500) for part in range(SHARDS))
    assert (
        dropped == 2_501 and pairs.get("T2499") is None
    )  # with the pair (10) and pairs.get("T2500") is not None


def test_pair_keys_are_unambiguous() -> None:
    assert pair_key("a:b", "c") != pair_key("a", ":bc")
    assert pair_key("ab", "c") != pair_key("a", "bc")
