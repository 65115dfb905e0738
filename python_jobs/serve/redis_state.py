"""The online state on a Redis server: the same features as OnlineState, shared by processes.

RedisState holds in Redis exactly what OnlineState holds in its dicts and tracks, and hands the
rows a transaction's windows reach to the one implementation of the features
(state.compute_features): the two backends give the same features from the same rows. Nothing
is kept in the process, so a restarted service, or a second process on the same Redis, sees
what `apply` wrote and computes the same features.

Layout (every key under `prefix`, "banklake:" by default):

    c:<customer>      sorted set, score = event epoch: the customer's rows, member = 24 packed
                      bytes (CUSTOMER_RECORD: ts, cents, inbound, new_sender, declined, kind,
                      state code) + transaction id (which makes it unique)
    k:<counterparty>  sorted set, score = event epoch: its rows, member = 18 packed bytes
                      (COUNTERPARTY_RECORD: ts, first_time, unusual, reported as a double,
                      +inf until reported) + transaction id
    d:<device>        sorted set: member = customer id, score = that customer's first use
    fk:<customer>     hash counterparty -> "epoch:transaction id" of the first transaction
    fd:<customer>     hash device -> "epoch:transaction id" of the first use
    last              hash customer -> epoch of its latest pruned row
    tx                sorted set: transaction id, score = event epoch (knows, prune)
    txk               hash transaction id -> counterparty (where a report finds its row)
    pending           sorted set: reports of transactions not arrived, score = first report
    states            hash state (UF) -> code: codes are assigned once and never change
    customers, counterparties, devices
                      sets of the ids that had rows (size, prune): as OnlineState's dicts,
                      an id stays listed when pruning empties its rows
    meta              hash: newest, applied, customer_rows, counterparty_rows,
                      first_seen_pairs, version (the export loaded)

Money stays in integer cents inside the packed members (no HINCRBYFLOAT), times are integer
epochs, exact as scores (doubles hold integers up to 2**53).

Round trips: `featurize` is one EVALSHA of a read-only script (READ, flagged no-writes): a
script runs atomically, so its reads are one consistent snapshot even while another process
writes, and it returns each key's rows as one string (records end to end, lengths packed
beside them) rather than one reply element per row, which redis-py would parse one by one.
`apply` and `apply_report` are one EVALSHA each, a script that reads and writes atomically (the
late-earlier-row rewrites of first-time flags, the report's minimum, a state's code, the
pending report moved onto its row); `knows` is one ZSCORE. A service request is thus three
round trips: knows, featurize, apply. `load` (the warm-up) pipelines its writes in chunks and
writes meta's version last: a load interrupted midway leaves no version, and the next warm-up
loads again. `prune` runs a script per few hundred keys.

Invariants: a member is rewritten (ZREM + ZADD) only inside a script, so readers never see a
row twice or missing; `apply` of a transaction id already stored changes nothing (two writers
cannot double a row); the packed layouts below and the scripts' offsets must agree.

Durability is Redis's: whatever the server keeps (RDB, AOF) survives a service restart. A
restarted service that keeps the stored state (`warm(..., reuse=True)`) relies on the state
holding only acknowledged rows: a row applied and then lost from the write-ahead log (a batch
applied before its log append, then a crash) would stay. Without `reuse` the warm-up drops the
keys and reloads the export, as the in-process state is rebuilt. Only one process should load;
the others read. A standalone server is assumed (keys span hash slots: no Redis Cluster).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import redis

from python_jobs.serve.contract import Transaction
from python_jobs.serve.state import (
    COUNTERPARTY_DAYS,
    CUSTOMER_DAYS,
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

# The packed members. Python packs the fixed part it knows (HEAD); the apply script appends
# what only the server knows (the state code, the reported time) and the transaction id.
CUSTOMER_RECORD = np.dtype(
    [
        ("ts", ">i8"),
        ("cents", ">i8"),
        ("inbound", "u1"),
        ("new_sender", "u1"),  # byte 17: cleared when a late, earlier row takes over
        ("declined", "u1"),
        ("kind", "u1"),
        ("state", ">i4"),
    ]
)
CUSTOMER_HEAD = struct.Struct(">qqBBBB")  # CUSTOMER_RECORD without its state code
COUNTERPARTY_RECORD = np.dtype(
    [
        ("ts", ">i8"),
        ("first_time", "u1"),  # byte 8: cleared when a late, earlier row takes over
        ("unusual", "u1"),
        ("reported", ">f8"),  # bytes 10-17: the first report, +inf for none
    ]
)
COUNTERPARTY_HEAD = struct.Struct(">qBB")  # COUNTERPARTY_RECORD without `reported`
assert CUSTOMER_RECORD.itemsize == CUSTOMER_HEAD.size + 4 == 24
assert COUNTERPARTY_RECORD.itemsize == COUNTERPARTY_HEAD.size + 8 == 18

LOAD_CHUNK = 2_000  # commands per pipelined write of the warm-up
PRUNE_CHUNK = 500  # keys per prune script call

# A flag cleared in the member at score `score` whose transaction id is `tid` (Lua is 1-based:
# byte b of the record is position b + 1).
_CLEAR_FLAG = """
local function clear_flag(key, score, tid, record_size, position)
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', key, score, score)) do
    if string.sub(m, record_size + 1) == tid then
      redis.call('ZREM', key, m)
      redis.call('ZADD', key, score,
        string.sub(m, 1, position - 1) .. '\\0' .. string.sub(m, position + 1))
      return
    end
  end
