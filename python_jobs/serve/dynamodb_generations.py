"""Generations of the DynamoDB online state: an export loaded beside the live state, then switched.

The Kinesis consumer and the API apply transactions to the table all the time, so an export
cannot be loaded in place (`DynamoDBState.load` drops what the prefix holds: everything
applied since the export's cut would be lost, and readers would see a half-loaded state).
`GenerationalState` keeps each load in its own key prefix, a *generation*
(`<base>g<n>:`, a plain `DynamoDBState`), and one pointer item says which generation serves:

    pk              sk           attributes
    <base>meta      generation   ac (active), ld (loading, while a load catches up),
                                 bd (building), rt (retired: to delete), nx (next number),
                                 vr (version: every change adds one, the loaders' fence)

No pointer item reads as generation g0 active (a fresh table). Reads (`featurize`, `knows`,
sizes) go to the active generation; `apply` writes to the active one and, while a load
catches up, to the loading one too.

The load (`load`, what `warm` calls; docs/decisions/0021 argues it):

1. sweep: generations a stopped load left (bd, ld) or a switch retired (rt) are deleted;
2. reserve g' (bd=g', nx+1) and load the export into it (`DynamoDBState.load`: its version
   item written last); nothing reads g' yet;
3. catch-up, first pass: every transaction applied to the active generation (its transaction
   items carry the transaction's fields) that g' does not hold, applied to g' in event order;
4. the bump: ld=g' (conditional on the version read). From here every apply that re-reads
   the pointer writes to both generations;
5. catch-up, second pass: the transactions applied to the active generation since the first
   pass (a strongly consistent Scan started after the bump sees every apply whose gate was
   acknowledged before it);
6. the switch: ac=g', ld and bd removed, the old generation retired (conditional on the
   version); `banklake state load` deletes it `grace` seconds later, a service start leaves it
   to the next load's sweep (a start must not wait).

The fence: after an apply, the writer reads the pointer again (strongly consistent) and
applies to every generation it names that the apply did not reach yet, until a read names
none. An apply whose re-read comes before the bump had its gate acknowledged before the bump,
so pass 5 sees it; one whose re-read comes after the bump writes to g' itself. So no apply
that finishes after the bump lands only in the old generation, and applies are idempotent per
transaction (deterministic items, the gate), so one landed twice in g' counts once. Readers
cache the pointer for `pointer_seconds` (each apply refreshes it): a reader that still uses
the old generation just after a switch reads what was there, and the old one is deleted only
`grace` seconds later (or at the next load).

Loads are serialized by the pointer's version: a second loader's conditional write fails and
it stops with GenerationConflict, leaving the first to finish.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sized
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from python_jobs.serve.contract import Transaction
from python_jobs.serve.dynamodb_state import (
    DynamoDBState,
    _n,
    _s,
    connect,
)
from python_jobs.serve.state import (
    DAY,
    NOTHING_PUBLISHED,
    RETENTION_DAYS,
    Featurized,
    History,
    Snapshot,
)

if TYPE_CHECKING:
    from python_jobs.lake.layout import Lake
    from python_jobs.serve.warmup import Warmup

LOG = logging.getLogger(__name__)

POINTER_SK = "generation"
POINTER_SECONDS = 1.0  # how long a reader trusts the pointer it read (each apply re-reads it)
GRACE_SECONDS = 30.0  # a switched-out generation is deleted this long after the switch


class GenerationConflict(RuntimeError):
    """The pointer changed under a load: another load ran at the same time."""


@dataclass(frozen=True)
class Pointer:
    """Which generation serves, which one loads (the module's docstring has the item)."""

    active: str = "g0"
    version: int = 0
    next: int = 1
    loading: str | None = None
    building: str | None = None
    retired: frozenset[str] = field(default_factory=frozenset)
    exists: bool = False  # the item is in the table (no item reads as g0 active)

    def writes(self) -> frozenset[str]:
        """The generations an apply must reach."""
        return frozenset(g for g in (self.active, self.loading) if g is not None)


# A load's stages, for the tests to act at (a stop, applies forced between bump and switch).
STAGES = ("reserved", "built", "caught_up", "bumped", "final", "switched")


class GenerationalState:
    """The online state in a DynamoDB table, in generations switched by a pointer item: the
    StateBackend `open_state` gives for dynamodb:// (the module's docstring)."""

    # `warm` with reuse: a service start keeps what the table serves (a load only for a new
    # export); `banklake state load` loads (service.start reads this)
    generational = True

    def __init__(
        self,
        client: Any,
        table: str,
        base: str = "banklake:",
        *,
        pointer_seconds: float = POINTER_SECONDS,
        grace_seconds: float | None = None,
        on_stage: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.table = table
        self.base = base
        self.pointer_seconds = pointer_seconds
        self.grace_seconds = grace_seconds
        self.on_stage = on_stage
        self._clock = clock
        self._generations: dict[str, DynamoDBState] = {}
        self._pointer: Pointer | None = None
        self._read_at = 0.0

    @classmethod
    def from_url(cls, url: str, base: str = "banklake:") -> GenerationalState:
        """dynamodb://TABLE (dynamodb_state.connect)."""
        return cls(*connect(url), base)

    # -- the pointer -------------------------------------------------------------------------

    @property
    def _pointer_key(self) -> dict[str, Any]:
        return {"pk": _s(f"{self.base}meta"), "sk": _s(POINTER_SK)}

    def generation(self, name: str) -> DynamoDBState:
        """The state of generation `name` (one object each, sharing the client)."""
        state = self._generations.get(name)
        if state is None:
            state = DynamoDBState(self.client, self.table, f"{self.base}{name}:", clock=self._clock)
            self._generations[name] = state
        return state

    def read_pointer(self) -> Pointer:
        """The pointer as stored (strongly consistent); refreshes the readers' copy."""
        item = self.client.get_item(
            TableName=self.table, Key=self._pointer_key, ConsistentRead=True
        ).get("Item")
        pointer = (
            Pointer()
            if item is None
            else Pointer(
                active=item["ac"]["S"],
                version=int(item["vr"]["N"]),
                next=int(item["nx"]["N"]),
                loading=item["ld"]["S"] if "ld" in item else None,
                building=item["bd"]["S"] if "bd" in item else None,
                retired=frozenset(item["rt"]["SS"]) if "rt" in item else frozenset(),
                exists=True,
            )
        )
        self._pointer, self._read_at = pointer, time.monotonic()
        return pointer

    def pointer(self) -> Pointer:
        """The pointer as last read, read again when older than `pointer_seconds`."""
        if self._pointer is None or time.monotonic() - self._read_at >= self.pointer_seconds:
            return self.read_pointer()
        return self._pointer

    def _write_pointer(self, read: Pointer, new: Pointer) -> Pointer:
        """Replaces the pointer `read` with `new` (its version one more), on the condition that
        nobody changed it since: raises GenerationConflict otherwise."""
        written = replace(new, version=read.version + 1, exists=True)
        item: dict[str, Any] = {
            **self._pointer_key,
            "ac": _s(written.active),
            "vr": _n(written.version),
            "nx": _n(written.next),
        }
        if written.loading is not None:
            item["ld"] = _s(written.loading)
        if written.building is not None:
            item["bd"] = _s(written.building)
        if written.retired:
            item["rt"] = {"SS": sorted(written.retired)}
        if read.exists:
            condition = {
                "ConditionExpression": "vr = :vr",
                "ExpressionAttributeValues": {":vr": _n(read.version)},
            }
        else:
            condition = {"ConditionExpression": "attribute_not_exists(pk)"}
        try:
            self.client.put_item(TableName=self.table, Item=item, **condition)
        except self.client.exceptions.ConditionalCheckFailedException as error:
            raise GenerationConflict(
                f"dynamodb://{self.table}: the generation pointer of {self.base!r} changed "
                "during the load (another load ran at the same time): run it again"
            ) from error
        self._pointer, self._read_at = written, time.monotonic()
        return written

    def _active(self) -> DynamoDBState:
        return self.generation(self.pointer().active)

    # -- StateBackend: reads go to the active generation -----------------------------------

    @property
    def newest(self) -> int:
        return self._active().newest

    @property
    def applied(self) -> int:
        return self._active().applied

    @property
    def customers(self) -> Sized:
        return self._active().customers

    @property
    def transactions(self) -> Sized:
        return self._active().transactions

    def loaded(self) -> str | None:
        return self._active().loaded()

    def knows(self, transaction_id: str) -> bool:
        return self._active().knows(transaction_id)

    def history(self, tx: Transaction) -> History:
        return self._active().history(tx)

    def featurize(self, tx: Transaction) -> Featurized:
        return self._active().featurize(tx)

    def size(self) -> dict[str, int]:
        return self._active().size()

    def prune(self) -> int:
        return self._active().prune()

    # -- StateBackend: writes reach every generation the pointer names ----------------------

    def apply(self, tx: Transaction, featurized: Featurized) -> None:
        """Applies to the generations the pointer names, then reads the pointer again and
        applies to any it names now that this apply did not reach (the fence: the module's
        docstring)."""
        self._fenced(lambda state: state.apply(tx, featurized))

    def apply_report(self, transaction_id: str, reported_epoch: int) -> None:
        self._fenced(lambda state: state.apply_report(transaction_id, reported_epoch))

    def _fenced(self, write: Callable[[DynamoDBState], None]) -> None:
        reached: set[str] = set()
        pointer = self.pointer()
        while True:
            for name in sorted(pointer.writes() - reached):
                write(self.generation(name))
                reached.add(name)
            pointer = self.read_pointer()
            if pointer.writes() <= reached:
                return

    # -- the load -------------------------------------------------------------------------

    def load(self, snapshot: Snapshot) -> None:
        """Loads the export into a new generation and switches to it, with every transaction
        applied to the active generation that the export does not hold applied again (the
        module's docstring). An empty lake's snapshot never replaces a loaded table."""
        if snapshot.version == NOTHING_PUBLISHED and self.read_pointer().exists:
            LOG.warning("nothing published: dynamodb://%s keeps what it serves", self.table)
            return
        pointer = self._sweep(self.read_pointer())
        target_name = f"g{pointer.next}"
        pointer = self._write_pointer(
            pointer, replace(pointer, building=target_name, next=pointer.next + 1)
        )
        self._stage("reserved")
        source, target = self.generation(pointer.active), self.generation(target_name)
        target.load(snapshot)
        self._stage("built")
        horizon = snapshot.newest - RETENTION_DAYS * DAY
        caught_up: set[str] = set()
        again = self._catch_up(source, target, horizon, caught_up)
        self._stage("caught_up")
        pointer = self._write_pointer(pointer, replace(pointer, loading=target_name))
        self._stage("bumped")
        again += self._catch_up(source, target, horizon, caught_up)
        self._stage("final")
        old = pointer.active
        pointer = self._write_pointer(
            pointer,
            replace(
                pointer,
                active=target_name,
                loading=None,
                building=None,
                retired=pointer.retired | {old},
            ),
        )
        self._stage("switched")
        LOG.info(
            "dynamodb://%s: generation %s active (export %s, %d applied again)",
            self.table,
            target_name,
            snapshot.version,
            again,
        )
        if self.grace_seconds is not None:  # else: the next load's sweep deletes it
            self._delete_retired(pointer, self.grace_seconds)

    def _stage(self, name: str) -> None:
        assert name in STAGES
        if self.on_stage is not None:
            self.on_stage(name)

    def _catch_up(
        self, source: DynamoDBState, target: DynamoDBState, horizon: int, done: set[str]
    ) -> int:
        """Applies to `target` every transaction applied to `source` at or after `horizon`
        that it was not handed before (`done`) and does not hold, in event order, features
        computed on `target` as the consumer would have. Rows older than the horizon are
        beyond every window of the new export. Returns how many it applied."""
        applied = 0
        for tx in source.applied_transactions(horizon):
            if tx.transaction_id in done:
                continue
            done.add(tx.transaction_id)
            if not target.knows(tx.transaction_id):
                target.apply(tx, target.featurize(tx))
                applied += 1
        return applied

    def _sweep(self, pointer: Pointer) -> Pointer:
        """Retires what a stopped load left (its building or loading generation), then deletes
        every retired generation."""
        left = {g for g in (pointer.building, pointer.loading) if g and g != pointer.active}
        if pointer.building is not None or pointer.loading is not None:
            pointer = self._write_pointer(
                pointer,
                replace(pointer, building=None, loading=None, retired=pointer.retired | left),
            )
        # writers that read `loading` before it was removed may still write there: wait
        # (a switch retired the others at least one load ago: no writer still reads them)
        grace = GRACE_SECONDS if self.grace_seconds is None else self.grace_seconds
        return self._delete_retired(pointer, grace if left else 0.0)

    def _delete_retired(self, pointer: Pointer, grace: float) -> Pointer:
        if pointer.retired and grace > 0:
            time.sleep(grace)
        for name in sorted(pointer.retired):
            self.generation(name).reset()
            pointer = self._write_pointer(
                pointer, replace(pointer, retired=pointer.retired - {name})
            )
        return pointer

    def close(self) -> None:
        for state in self._generations.values():
            state.close()


def load_state(
    lake: Lake,
    url: str,
    prefix: str = "banklake:",
    *,
    force: bool = False,
    grace_seconds: float = GRACE_SECONDS,
) -> Warmup:
    """`banklake state load`: the lake's published export (what `warm` reads, as the service
    warms) loaded into a new generation of the table at `url` and switched to, unless the
    active generation holds that export already (`force` loads it again)."""
    from python_jobs.serve.warmup import warm

    state = GenerationalState.from_url(url, prefix)
    state.grace_seconds = grace_seconds
    try:
        return warm(state, lake, reuse=not force)
    finally:
        state.close()
