"""ShardedDict (python_jobs/serve/sharded.py) behaves as a dict, spread over its shards."""

from __future__ import annotations

import random

import pytest

from python_jobs.serve.sharded import SHARDS, ShardedDict


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