end
"""

# What one transaction's features read, in as few reply elements as possible (the client parses
# each one in Python: its main cost), and with no per-row string made in Lua (the server's): a
# key's rows are returned end to end with their lengths packed beside them. The customer's are
# its latest row at or before the window's start, then its rows in the window; then the
# counterparty's rows in its window, the device's first uses as doubles, the first-seen pairs,
# the customer's last pruned row and the state's code.
# KEYS: 1 c:<customer> 2 k:<counterparty> 3 d:<device> 4 fk:<customer> 5 fd:<customer> 6 last
#       7 states
# ARGV: 1 epoch 2 customer window start 3 counterparty window start 4 device window start
#       (each exclusive) 5 customer 6 counterparty 7 device 8 state
#       9 has counterparty 10 has device 11 has state
READ = """#!lua flags=no-writes
local function packed(members)
  local lengths = {}
  for i = 1, #members, 1000 do  -- (unpack's stack holds a few thousand values)
    local part = {}
    for j = i, math.min(i + 999, #members) do part[#part + 1] = #members[j] end
    lengths[#lengths + 1] = struct.pack('>' .. string.rep('I4', #part), unpack(part))
  end
  return table.concat(members), table.concat(lengths)
end
local rows = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[2], '-inf', 'LIMIT', 0, 1)
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], ARGV[1])) do
  rows[#rows + 1] = m
end
local customer, customer_lengths = packed(rows)
local reply = {customer, customer_lengths, redis.call('HGET', KEYS[6], ARGV[5]),
  false, '', '', false, '', false}
if ARGV[9] == '1' then
  reply[4] = redis.call('HGET', KEYS[4], ARGV[6])
  reply[5], reply[6] = packed(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[3], ARGV[1]))
end
if ARGV[10] == '1' then
  reply[7] = redis.call('HGET', KEYS[5], ARGV[7])
  local uses = {}
  local found = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. ARGV[4], ARGV[1], 'WITHSCORES')
  for i = 2, #found, 2 do uses[#uses + 1] = struct.pack('>d', tonumber(found[i])) end
  reply[8] = table.concat(uses)
end
if ARGV[11] == '1' then reply[9] = redis.call('HGET', KEYS[7], ARGV[8]) end
return reply
"""

# KEYS: 1 c:<customer> 2 k:<counterparty> 3 d:<device> 4 fk:<customer> 5 fd:<customer> 6 tx
#       7 txk 8 pending 9 states 10 meta 11 customers 12 counterparties 13 devices
# ARGV: 1 tid 2 epoch 3 customer 4 counterparty 5 device 6 state 7 customer head
#       8 counterparty head 9 first-time counterparty 10 new device
#       11 has counterparty 12 has device 13 has state
APPLY = (
    _CLEAR_FLAG
    + """
