"""The online state in one DynamoDB table: the same features as OnlineState, shared by processes.

DynamoDBState holds in a table what OnlineState holds in its dicts and tracks, and hands the
rows a transaction's windows reach to the one implementation of the features
(state.compute_features): the backends give the same features from the same rows. Nothing is
kept in the process between calls but what `featurize` read for the `apply` that follows it
(which markers and pairs exist), so a restarted service, or a second process on the same table,
sees what `apply` wrote.

Layout: one table, partition key `pk` and sort key `sk` (both strings; `table_definition`).
Every `pk` starts with the state's prefix ("banklake:" by default, so states can share a table).
Event times in sort keys are 12-digit zero-padded epochs, so strings sort as times.

    pk              sk                     attributes
    c#<customer>    i                      (the customer had rows: counted in `customers`)
    c#<customer>    l                      ts: its latest row dropped by `prune`
    c#<customer>    r#<ts>#<tid>           a row: ts, c (cents), in, ns (new sender), dc
                                           (declined), kd (type and direction), st (UF, absent
                                           for none), x (TTL)
    c#<customer>    fk#<counterparty>      at, tid: the first transaction with it (kept forever)
    c#<customer>    fd#<device>            at, tid: the first use of the device (kept forever)
    k#<counterparty> i                     (had rows)
    k#<counterparty> r#<ts>#<tid>          a row: ts, ft (first time), un (unusual state),
                                           rp (first fraud report, absent until reported), x
    d#<device>      i                      (had a first use)
    d#<device>      r#<ts>#<customer>      a first use within the retention: ts, x
    t#<tid>         t                      the transaction is stored: ts, cp (its counterparty),
                                           tx (an applied one's fields, JSON: what a new
                                           generation's catch-up applies again; absent when
                                           loaded from an export)
    t#<tid>         p                      a report of a transaction not arrived: rp, x
    meta            n#<shard>              counters (applied, transactions, customers, ...)
                                           and newest, summed / maxed over META_SHARDS items
    meta            v                      version: the export loaded (written last)

Round trips. `featurize` sends, at once from a small thread pool, three Query calls (the
customer's partition from `i` through its rows at t: the marker, the pruned last row and every
retained row; the counterparty's rows in its window; the device's first uses in its window) and
one BatchGetItem (the two first-seen pairs, the counterparty's and the device's markers, a
pending report, the transaction item): four requests, one round trip of wall time. `apply` is
three in a row: one BatchWriteItem (its rows, pairs and markers), one conditional PutItem (the
transaction item) and one UpdateItem (the counters, and `newest` when it rises); a late row
that takes over as a first-time counterparty adds two UpdateItem. `knows` is one GetItem,
`apply_report` a GetItem and an UpdateItem.

Idempotence. Every row, pair and marker has a deterministic key and values computed from the
transaction and what featurize read, so writing them twice writes the same items. The
transaction item is written after them on the condition that it does not exist: it is the gate
of the counters, which are added only by the apply that put it. A repeated apply (featurize
read the transaction item: nothing is written) or a retried one (the gate fails: nothing is
counted) therefore counts nothing twice; an apply interrupted before its gate is completed by
the next one. Reports lower `rp` only (a minimum: repeating one changes nothing).

Consistency. Every read is strongly consistent (ConsistentRead on Query, GetItem, BatchGetItem
and the prune's Scan): a read sees every write acknowledged before it, which is what
`featurize` after `apply` needs. The writes of one apply are not one transaction, and the four
reads of one featurize are not one snapshot: the state assumes ONE writer at a time (the
service decides and applies under its lock); any number of processes may read. Several writing
services would need TransactWriteItems with conditions on what was read (docs/decisions/0021
says why it is not used: moto copies the whole table for every item of a transaction, so it
could not be tested at lake scale). `prune` and `load` run in the writer too. On a table the
Kinesis consumer shares, the service and the consumer use it through
dynamodb_generations.GenerationalState: one DynamoDBState per generation (prefix), loaded
beside the live one and switched to atomically.

Pruning: `prune` scans for rows and transaction items behind the horizon (RETENTION_DAYS behind
the newest event) and deletes them, keeping each customer's latest dropped row (`l`), exactly
as OnlineState.prune; it scans the whole table (see docs/decisions/0021). Every row, transaction
and pending report also carries the TTL attribute `x`, set RETENTION_DAYS + TTL_GRACE_DAYS after
the later of its event time and the time it was written: DynamoDB's own expiry (free, within
days) then bounds the table even if no prune runs, and never removes an item the windows can
still reach while event times follow the clock. Pairs, markers and `l` items never expire, as
in OnlineState.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import numpy as np

from python_jobs.aws.clients import aws_client, error_code
from python_jobs.environment import aws_profile, aws_region, environment
from python_jobs.serve.contract import Transaction
from python_jobs.serve.state import (
    COUNTERPARTY_DAYS,
    DAY,
    DEVICE_DAYS,
    NEVER,
    NO_STATE,
    RETENTION_DAYS,
    UNKNOWN_STATE,
    Columns,
    Featurized,
    History,
    Snapshot,
    by_key,
    compute_features,
    kind_of,
)

TTL_ATTRIBUTE = "expires_at"
TTL_GRACE_DAYS = 30  # beyond the retention: TTL is a backstop, `prune` does the exact work
META_SHARDS = 8  # counter items: one hot item would cap writes at ~1,000 a second
BATCH_WRITE = 25  # BatchWriteItem's limit
BATCH_GET = 100  # BatchGetItem's limit
WRITERS = 4  # threads of the warm-up's and the prune's batch writes
COUNTERS = (
    "applied",
    "transactions",
    "customers",
    "counterparties",
    "devices",
    "customer_rows",
    "counterparty_rows",
    "first_seen_pairs",
)


def table_definition(name: str) -> dict[str, Any]:
    """The table: CreateTable's arguments, and the TTL attribute (UpdateTimeToLive's). The
    tests create it in moto from this; infrastructure/banklake.yaml's OnlineStateTable must
    match (key schema, attribute definitions, billing mode, TTL attribute)."""
    return {
        "TableName": name,
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
        "TimeToLiveAttribute": TTL_ATTRIBUTE,
    }


def create_table(client: Any, name: str) -> None:
    """Creates the table as `table_definition` says, TTL on (tests; production uses the stack)."""
    definition = table_definition(name)
    ttl = definition.pop("TimeToLiveAttribute")
    client.create_table(**definition)
    client.get_waiter("table_exists").wait(TableName=name)
    client.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl}
    )


def make_dynamodb_client(region: str | None = None) -> Any:
    """A DynamoDB client with the profile and region every AWS command reads (AWS_ENDPOINT_URL
    is honoured by boto3: moto in tests), botocore's standard retries."""
    env = environment()
    return aws_client("dynamodb", region=region or aws_region(env), profile=aws_profile(env))


