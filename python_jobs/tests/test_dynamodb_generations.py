"""Loading the DynamoDB online state in generations (python_jobs/serve/dynamodb_generations.py,
docs/decisions/0021): a published export loaded beside the live state while a writer keeps
applying, then switched to atomically, against moto's DynamoDB server on 127.0.0.1.

The reference is always the in-process OnlineState warmed from the same export and handed
every record applied after the export's cut, in the same order: after a switch the table must
give the same features and hold every record exactly once (equal counters). A writer thread
(the Kinesis consumer's stand-in, its own state object on the same table) applies records at
each stage of the load, told when by the load's stage hook, so the applies that must be fenced
(between the bump and the switch) land there on every run, not by timing.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from python_jobs.cli import main
from python_jobs.lake.layout import Lake
from python_jobs.serve.contract import Transaction
from python_jobs.serve.dynamodb_generations import (
    GenerationalState,
    GenerationConflict,
)
from python_jobs.serve.dynamodb_state import DynamoDBState, table_name
from python_jobs.serve.service import open_state
from python_jobs.serve.state import OnlineState
from python_jobs.serve.warmup import warm
from python_jobs.tests.exports import publish
from python_jobs.tests.moto_s3 import dynamodb_client
from python_jobs.tests.state_scenarios import T0, features, play, probes, records


def items_under(client: Any, table: str, prefix: str) -> int:
    count = 0
    for page in client.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="begins_with(pk, :p)",
        ExpressionAttributeValues={":p": {"S": prefix}},
        ConsistentRead=True,
    ):
        count += page["Count"]
    return count


class Writer:
    """The consumer's stand-in: a thread applying the batches it is handed, through its own
    GenerationalState on the table, reading the pointer at the start of each batch as the
    consumer does (and again after each apply: the fence), never otherwise."""

    def __init__(self, client: Any, table: str) -> None:
        self.state = GenerationalState(client, table, pointer_seconds=3600.0, grace_seconds=0)
        self._work: queue.Queue[tuple[list[Transaction], threading.Event] | None] = queue.Queue()
        self._started: queue.Queue[None] = queue.Queue()
        self._done: queue.Queue[BaseException | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (work := self._work.get()) is not None:
            batch, go = work
            try:
                self.state.read_pointer()  # a batch starts (stream_consumer.Consumer._decide)
                self._started.put(None)
                if not go.wait(timeout=120):
                    raise TimeoutError("the batch was never released")
                play(self.state, batch)
                self._done.put(None)
            except BaseException as error:  # handed to the test's thread
                self._done.put(error)

    def start(self, batch: list[Transaction]) -> threading.Event:
        """Starts `batch`: its pointer is read now; it applies once the event is set."""
        go = threading.Event()
        self._work.put((batch, go))
        self._started.get(timeout=120)
        return go

    def wait(self) -> None:
        error = self._done.get(timeout=120)
        if error is not None:
            raise error

    def apply(self, batch: list[Transaction]) -> None:
        """Has the thread apply `batch` now, and waits for it (bounded)."""
        self.start(batch).set()
        self.wait()

    def stop(self) -> None:
        self._work.put(None)
        self._thread.join(timeout=60)


@pytest.fixture
def table(endpoint: str, dynamodb_url: str) -> tuple[Any, str]:
    """moto's client and the name of a fresh table (the environment points boto3 at it)."""
    return dynamodb_client(endpoint), table_name(dynamodb_url)


@pytest.fixture
def writer(table: tuple[Any, str]) -> Iterator[Writer]:
    running = Writer(*table)
    yield running
    running.stop()


HISTORY = records(1, 60, T0 - timedelta(days=20))  # the first export
STREAMED = records(100, 30, HISTORY[-1].event_ts)  # applied by the consumer after it


def reference(lake: Lake, after_cut: list[Transaction]) -> OnlineState:
    """The in-process state: the lake's export, then every record after its cut."""
    online = OnlineState()
    warm(online, lake)
    play(online, after_cut)
    return online