local tid, t = ARGV[1], tonumber(ARGV[2])
if redis.call('ZSCORE', KEYS[6], tid) then return 0 end
if ARGV[9] == '1' then
  local previous = redis.call('HGET', KEYS[4], ARGV[4])
  if previous then  -- a late, earlier row takes over as the first
    local sep = string.find(previous, ':', 1, true)
    local score, first = string.sub(previous, 1, sep - 1), string.sub(previous, sep + 1)
    clear_flag(KEYS[1], score, first, 24, 18)
    clear_flag(KEYS[2], score, first, 18, 9)
  else
    redis.call('HINCRBY', KEYS[10], 'first_seen_pairs', 1)
  end
  redis.call('HSET', KEYS[4], ARGV[4], ARGV[2] .. ':' .. tid)
end
if ARGV[10] == '1' then
  if redis.call('HSET', KEYS[5], ARGV[5], ARGV[2] .. ':' .. tid) == 1 then
    redis.call('HINCRBY', KEYS[10], 'first_seen_pairs', 1)
  end
  redis.call('ZADD', KEYS[3], t, ARGV[3])  -- moves an earlier first use of this customer
  redis.call('SADD', KEYS[13], ARGV[5])
end
local code = -1
if ARGV[13] == '1' then
  local known = redis.call('HGET', KEYS[9], ARGV[6])
  if known then
    code = tonumber(known)
  else
    code = redis.call('HLEN', KEYS[9])
    redis.call('HSET', KEYS[9], ARGV[6], code)
  end
end
redis.call('ZADD', KEYS[1], t, ARGV[7] .. struct.pack('>i4', code) .. tid)
redis.call('SADD', KEYS[11], ARGV[3])
redis.call('HINCRBY', KEYS[10], 'customer_rows', 1)
local reported = redis.call('ZSCORE', KEYS[8], tid)
if reported then redis.call('ZREM', KEYS[8], tid) end
if ARGV[11] == '1' then
  local at = math.huge
  if reported then at = tonumber(reported) end
  redis.call('ZADD', KEYS[2], t, ARGV[8] .. struct.pack('>d', at) .. tid)
  redis.call('SADD', KEYS[12], ARGV[4])
  redis.call('HINCRBY', KEYS[10], 'counterparty_rows', 1)
  redis.call('HSET', KEYS[7], tid, ARGV[4])
end
redis.call('ZADD', KEYS[6], t, tid)
local newest = redis.call('HGET', KEYS[10], 'newest')
if not newest or tonumber(newest) < t then redis.call('HSET', KEYS[10], 'newest', ARGV[2]) end
redis.call('HINCRBY', KEYS[10], 'applied', 1)
return 1
"""
)

# KEYS: 1 tx 2 txk 3 pending; ARGV: 1 tid 2 reported epoch 3 the counterparty key prefix.
# The counterparty's key is read here (HGET txk): the one key not declared in KEYS.
APPLY_REPORT = """
local tid = ARGV[1]
local t = redis.call('ZSCORE', KEYS[1], tid)
if not t then
  redis.call('ZADD', KEYS[3], 'LT', ARGV[2], tid)
  return 0
end
local counterparty = redis.call('HGET', KEYS[2], tid)
if not counterparty then return 0 end
local key = ARGV[3] .. counterparty
local reported = tonumber(ARGV[2])
for _, m in ipairs(redis.call('ZRANGEBYSCORE', key, t, t)) do
  if string.sub(m, 19) == tid then
    if reported < struct.unpack('>d', m, 11) then
      redis.call('ZREM', key, m)
      redis.call('ZADD', key, t, string.sub(m, 1, 10) .. struct.pack('>d', reported) .. tid)
    end
    return 1
  end