class StateTableError(RuntimeError):
    """The table named by --state cannot hold the state (missing, or another key schema)."""


# -- keys and values -------------------------------------------------------------------------


def _epoch_key(ts: int) -> str:
    if ts < 0:
        raise ValueError(f"event epoch {ts} is before 1970: the state's sort keys cannot hold it")
    return f"{ts:012d}"


ROW_TID = len("r#") + 12 + len("#")  # where a row's sort key holds its transaction id


def _row(ts: int, suffix: str) -> str:
    return f"r#{_epoch_key(ts)}#{suffix}"


def _rows_from(ts: int) -> str:
    """The lowest sort key of rows at `ts` or later."""
    return f"r#{_epoch_key(max(ts, 0))}#"


def _rows_through(ts: int) -> str:
    """The highest sort key of rows at `ts` or earlier ('$' sorts right after '#')."""
    return f"r#{_epoch_key(ts)}$"


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _b(value: bool) -> dict[str, bool]:
    return {"BOOL": value}


def _int(item: dict[str, Any], name: str) -> int:
    return int(item[name]["N"])


def _shard(tid: str) -> int:
    return zlib.crc32(tid.encode()) % META_SHARDS


def _expires(ts: int, now: float) -> dict[str, str]:
    """The TTL of an item whose event is at `ts`, written at `now`."""
    return _n(max(ts, int(now)) + (RETENTION_DAYS + TTL_GRACE_DAYS) * DAY)


@dataclass
class _Facts:
    """What `apply` needs to know of the table, as `featurize` (or `apply` itself) read it."""

    customer_known: bool
    counterparty_known: bool
    device_known: bool
    first_counterparty: tuple[int, str] | None
    first_device: tuple[int, str] | None
    pending: int | None  # a report waiting for this transaction: its epoch
    known: bool  # the transaction is stored already


class _Count:
    """len() of a counter (the service's gauges read len(state.customers))."""

    def __init__(self, state: DynamoDBState, name: str) -> None:
        self._state, self._name = state, name

    def __len__(self) -> int:
        return self._state._meta()[self._name]


def connect(url: str) -> tuple[Any, str]:
    """A client and the table of dynamodb://TABLE: the region and credentials from the
    environment, the endpoint from AWS_ENDPOINT_URL when set (as boto3 reads it). The table
    must exist with the key schema of `table_definition`."""
    table = table_name(url)
    from botocore.exceptions import BotoCoreError

    try:
        client = make_dynamodb_client()
    except BotoCoreError as error:  # no region
        raise StateTableError(f"--state {url}: {error}") from error
    check_table(client, table)
    return client, table