def test_a_load_into_an_empty_table_gives_the_consumer_the_history(
    tmp_path: Path, dynamodb_url: str, table: tuple[Any, str]
) -> None:
    lake = Lake(tmp_path / "lake")
    version = publish(lake, HISTORY)
    argv = ["state", "load", "--lake", str(lake.root), "--state", dynamodb_url]
    assert main([*argv, "--grace-seconds", "0"]) == 0
    consumer = open_state(dynamodb_url)  # the consumer's factory: the active generation
    assert isinstance(consumer, GenerationalState) and consumer.loaded() == version
    online = OnlineState()
    warm(online, lake)
    assert consumer.size() == online.size() and consumer.applied == len(HISTORY)
    # the consumer's first records see the export's history, as the in-process state does
    assert play(consumer, STREAMED[:12]) == play(online, STREAMED[:12])
    assert features(consumer, probes(STREAMED[11].event_ts)) == features(
        online, probes(STREAMED[11].event_ts)
    )
    # the same export again: nothing loaded, the applied records kept
    assert main([*argv, "--grace-seconds", "0"]) == 0
    assert consumer.read_pointer().active == "g1" and consumer.applied == len(HISTORY) + 12


def test_a_load_while_the_consumer_applies_switches_with_every_record_once(
    tmp_path: Path, table: tuple[Any, str], writer: Writer
) -> None:
    client, name = table
    first, second = Lake(tmp_path / "first"), Lake(tmp_path / "second")
    publish(first, HISTORY)
    loader = GenerationalState(client, name, grace_seconds=0)
    warm(loader, first)  # generation g1 serves the first export
    # the consumer applies; the next export's cut falls after STREAMED[:8]
    writer.apply(STREAMED[:14])
    version = publish(second, HISTORY + STREAMED[:8])
    # during the load, the consumer applies at every stage: before the first catch-up,
    # between it and the bump, between the bump and the switch; and one batch that read the
    # pointer before the bump applies after the last catch-up (only the fence brings it over)
    observer = GenerationalState(client, name)
    seen: dict[str, frozenset[str]] = {}
    late: list[threading.Event] = []

    paused = Writer(client, name)  # another shard's container

    def stage(reached: str) -> None:
        if reached == "built":
            writer.apply(STREAMED[14:17])
        elif reached == "caught_up":
            writer.apply(STREAMED[17:20])
            late.append(paused.start(STREAMED[23:27]))  # its pointer: before the bump
        elif reached == "bumped":
            writer.apply(STREAMED[20:23])
        elif reached == "final":
            late[0].set()
            paused.wait()
        if reached in ("caught_up", "bumped", "final"):
            seen[reached] = observer.read_pointer().writes()

    loader.on_stage = stage
    try:
        assert not warm(loader, second).reused
    finally:
        for go in late:
            go.set()
        paused.stop()
    pointer = loader.read_pointer()
    assert (pointer.active, pointer.loading, pointer.building, pointer.retired) == (
        "g2",
        None,
        None,
        frozenset(),
    )
    assert seen == {"caught_up": {"g1"}, "bumped": {"g1", "g2"}, "final": {"g1", "g2"}}
    assert items_under(client, name, "banklake:g1:") == 0
    online = reference(second, STREAMED[8:27])
    assert loader.loaded() == version
    # every record is there exactly once: the counters are the in-process state's
    assert loader.size() == online.size() and loader.applied == online.applied
    assert all(loader.knows(tx.transaction_id) for tx in STREAMED[:27])
    assert features(loader, probes(STREAMED[26].event_ts)) == features(
        online, probes(STREAMED[26].event_ts)
    )
    # the consumer's next batch goes on in the new generation
    writer.state.read_pointer()
    assert play(writer.state, STREAMED[27:]) == play(online, STREAMED[27:])
    assert loader.size() == online.size()