end
return 0
"""

# KEYS: 1 last 2 meta 3.. c:<customer>; ARGV: 1 horizon 2.. the customers (KEYS[i] = ARGV[i-1])
PRUNE_CUSTOMERS = """
local below = '(' .. ARGV[1]
local dropped = 0
for i = 3, #KEYS do
  local latest = redis.call('ZREVRANGEBYSCORE', KEYS[i], below, '-inf', 'LIMIT', 0, 1)
  if #latest > 0 then
    local ts = struct.unpack('>i8', latest[1])
    local known = redis.call('HGET', KEYS[1], ARGV[i - 1])
    if not known or tonumber(known) < ts then
      redis.call('HSET', KEYS[1], ARGV[i - 1], string.format('%d', ts))
    end
    dropped = dropped + redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', below)
  end
end
if dropped > 0 then redis.call('HINCRBY', KEYS[2], 'customer_rows', -dropped) end
return dropped
"""

# KEYS: 1 meta 2.. sorted sets; ARGV: 1 horizon 2 meta's row counter ('' for none)
PRUNE_ROWS = """
local removed = 0
for i = 2, #KEYS do
  removed = removed + redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. ARGV[1])
end
if ARGV[2] ~= '' and removed > 0 then redis.call('HINCRBY', KEYS[1], ARGV[2], -removed) end
return removed
"""

# KEYS: 1 tx 2 txk; ARGV: 1 horizon 2 at most this many
PRUNE_TRANSACTIONS = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[2])
if #stale > 0 then
  redis.call('ZREM', KEYS[1], unpack(stale))
  redis.call('HDEL', KEYS[2], unpack(stale))
end
return #stale
"""

COUNTERS = ("customer_rows", "counterparty_rows", "first_seen_pairs")