class DynamoDBState:
    """The online state in one DynamoDB table (the module's docstring has the layout)."""

    def __init__(
        self,
        client: Any,
        table: str,
        prefix: str = "banklake:",
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.table = table
        self.prefix = prefix
        self._clock = clock
        self._pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="dynamodb-state")
        # transaction id -> what featurize read, for its apply (bounded: probes never apply)
        self._facts: OrderedDict[str, _Facts] = OrderedDict()
        self._facts_lock = threading.Lock()
        self._newest_written = 0  # the newest epoch this object knows the table holds
        self.customers = _Count(self, "customers")
        self.transactions = _Count(self, "transactions")

    @classmethod
    def from_url(cls, url: str, prefix: str = "banklake:") -> DynamoDBState:
        """dynamodb://TABLE (`connect`)."""
        return cls(*connect(url), prefix)

    def _pk(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}#{name}"

    def _key(self, kind: str, name: str, sk: str) -> dict[str, Any]:
        return {"pk": _s(self._pk(kind, name)), "sk": _s(sk)}

    @property
    def _meta_pk(self) -> str:
        return f"{self.prefix}meta"

    # -- reading ---------------------------------------------------------------------------

    def _query(self, pk: str, low: str, high: str) -> list[dict[str, Any]]:
        """Every item of partition `pk` with low <= sk <= high (strongly consistent)."""
        items: list[dict[str, Any]] = []
        arguments: dict[str, Any] = {
            "TableName": self.table,
            "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {":pk": _s(pk), ":low": _s(low), ":high": _s(high)},
        }
        while True:
            page = self.client.query(**arguments)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return items
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _get_many(self, keys: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """BatchGetItem, strongly consistent, unprocessed keys asked again."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH_GET):
            request: dict[str, Any] = {
                self.table: {"Keys": list(keys[start : start + BATCH_GET]), "ConsistentRead": True}
            }
            for attempt in range(1, 100):
                reply = self.client.batch_get_item(RequestItems=request)
                found += reply["Responses"].get(self.table, [])
                request = reply.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * attempt, 1.0))
            else:  # pragma: no cover - DynamoDB throttling for minutes
                raise RuntimeError(f"{self.table}: BatchGetItem kept keys unprocessed")
        return found

    def _meta(self) -> dict[str, Any]:
        """The counters summed over their shards, the newest epoch and the version."""
        out: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
        out["newest"], out["version"] = 0, None
        for item in self._query(self._meta_pk, "n#", "v"):
            if item["sk"]["S"] == "v":
                out["version"] = item["version"]["S"]
                continue
            for name in COUNTERS:
                if name in item:
                    out[name] += _int(item, name)
            if "newest" in item:
                out["newest"] = max(out["newest"], _int(item, "newest"))
        return out

    @property
    def newest(self) -> int:
        return int(self._meta()["newest"])

    @property
    def applied(self) -> int:
        return int(self._meta()["applied"])

    def loaded(self) -> str | None:
        version = self._meta()["version"]
        return None if version is None else str(version)

    def knows(self, transaction_id: str) -> bool:
        reply = self.client.get_item(
            TableName=self.table,
            Key=self._key("t", transaction_id, "t"),
            ConsistentRead=True,
            ProjectionExpression="pk",
        )
        return "Item" in reply

    def history(self, tx: Transaction) -> History:
        """The rows the windows of `tx` reach: three Query calls and one BatchGetItem, sent at
        once (the module's docstring says what they read)."""
        history, facts = self._read(tx)
        with self._facts_lock:
            self._facts[tx.transaction_id] = facts
            self._facts.move_to_end(tx.transaction_id)
            while len(self._facts) > 10_000:
                self._facts.popitem(last=False)
        return history

    def _read(self, tx: Transaction) -> tuple[History, _Facts]:
        t = tx.epoch
        customer, key, device = tx.customer_id, tx.counterparty_key, tx.device_id
        through = _rows_through(t)
        customer_items = self._pool.submit(self._query, self._pk("c", customer), "i", through)
        counterparty_items = (
            None
            if key is None
            else self._pool.submit(
                self._query,
                self._pk("k", key),
                _rows_from(t - COUNTERPARTY_DAYS * DAY + 1),
                through,
            )
        )
        device_items = (
            None
            if device is None
            else self._pool.submit(
                self._query, self._pk("d", device), _rows_from(t - DEVICE_DAYS * DAY + 1), through
            )
        )
        wanted = [self._key("t", tx.transaction_id, "p"), self._key("t", tx.transaction_id, "t")]
        if key is not None:
            wanted += [self._key("c", customer, f"fk#{key}"), self._key("k", key, "i")]
        if device is not None:
            wanted += [self._key("c", customer, f"fd#{device}"), self._key("d", device, "i")]
        points = {(i["pk"]["S"], i["sk"]["S"]): i for i in self._get_many(wanted)}
        known = (self._pk("t", tx.transaction_id), "t") in points
        # Without its transaction item, anything of this transaction is what an apply
        # interrupted before its gate wrote: not its past, so not read.
        own = None if known else tx.transaction_id

        def pair(kind: str, name: str | None) -> tuple[int, str] | None:
            if name is None:
                return None
            item = points.get((self._pk("c", customer), f"{kind}#{name}"))
            if item is None or item["tid"]["S"] == own:
                return None
            return _int(item, "at"), item["tid"]["S"]

        def marked(kind: str, name: str | None) -> bool:
            return name is not None and (self._pk(kind, name), "i") in points

        first_device = pair("fd", device)
        own_first_use = None
        if device is not None and own is not None and first_device is None:
            own_first_use = _row(t, customer)  # (written by it, if anything)
        pending = points.get((self._pk("t", tx.transaction_id), "p"))
        rows, marker, dropped_last = _customer_columns(customer_items.result(), tx.state, own)
        history = History(
            customer=rows,
            counterparty=_counterparty_columns(
                [] if counterparty_items is None else counterparty_items.result(), own
            ),
            device=Columns(
                {
                    "ts": np.array(
                        sorted(
                            _int(i, "ts")
                            for i in device_items.result()
                            if i["sk"]["S"] != own_first_use
                        )
                        if device_items is not None
                        else [],
                        dtype=np.int64,
                    )
                }
            ),
            first_counterparty=pair("fk", key),
            first_device=first_device,
            dropped_last=dropped_last,
            state_code=UNKNOWN_STATE if tx.state is None else 0,
        )
        facts = _Facts(
            customer_known=marker,
            counterparty_known=marked("k", key),
            device_known=marked("d", device),
            first_counterparty=history.first_counterparty,
            first_device=history.first_device,
            pending=None if pending is None else _int(pending, "rp"),
            known=known,
        )
        return history, facts

    def featurize(self, tx: Transaction) -> Featurized:
        return compute_features(tx, self.history(tx))

    def size(self) -> dict[str, int]:
        meta = self._meta()
        return {
            "customers": meta["customers"],
            "counterparties": meta["counterparties"],
            "devices": meta["devices"],
            "customer_rows": meta["customer_rows"],
            "counterparty_rows": meta["counterparty_rows"],
            "first_seen_pairs": meta["first_seen_pairs"],
            "transactions": meta["transactions"],
        }

    # -- writing ---------------------------------------------------------------------------

    def apply(self, tx: Transaction, featurized: Featurized) -> None:
        """Adds a featured transaction (featurize must have seen the same state): its rows,
        then the transaction item on the condition that it is new (the gate), then the
        counters. A transaction already stored changes nothing."""
        with self._facts_lock:
            facts = self._facts.pop(tx.transaction_id, None)
        if facts is None:
            facts = self._read(tx)[1]
        if facts.known:
            return
        t, tid = featurized.epoch, tx.transaction_id
        self._write_all(self._rows(tx, featurized, facts))
        record = {
            **self._key("t", tid, "t"),
            "ts": _n(t),
            "tx": _s(transaction_json(tx)),
            TTL_ATTRIBUTE: self._expires(t),
        }
        if tx.counterparty_key is not None:
            record["cp"] = _s(tx.counterparty_key)
        try:
            self.client.put_item(
                TableName=self.table, Item=record, ConditionExpression="attribute_not_exists(pk)"
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return  # stored meanwhile: counted by whoever stored it
        # past the gate: the new ids' markers and the counters (an apply stopped here counts
        # less, never twice)
        counters = {"applied": 1, "transactions": 1, "customer_rows": 1}
        markers = []
        if not facts.customer_known:
            counters["customers"] = 1
            markers.append(self._key("c", tx.customer_id, "i"))
        if tx.counterparty_key is not None:
            counters["counterparty_rows"] = 1
            if not facts.counterparty_known:
                counters["counterparties"] = 1
                markers.append(self._key("k", tx.counterparty_key, "i"))
        if featurized.new_device and not facts.device_known:
            assert tx.device_id is not None
            counters["devices"] = 1
            markers.append(self._key("d", tx.device_id, "i"))
        pairs = (featurized.first_time_counterparty and facts.first_counterparty is None) + (
            featurized.new_device and facts.first_device is None
        )
        if pairs:
            counters["first_seen_pairs"] = pairs
        written = (
            self._pool.submit(self._write_all, [{"PutRequest": {"Item": m}} for m in markers])
            if markers
            else None
        )
        self._count(counters, _shard(tid), newest=t)
        if written is not None:
            written.result()

    def _rows(self, tx: Transaction, featurized: Featurized, facts: _Facts) -> list[Any]:
        """The BatchWriteItem requests of a transaction's rows, pairs and markers: every key is
        deterministic and every value a function of the transaction and what was read, so
        writing them again writes the same items."""
        t, tid = featurized.epoch, tx.transaction_id
        customer, key, device = tx.customer_id, tx.counterparty_key, tx.device_id
        expires = self._expires(t)
        puts: list[dict[str, Any]] = []
        deletes: list[dict[str, Any]] = []
        inbound = tx.direction == "inbound"
        first_time = featurized.first_time_counterparty
        row = {
            **self._key("c", customer, _row(t, tid)),
            "ts": _n(t),
            "c": _n(tx.amount_cents),
            "in": _b(inbound),
            "ns": _b(inbound and first_time),
            "dc": _b(tx.status == "declined"),
            "kd": _n(kind_of(tx)),
            TTL_ATTRIBUTE: expires,
        }
        if tx.state is not None:
            row["st"] = _s(tx.state)
        puts.append(row)
        if first_time:
            assert key is not None
            puts.append({**self._key("c", customer, f"fk#{key}"), "at": _n(t), "tid": _s(tid)})
            if facts.first_counterparty is not None:
                self._unmark_first_counterparty(customer, key, facts.first_counterparty)
        if featurized.new_device:
            assert device is not None
            puts.append({**self._key("c", customer, f"fd#{device}"), "at": _n(t), "tid": _s(tid)})
            previous = facts.first_device
            if previous is not None and previous[0] != t:  # (at t, the put replaces it)
                deletes.append(self._key("d", device, _row(previous[0], customer)))
            puts.append(
                {**self._key("d", device, _row(t, customer)), "ts": _n(t), TTL_ATTRIBUTE: expires}
            )
        if facts.pending is not None:
            deletes.append(self._key("t", tid, "p"))
        if key is not None:
            entry = {
                **self._key("k", key, _row(t, tid)),
                "ts": _n(t),
                "ft": _b(first_time),
                "un": _b(featurized.unusual_state),
                TTL_ATTRIBUTE: expires,
            }
            if facts.pending is not None:
                entry["rp"] = _n(facts.pending)
            puts.append(entry)
        return [{"PutRequest": {"Item": item}} for item in puts] + [
            {"DeleteRequest": {"Key": k}} for k in deletes
        ]

    def _unmark_first_counterparty(
        self, customer: str, key: str, previous: tuple[int, str]
    ) -> None:
        """A late, earlier row takes over as the first: the previous first's rows, where still
        held, lose their flags (conditional: an update must not create a pruned row)."""
        at, tid = previous
        for target, flag in (
            (self._key("c", customer, _row(at, tid)), "ns"),
            (self._key("k", key, _row(at, tid)), "ft"),
        ):
            # (the condition fails on a pruned row: nothing to clear)
            with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
                self.client.update_item(
                    TableName=self.table,
                    Key=target,
                    UpdateExpression=f"SET {flag} = :no",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeValues={":no": _b(False)},
                )

    def _expires(self, ts: int) -> dict[str, str]:
        return _expires(ts, self._clock())

    def _count(self, counters: dict[str, int], shard: int, *, newest: int | None = None) -> None:
        """Adds `counters` to a meta shard, and raises its `newest` to `newest` in the same
        write when this object has not seen the table hold a newer one (a maximum: the
        condition keeps it; when another process wrote a newer one, the counters alone)."""
        names = sorted(counters)
        expression = "ADD " + ", ".join(f"{n} :{n}" for n in names)
        values = {f":{n}": _n(counters[n]) for n in names}
        key = {"pk": _s(self._meta_pk), "sk": _s(f"n#{shard:02d}")}
        if newest is not None and newest > self._newest_written:
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key=key,
                    UpdateExpression=f"{expression} SET newest = :t",
                    ConditionExpression="attribute_not_exists(newest) OR newest < :t",
                    ExpressionAttributeValues={**values, ":t": _n(newest)},
                )
                self._newest_written = newest
                return
            except self.client.exceptions.ConditionalCheckFailedException:
                pass  # this shard holds a newer one already
        self.client.update_item(
            TableName=self.table,
            Key=key,
            UpdateExpression=expression,
            ExpressionAttributeValues=values,
        )

    def apply_report(self, transaction_id: str, reported_epoch: int) -> None:
        """A fraud report: the first report's time is the label's (int_fraud_labels). A
        minimum, so a repeated report changes nothing."""
        rp = _n(reported_epoch)
        stored = self.client.get_item(
            TableName=self.table, Key=self._key("t", transaction_id, "t"), ConsistentRead=True
        ).get("Item")
        if stored is None:  # it waits for its transaction
            key = self._key("t", transaction_id, "p")
            expression = f"SET rp = :rp, {TTL_ATTRIBUTE} = :x"
            values = {":rp": rp, ":x": self._expires(reported_epoch)}
        elif "cp" in stored:  # its counterparty's row, while held
            key = self._key("k", stored["cp"]["S"], _row(_int(stored, "ts"), transaction_id))
            expression = "SET rp = :rp"
            values = {":rp": rp}
        else:
            return
        condition = "attribute_not_exists(rp) OR rp > :rp"
        if stored is not None:
            condition = f"attribute_exists(pk) AND ({condition})"
        # (the condition fails when reported earlier already, or its row was pruned)
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )

    def prune(self) -> int:
        """Forgets rows no window can reach any more (RETENTION_DAYS behind the newest)."""
        horizon = self.newest - RETENTION_DAYS * DAY
        last: dict[str, int] = {}
        dropped: dict[str, int] = dict.fromkeys(
            ("customer_rows", "counterparty_rows", "transactions"), 0
        )
        stale: list[dict[str, Any]] = []
        customer_pk, counterparty_pk = self._pk("c", ""), self._pk("k", "")
        for item in self._scan(
            "begins_with(pk, :prefix) AND ts < :h AND (begins_with(sk, :r) OR sk = :t)",
            {":h": _n(horizon), ":r": _s("r#"), ":t": _s("t")},
        ):
            pk, ts = item["pk"]["S"], _int(item, "ts")
            stale.append({"pk": item["pk"], "sk": item["sk"]})
            if pk.startswith(customer_pk):
                dropped["customer_rows"] += 1
                customer = pk[len(customer_pk) :]
                last[customer] = max(ts, last.get(customer, ts))
            elif pk.startswith(counterparty_pk):
                dropped["counterparty_rows"] += 1
            elif item["sk"]["S"] == "t":
                dropped["transactions"] += 1
        # the latest dropped row first: a prune interrupted after it deletes the rows again
        list(self._pool.map(lambda c: self._keep_last(c[0], c[1]), last.items()))
        self._write_all({"DeleteRequest": {"Key": key}} for key in stale)
        if stale:
            self._count({k: -v for k, v in dropped.items()}, 0)
        return dropped["customer_rows"]

    def _keep_last(self, customer: str, ts: int) -> None:
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.table,
                Key=self._key("c", customer, "l"),
                UpdateExpression="SET ts = :ts",
                ConditionExpression="attribute_not_exists(ts) OR ts < :ts",
                ExpressionAttributeValues={":ts": _n(ts)},
            )

    def applied_transactions(self, since: int) -> list[Transaction]:
        """Every transaction applied to this prefix (not loaded from an export) whose event is
        at `since` or later, in event order (time, then id): a Scan of the whole table, strongly
        consistent, so it returns every apply whose gate was acknowledged before it started
        (what a new generation's catch-up needs; docs/decisions/0021)."""
        found = [
            transaction_from_json(item["tx"]["S"])
            for item in self._scan(
                "begins_with(pk, :prefix) AND begins_with(pk, :tpk) AND sk = :t "
                "AND attribute_exists(#tx) AND ts >= :since",
                {":tpk": _s(self._pk("t", "")), ":t": _s("t"), ":since": _n(since)},
                projection="pk, sk, ts, #tx",
                names={"#tx": "tx"},
            )
        ]
        return sorted(found, key=lambda tx: (tx.epoch, tx.transaction_id))

    def _scan(
        self,
        condition: str,
        values: dict[str, Any],
        projection: str = "pk, sk, ts",
        names: dict[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Items of this prefix matching `condition` (the `projection`), strongly consistent."""
        arguments: dict[str, Any] = {
            "TableName": self.table,
            "ConsistentRead": True,
            "FilterExpression": condition,
            "ProjectionExpression": projection,
            "ExpressionAttributeValues": {":prefix": _s(self.prefix), **values},
        }
        if names:
            arguments["ExpressionAttributeNames"] = names
        while True:
            page = self.client.scan(**arguments)
            yield from page["Items"]
            if "LastEvaluatedKey" not in page:
                return
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _write_all(self, requests: Iterable[dict[str, Any]]) -> None:
        """BatchWriteItem in chunks of 25, WRITERS at a time, unprocessed items sent again."""
        chunks: list[list[dict[str, Any]]] = []
        chunk: list[dict[str, Any]] = []
        for request in requests:
            chunk.append(request)
            if len(chunk) == BATCH_WRITE:
                chunks.append(chunk)
                chunk = []
        if chunk:
            chunks.append(chunk)
        if len(chunks) == 1:  # (inline: apply calls this from a thread of the pool)
            self._write_chunk(chunks[0])
        else:
            list(self._pool.map(self._write_chunk, chunks))

    def _write_chunk(self, chunk: list[dict[str, Any]]) -> None:
        request: dict[str, Any] = {self.table: chunk}
        for attempt in range(1, 100):
            reply = self.client.batch_write_item(RequestItems=request)
            request = reply.get("UnprocessedItems") or {}
            if not request:
                return
            time.sleep(min(0.05 * attempt, 1.0))
        raise RuntimeError(f"{self.table}: BatchWriteItem kept items unprocessed")

    # -- warm-up ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Deletes every item under the prefix (a Scan: the whole table is read)."""
        self._write_all(
            {"DeleteRequest": {"Key": {"pk": item["pk"], "sk": item["sk"]}}}
            for item in self._scan("begins_with(pk, :prefix)", {})
        )
        with self._facts_lock:
            self._facts.clear()
        self._newest_written = 0

    def load(self, snapshot: Snapshot) -> None:
        """Replaces what the prefix holds with the export; its version is written last, so a
        load interrupted midway leaves no version and the next warm-up loads again."""
        self.reset()
        now = self._clock()
        recent = snapshot.recent
        times = recent["ts"].tolist()
        tids = recent["tid"].tolist()
        customers = recent["customer"].tolist()
        counterparties = recent["counterparty"].tolist()
        cents, kinds = recent["cents"].tolist(), recent["kind"].tolist()
        inbound, declined = recent["inbound"].tolist(), recent["declined"].tolist()
        first_time, unusual = recent["first_time"].tolist(), recent["unusual"].tolist()
        states, reported = recent["state"].tolist(), recent["reported"].tolist()
        items: list[dict[str, Any]] = []
        for i, (t, tid) in enumerate(zip(times, tids, strict=True)):
            expires = _expires(t, now)
            row = {
                **self._key("c", customers[i], _row(t, tid)),
                "ts": _n(t),
                "c": _n(cents[i]),
                "in": _b(inbound[i]),
                "ns": _b(inbound[i] and first_time[i]),
                "dc": _b(declined[i]),
                "kd": _n(kinds[i]),
                TTL_ATTRIBUTE: expires,
            }
            if states[i] is not None:
                row["st"] = _s(states[i])
            items.append(row)
            record = {**self._key("t", tid, "t"), "ts": _n(t), TTL_ATTRIBUTE: expires}
            key = counterparties[i]
            if key is not None:
                record["cp"] = _s(key)
                entry = {
                    **self._key("k", key, _row(t, tid)),
                    "ts": _n(t),
                    "ft": _b(first_time[i]),
                    "un": _b(unusual[i]),
                    TTL_ATTRIBUTE: expires,
                }
                if reported[i] != NEVER:
                    entry["rp"] = _n(reported[i])
                items.append(entry)
            items.append(record)
        customer_ids = [value for value, _ in by_key(recent["customer"])]
        counterparty_ids = [value for value, _ in by_key(recent["counterparty"])]
        items += [self._key("c", c, "i") for c in customer_ids]
        items += [self._key("k", k, "i") for k in counterparty_ids]
        for kind, seen in (("fk", snapshot.first_counterparty), ("fd", snapshot.first_device)):
            items += [
                {**self._key("c", customer, f"{kind}#{name}"), "at": _n(at), "tid": _s(tid)}
                for customer, name, at, tid in zip(
                    seen.customers, seen.keys, seen.ts, seen.tids, strict=True
                )
            ]
        first_uses = snapshot.device_first_uses()
        for device, uses in first_uses.items():
            items.append(self._key("d", device, "i"))
            items += [
                {
                    **self._key("d", device, _row(at, customer)),
                    "ts": _n(at),
                    TTL_ATTRIBUTE: _expires(at, now),
                }
                for at, customer in uses
            ]
        items += [
            {**self._key("c", customer, "l"), "ts": _n(ts)}
            for customer, ts in snapshot.dropped_last.items()
        ]
        counts = {
            "applied": snapshot.rows,
            "transactions": snapshot.rows,
            "customers": len(customer_ids),
            "counterparties": len(counterparty_ids),
            "devices": len(first_uses),
            "customer_rows": snapshot.rows,
            "counterparty_rows": sum(k is not None for k in counterparties),
            "first_seen_pairs": len(snapshot.first_counterparty) + len(snapshot.first_device),
        }
        items.append(
            {
                "pk": _s(self._meta_pk),
                "sk": _s("n#00"),
                "newest": _n(snapshot.newest),
                **{name: _n(value) for name, value in counts.items()},
            }
        )
        self._write_all({"PutRequest": {"Item": item}} for item in items)
        self._newest_written = snapshot.newest
        self.client.put_item(
            TableName=self.table,
            Item={"pk": _s(self._meta_pk), "sk": _s("v"), "version": _s(snapshot.version)},
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def table_name(url: str) -> str:
    """The table of a dynamodb://TABLE URL (ValueError naming the URL otherwise)."""
    parsed = urlparse(url)
    table = parsed.netloc + parsed.path.rstrip("/")
    if parsed.scheme != "dynamodb" or not table or "/" in table:
        raise ValueError(f"--state {url!r}: expected dynamodb://TABLE")
    return table


def check_table(client: Any, table: str) -> None:
    """Raises StateTableError unless `table` exists with the key schema of table_definition."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        described = client.describe_table(TableName=table)["Table"]
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            raise StateTableError(
                f"--state dynamodb://{table}: no DynamoDB table {table!r} in this account and "
                "region (create it from infrastructure/banklake.yaml's OnlineStateTable)"
            ) from error
        raise StateTableError(f"--state dynamodb://{table}: {error}") from error
    except BotoCoreError as error:  # no endpoint, no credentials, no region
        raise StateTableError(f"--state dynamodb://{table}: {error}") from error
    expected = {(k["AttributeName"], k["KeyType"]) for k in table_definition(table)["KeySchema"]}
    found = {(k["AttributeName"], k["KeyType"]) for k in described["KeySchema"]}
    if found != expected:
        raise StateTableError(
            f"--state dynamodb://{table}: table {table!r} has key schema {sorted(found)}, "
            f"the state needs {sorted(expected)}"
        )


def transaction_json(tx: Transaction) -> str:
    """A transaction's fields as the transaction item keeps them (an applied one's)."""
    values = {f.name: getattr(tx, f.name) for f in fields(tx)}
    values["event_ts"] = tx.event_ts.isoformat()
    return json.dumps(values, separators=(",", ":"), sort_keys=True)


def transaction_from_json(text: str) -> Transaction:
    values = json.loads(text)
    values["event_ts"] = datetime.fromisoformat(values["event_ts"])
    return Transaction(**values)


# -- items to columns ----------------------------------------------------------------------


def _customer_columns(
    items: list[dict[str, Any]], state: str | None, own: str | None
) -> tuple[Columns, bool, int | None]:
    """The customer's partition as read: its rows but transaction `own`'s (sorted by time, the
    state as a code: 0 for `state`, 1 for another, NO_STATE for none), whether its marker
    exists, its pruned last row."""
    marker, dropped_last = False, None
    rows = []
    for item in items:
        sk = item["sk"]["S"]
        if sk == "i":
            marker = True
        elif sk == "l":
            dropped_last = _int(item, "ts")
        elif sk[ROW_TID:] != own:
            rows.append(item)
    rows.sort(key=lambda i: i["sk"]["S"])  # by (time, transaction id): Query's order already

    def code(item: dict[str, Any]) -> int:
        if "st" not in item:
            return NO_STATE
        return 0 if item["st"]["S"] == state else 1

    columns = Columns(
        {
            "ts": np.array([_int(i, "ts") for i in rows], dtype=np.int64),
            "cents": np.array([_int(i, "c") for i in rows], dtype=np.int64),
            "inbound": np.array([i["in"]["BOOL"] for i in rows], dtype=np.bool_),
            "new_sender": np.array([i["ns"]["BOOL"] for i in rows], dtype=np.bool_),
            "declined": np.array([i["dc"]["BOOL"] for i in rows], dtype=np.bool_),
            "kind": np.array([_int(i, "kd") for i in rows], dtype=np.int16),
            "state": np.array([code(i) for i in rows], dtype=np.int16),
            "tid": np.array([i["sk"]["S"][ROW_TID:] for i in rows], dtype=object),
        }
    )
    return columns, marker, dropped_last


def _counterparty_columns(items: list[dict[str, Any]], own: str | None) -> Columns:
    items = sorted((i for i in items if i["sk"]["S"][ROW_TID:] != own), key=lambda i: i["sk"]["S"])
    return Columns(
        {
            "ts": np.array([_int(i, "ts") for i in items], dtype=np.int64),
            "first_time": np.array([i["ft"]["BOOL"] for i in items], dtype=np.bool_),
            "unusual": np.array([i["un"]["BOOL"] for i in items], dtype=np.bool_),
            "reported": np.array(
                [_int(i, "rp") if "rp" in i else NEVER for i in items], dtype=np.int64
            ),
        }
    )