def test_a_stopped_load_leaves_the_active_generation_serving_and_a_rerun_completes(
    tmp_path: Path, table: tuple[Any, str], writer: Writer
) -> None:
    client, name = table
    first, second = Lake(tmp_path / "first"), Lake(tmp_path / "second")
    publish(first, HISTORY)
    loader = GenerationalState(client, name, grace_seconds=0)
    warm(loader, first)
    writer.apply(STREAMED[:10])
    publish(second, HISTORY + STREAMED[:4])

    class Stopped(Exception):
        pass

    def stop_after(stage: str) -> Callable[[str], None]:
        def hook(name: str) -> None:
            if name == stage:
                raise Stopped(name)

        return hook

    before = features(loader, probes(STREAMED[9].event_ts))
    loader.on_stage = stop_after("bumped")
    with pytest.raises(Stopped):
        warm(loader, second)
    pointer = loader.read_pointer()
    assert (pointer.active, pointer.loading) == ("g1", "g2")
    # the active generation serves as before; the consumer's applies reach both
    assert features(writer.state, probes(STREAMED[9].event_ts)) == before
    writer.apply(STREAMED[10:16])
    # a rerun retires the stopped load's generation and completes with a new one
    loader.on_stage = None
    assert not warm(loader, second).reused
    pointer = loader.read_pointer()
    assert (pointer.active, pointer.loading, pointer.retired) == ("g3", None, frozenset())
    assert items_under(client, name, "banklake:g1:") == 0
    assert items_under(client, name, "banklake:g2:") == 0
    online = reference(second, STREAMED[4:16])
    assert loader.size() == online.size() and loader.applied == online.applied
    assert features(loader, probes(STREAMED[15].event_ts)) == features(
        online, probes(STREAMED[15].event_ts)
    )


def test_a_load_stopped_while_building_leaves_no_reader_on_its_generation(
    tmp_path: Path, table: tuple[Any, str]
) -> None:
    """Stopped before the bump, a load leaves nothing that applies write to; the next load
    deletes its half-built generation."""
    client, name = table
    lake = Lake(tmp_path / "lake")
    publish(lake, HISTORY)
    loader = GenerationalState(client, name, grace_seconds=0)

    def stop(stage: str) -> None:
        if stage == "built":
            raise RuntimeError("stopped")

    loader.on_stage = stop
    with pytest.raises(RuntimeError, match="stopped"):
        warm(loader, lake)
    pointer = loader.read_pointer()
    assert (pointer.active, pointer.building, set(pointer.writes())) == ("g0", "g1", {"g0"})
    assert loader.loaded() is None  # g0: nothing loaded, nothing half-read
    assert items_under(client, name, "banklake:g1:") > 0
    loader.on_stage = None
    warm(loader, lake)
    assert items_under(client, name, "banklake:g1:") == 0
    assert loader.read_pointer().active == "g2" and loader.applied == len(HISTORY)


def test_two_loads_at_once_one_wins_the_other_stops(tmp_path: Path, table: tuple[Any, str]) -> None:
    client, name = table
    lake = Lake(tmp_path / "lake")
    publish(lake, HISTORY)
    slow = GenerationalState(client, name, grace_seconds=0)
    other = GenerationalState(client, name, grace_seconds=0)

    def race(stage: str) -> None:
        if stage == "caught_up":
            warm(other, lake)  # the other load runs to its end meanwhile

    slow.on_stage = race
    with pytest.raises(GenerationConflict, match="another load"):
        warm(slow, lake)
    # the other load's generation serves; the slow one's was swept by it
    assert slow.read_pointer().active == "g2" and slow.applied == len(HISTORY)
    assert items_under(client, name, "banklake:g1:") == 0


def test_an_apply_with_a_stale_pointer_reaches_the_generation_switched_to(
    tmp_path: Path, table: tuple[Any, str]
) -> None:
    """The fence from the writer's side: a pointer copy older than the switch (cached for an
    hour here) makes the apply land in the old generation first; the re-read after it sends
    it to the new one, so nothing applied after a switch is lost."""
    client, name = table
    lake = Lake(tmp_path / "lake")
    publish(lake, HISTORY)
    loader = GenerationalState(client, name, grace_seconds=0)
    warm(loader, lake)
    stale = GenerationalState(client, name, pointer_seconds=3600.0)
    assert stale.pointer().active == "g1"
    publish(lake, HISTORY + STREAMED[:2])
    warm(loader, lake)
    assert stale.pointer().active == "g1"  # its copy, not read again
    play(stale, STREAMED[2:5])
    assert stale.pointer().active == "g2"  # the apply's re-read
    assert all(loader.knows(tx.transaction_id) for tx in STREAMED[2:5])
    assert isinstance(loader.generation("g2"), DynamoDBState)