def _first(value: bytes | None) -> tuple[int, str] | None:
    """A first-seen pair's "epoch:transaction id"."""
    if value is None:
        return None
    epoch, tid = value.split(b":", 1)
    return int(epoch), tid.decode()


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _glob_escaped(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class _Count:
    """len() of a Redis set or sorted set (the service's gauges read len(state.customers))."""

    def __init__(self, client: redis.Redis, key: str, command: str) -> None:
        self._client, self._key, self._command = client, key, command

    def __len__(self) -> int:
        return int(self._client.execute_command(self._command, self._key))


class RedisState:
    """The online state in Redis (see the module's docstring for the layout)."""

    def __init__(self, client: redis.Redis, prefix: str = "banklake:") -> None:
        if client.get_encoder().decode_responses:
            raise ValueError(
                "RedisState needs a client with decode_responses=False: rows are bytes"
            )
        self.client = client
        self.prefix = prefix
        self._tx = prefix + "tx"
        self._txk = prefix + "txk"
        self._pending = prefix + "pending"
        self._states = prefix + "states"
        self._meta = prefix + "meta"
        self._last = prefix + "last"
        self._customers = prefix + "customers"
        self._counterparties = prefix + "counterparties"
        self._devices = prefix + "devices"
        self._read = client.register_script(READ)
        self._apply = client.register_script(APPLY)
        self._apply_report = client.register_script(APPLY_REPORT)
        self._prune_customers = client.register_script(PRUNE_CUSTOMERS)
        self._prune_rows = client.register_script(PRUNE_ROWS)
        self._prune_transactions = client.register_script(PRUNE_TRANSACTIONS)
        self.customers = _Count(client, self._customers, "SCARD")
        self.transactions = _Count(client, self._tx, "ZCARD")

    @classmethod
    def from_url(cls, url: str, prefix: str = "banklake:") -> RedisState:
        """redis://host:port/db or unix:///path/to/redis.sock (redis-py's URLs)."""
        return cls(redis.Redis.from_url(url), prefix)

    def _key(self, kind: str, name: str) -> str:
        """The key of one customer's, counterparty's or device's rows or pairs."""
        return f"{self.prefix}{kind}:{name}"

    # -- reading ---------------------------------------------------------------------------

    @property
    def newest(self) -> int:
        value = self.client.hget(self._meta, "newest")
        return 0 if value is None else int(value)

    @property
    def applied(self) -> int:
        value = self.client.hget(self._meta, "applied")
        return 0 if value is None else int(value)

    def loaded(self) -> str | None:
        value = self.client.hget(self._meta, "version")
        return value.decode() if isinstance(value, bytes) else value

    def knows(self, transaction_id: str) -> bool:
        return self.client.zscore(self._tx, transaction_id) is not None

    def _transaction_keys(self, tx: Transaction) -> list[str]:
        """The keys of a transaction's own rows and pairs, in the scripts' KEYS order: its
        customer's rows, counterparty's rows, device's first uses, first counterparties and
        first devices."""
        customer = tx.customer_id
        return [
            self._key("c", customer),
            self._key("k", tx.counterparty_key or ""),
            self._key("d", tx.device_id or ""),
            self._key("fk", customer),
            self._key("fd", customer),
        ]

    def history(self, tx: Transaction) -> History:
        """The rows the windows of `tx` reach: one read-only script (atomic, so consistent)."""
        t = tx.epoch
        customer, key, device = tx.customer_id, tx.counterparty_key, tx.device_id
        reply = self._read(
            keys=[
                *self._transaction_keys(tx),
                self._last,
                self._states,
            ],
            args=[
                t,
                t - CUSTOMER_DAYS * DAY,
                t - COUNTERPARTY_DAYS * DAY,
                t - DEVICE_DAYS * DAY,
                customer,
                key or "",
                device or "",
                tx.state or "",
                _flag(key is not None),
                _flag(device is not None),
                _flag(tx.state is not None),
            ],
        )
        customer_rows, customer_lengths, dropped_last, first_cp = reply[:4]
        counterparty_rows, counterparty_lengths, first_dev, first_uses, code = reply[4:]
        return History(
            customer=_customer_rows(customer_rows, customer_lengths),
            counterparty=_counterparty_rows(counterparty_rows, counterparty_lengths),
            device=Columns({"ts": np.frombuffer(first_uses, dtype=">f8").astype(np.int64)}),
            first_counterparty=_first(first_cp),
            first_device=_first(first_dev),
            dropped_last=None if dropped_last is None else int(dropped_last),
            state_code=UNKNOWN_STATE if code is None else int(code),
        )

    def featurize(self, tx: Transaction) -> Featurized:
        return compute_features(tx, self.history(tx))

    def size(self) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=True)
        pipe.scard(self._customers)
        pipe.scard(self._counterparties)
        pipe.scard(self._devices)
        pipe.hmget(self._meta, list(COUNTERS))
        pipe.zcard(self._tx)
        customers, counterparties, devices, counters, transactions = pipe.execute()
        rows = {name: int(value or 0) for name, value in zip(COUNTERS, counters, strict=True)}
        return {
            "customers": int(customers),
            "counterparties": int(counterparties),
            "devices": int(devices),
            "customer_rows": rows["customer_rows"],
            "counterparty_rows": rows["counterparty_rows"],
            "first_seen_pairs": rows["first_seen_pairs"],
            "transactions": int(transactions),
        }

    # -- writing ---------------------------------------------------------------------------

    def apply(self, tx: Transaction, featurized: Featurized) -> None:
        """Adds a featured transaction, in one atomic script (a stored id changes nothing)."""
        t = featurized.epoch
        customer, key, device = tx.customer_id, tx.counterparty_key, tx.device_id
        inbound = tx.direction == "inbound"
        first_time = featurized.first_time_counterparty
        self._apply(
            keys=[
                *self._transaction_keys(tx),
                self._tx,
                self._txk,
                self._pending,
                self._states,
                self._meta,
                self._customers,
                self._counterparties,
                self._devices,
            ],
            args=[
                tx.transaction_id,
                t,
                customer,
                key or "",
                device or "",
                tx.state or "",
                CUSTOMER_HEAD.pack(
                    t,
                    tx.amount_cents,
                    inbound,
                    inbound and first_time,
                    tx.status == "declined",
                    kind_of(tx),
                ),
                COUNTERPARTY_HEAD.pack(t, first_time, featurized.unusual_state),
                _flag(first_time),
                _flag(featurized.new_device),
                _flag(key is not None),
                _flag(device is not None),
                _flag(tx.state is not None),
            ],
        )

    def apply_report(self, transaction_id: str, reported_epoch: int) -> None:
        """A fraud report: the first report's time is the label's (int_fraud_labels)."""
        self._apply_report(
            keys=[self._tx, self._txk, self._pending],
            args=[transaction_id, reported_epoch, self.prefix + "k:"],
        )

    def prune(self) -> int:
        """Forgets rows no window can reach any more (RETENTION_DAYS behind the newest)."""
        horizon = self.newest - RETENTION_DAYS * DAY
        dropped = 0
        for customers in self._chunks(self._customers):
            dropped += int(
                self._prune_customers(
                    keys=[self._last, self._meta, *(self._key("c", c) for c in customers)],
                    args=[horizon, *customers],
                )
            )
        for index, kind, counter in (
            (self._counterparties, "k", "counterparty_rows"),
            (self._devices, "d", ""),
        ):
            for names in self._chunks(index):
                self._prune_rows(
                    keys=[self._meta, *(self._key(kind, n) for n in names)],
                    args=[horizon, counter],
                )
        while int(
            self._prune_transactions(keys=[self._tx, self._txk], args=[horizon, PRUNE_CHUNK])
        ):
            pass
        return dropped

    def _chunks(self, index: str) -> Iterator[list[str]]:
        """The members of a set, PRUNE_CHUNK at a time (SSCAN: a member may come twice)."""
        chunk: list[str] = []
        for member in self.client.sscan_iter(index, count=PRUNE_CHUNK):
            chunk.append(member.decode() if isinstance(member, bytes) else member)
            if len(chunk) == PRUNE_CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    # -- warm-up ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Drops every key under the prefix."""
        batch: list[Any] = []
        for key in self.client.scan_iter(match=_glob_escaped(self.prefix) + "*", count=1_000):
            batch.append(key)
            if len(batch) == 1_000:
                self.client.unlink(*batch)
                batch = []
        if batch:
            self.client.unlink(*batch)

    def load(self, snapshot: Snapshot) -> None:
        """Replaces what the prefix holds with the export; its version is written last."""
        self.reset()
        writer = _Writer(self.client)
        pipe = writer.pipe
        recent = snapshot.recent
        ts = recent["ts"]
        times = ts.tolist()
        tid_list = recent["tid"].tolist()
        tids = [tid.encode() for tid in tid_list]
        codes: dict[Any, Any] = {}  # state -> code
        states = [
            NO_STATE if s is None else codes.setdefault(s, len(codes)) for s in recent["state"]
        ]
        if codes:
            pipe.hset(self._states, mapping=codes)
        heads = np.empty(len(ts), dtype=CUSTOMER_RECORD)
        heads["ts"], heads["cents"] = ts, recent["cents"]
        heads["inbound"], heads["declined"] = recent["inbound"], recent["declined"]
        heads["new_sender"] = recent["inbound"] & recent["first_time"]
        heads["kind"], heads["state"] = recent["kind"], states
        customer_members = _members(heads, tids)
        heads = np.empty(len(ts), dtype=COUNTERPARTY_RECORD)
        heads["ts"], heads["first_time"] = ts, recent["first_time"]
        heads["unusual"] = recent["unusual"]
        reported = recent["reported"]
        heads["reported"] = np.where(reported == NEVER, np.inf, reported.astype(np.float64))
        counterparty_members = _members(heads, tids)
        counterparty_rows = 0
        for kind, key, members, index in (
            ("c", recent["customer"], customer_members, self._customers),
            ("k", recent["counterparty"], counterparty_members, self._counterparties),
        ):
            names = []
            for value, take in by_key(key):
                pipe.zadd(self._key(kind, value), {members[i]: times[i] for i in take.tolist()})
                writer.queued()
                names.append(value)
                if kind == "k":
                    counterparty_rows += len(take)
            for part in _parts(names):
                pipe.sadd(index, *part)
                writer.queued()
        for part in _parts(list(zip(tid_list, times, strict=True))):
            pipe.zadd(self._tx, dict(part))
            writer.queued()
        counterparties = recent["counterparty"].tolist()
        with_key = [(t, k) for t, k in zip(tid_list, counterparties, strict=True) if k is not None]
        for part in _parts(with_key):
            pipe.hset(self._txk, mapping=dict(part))
            writer.queued()
        for kind, seen in (("fk", snapshot.first_counterparty), ("fd", snapshot.first_device)):
            by_customer: dict[str, dict[Any, Any]] = {}
            for customer, name, first, tid in zip(
                seen.customers, seen.keys, seen.ts, seen.tids, strict=True
            ):
                by_customer.setdefault(customer, {})[name] = f"{first}:{tid}"
            for customer, pairs in by_customer.items():
                pipe.hset(self._key(kind, customer), mapping=pairs)
                writer.queued()
        first_uses = snapshot.device_first_uses()
        for device, uses in first_uses.items():
            pipe.zadd(self._key("d", device), {customer: first for first, customer in uses})
            writer.queued()
        for part in _parts(list(first_uses)):
            pipe.sadd(self._devices, *part)
            writer.queued()
        for part in _parts(list(snapshot.dropped_last.items())):
            pipe.hset(self._last, mapping=dict(part))
            writer.queued()
        pipe.hset(
            self._meta,
            mapping={
                "newest": snapshot.newest,
                "applied": snapshot.rows,
                "customer_rows": snapshot.rows,
                "counterparty_rows": counterparty_rows,
                "first_seen_pairs": len(snapshot.first_counterparty) + len(snapshot.first_device),
            },
        )
        writer.flush()
        self.client.hset(self._meta, "version", snapshot.version)


def _unpacked(members: bytes, lengths: bytes, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """READ's members end to end: their records (the fixed-size heads), and where each ends."""
    sizes = np.frombuffer(lengths, dtype=">u4").astype(np.int64)
    ends = np.cumsum(sizes)
    heads = np.frombuffer(members, dtype=np.uint8)[
        (ends - sizes)[:, None] + np.arange(dtype.itemsize)
    ]
    return np.ascontiguousarray(heads).view(dtype).reshape(len(sizes)), ends


def _customer_rows(members: bytes, lengths: bytes) -> Columns:
    records, ends = _unpacked(members, lengths, CUSTOMER_RECORD)
    size = CUSTOMER_RECORD.itemsize
    bounds = ends.tolist()
    starts = [0, *bounds[:-1]] if bounds else []
    return Columns(
        {
            "ts": records["ts"].astype(np.int64),
            "cents": records["cents"].astype(np.int64),
            "inbound": records["inbound"].astype(bool),
            "new_sender": records["new_sender"].astype(bool),
            "declined": records["declined"].astype(bool),
            "kind": records["kind"].astype(np.int16),
            "state": records["state"].astype(np.int32),
            "tid": np.array(
                [members[a + size : b].decode() for a, b in zip(starts, bounds, strict=True)],
                dtype=object,
            ),
        }
    )


def _counterparty_rows(members: bytes, lengths: bytes) -> Columns:
    """The counterparty's rows (their transaction ids are not read)."""
    records, _ = _unpacked(members, lengths, COUNTERPARTY_RECORD)
    at = records["reported"]
    reported = np.full(len(at), NEVER, dtype=np.int64)
    known = np.isfinite(at)
    reported[known] = at[known].astype(np.int64)
    return Columns(
        {
            "ts": records["ts"].astype(np.int64),
            "first_time": records["first_time"].astype(bool),
            "unusual": records["unusual"].astype(bool),
            "reported": reported,
        }
    )


def _members(heads: np.ndarray, tids: list[bytes]) -> list[bytes]:
    """Packed members: each row's record then its transaction id."""
    raw = heads.tobytes()
    size = heads.dtype.itemsize
    return [raw[i * size : (i + 1) * size] + tid for i, tid in enumerate(tids)]


def _parts(items: list[Any], size: int = 5_000) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Writer:
    """Pipelined writes (no MULTI): queue on `pipe`, then call `queued`."""

    def __init__(self, client: redis.Redis) -> None:
        self.pipe = client.pipeline(transaction=False)

    def queued(self) -> None:
        """Sends the queue once it holds LOAD_CHUNK commands."""
        if len(self.pipe) >= LOAD_CHUNK:
            self.pipe.execute()

    def flush(self) -> None:
        if len(self.pipe):
            self.pipe.execute()
