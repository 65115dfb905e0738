"""The online state's backends against the same scenarios: OnlineState (numpy tracks in the
process), RedisState (a real `redis-server`, started here on a unix socket) and DynamoDBState
(a table in moto's DynamoDB server on 127.0.0.1).

Both hand their rows to the one implementation of the features (state.compute_features), so
they must agree exactly, step by step: every window edge (1 hour, 1/7/30 days, the labelled
past), rows of the same instant, late rows, first-time counterparties and devices taken over by
late earlier rows, fraud reports before, after and without their transaction, missing keys,
pruning. A few values are computed by hand. Then, on a lake built by dbt: replaying its
transactions through either backend gives `ml_features`, and warming either from the export
gives the same state. Redis's and DynamoDB's state outlives the object that wrote it: another
client, or another process, computes the same features from it."""

from __future__ import annotations

import json
import math
import random
import statistics
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
import redis

from ml.features import FEATURES
from python_jobs.assistant.warehouse import view_sql
from python_jobs.generate import GeneratorConfig, generate
from python_jobs.lake.layout import Lake
from python_jobs.lake.published import current
from python_jobs.pipeline import build, export
from python_jobs.serve.contract import Transaction, epoch
from python_jobs.serve.dynamodb_state import DynamoDBState, StateTableError
from python_jobs.serve.parity import same
from python_jobs.serve.redis_state import RedisState
from python_jobs.serve.service import ServeConfig
from python_jobs.serve.state import (
    DAY,
    NEVER,
    RETENTION_DAYS,
    SNAPSHOT_COLUMNS,
    FirstSeen,
    OnlineState,
    Snapshot,
    StateBackend,
)
from python_jobs.serve.warmup import WARMUP_COLUMNS, warm
from python_jobs.tests.moto_s3 import UNINDEXED, dynamodb_client, new_table

T0 = datetime(2026, 3, 2, 12, 0, 0)  # a Monday, noon
ZERO = epoch(T0)

# -- a real Redis --------------------------------------------------------------------------


@pytest.fixture
def redis_client(redis_socket: Path) -> Iterator[redis.Redis]:
    """A client of the module's server, on an empty database."""
    client = redis.Redis(unix_socket_path=str(redis_socket))
    client.flushdb()
    yield client
    client.close()


def _stored(request: pytest.FixtureRequest, backend: str) -> StateBackend:
    """A persistent backend on an empty store: Redis, or a fresh DynamoDB table in moto."""
    if backend == "redis":
        return RedisState(request.getfixturevalue("redis_client"))
    return DynamoDBState.from_url(request.getfixturevalue("dynamodb_url"))


def reopened(state: StateBackend) -> StateBackend:
    """A new object on the same store: what a restarted service holds."""
    if isinstance(state, RedisState):
        return RedisState(state.client, state.prefix)
    assert isinstance(state, DynamoDBState)
    return DynamoDBState(state.client, state.table, state.prefix)


@pytest.fixture(params=["online", "redis", "dynamodb"])
def state(request: pytest.FixtureRequest) -> StateBackend:
    if request.param == "online":
        return OnlineState()
    return _stored(request, request.param)


@pytest.fixture(params=["redis", "dynamodb"])
def both(request: pytest.FixtureRequest) -> tuple[OnlineState, StateBackend]:
    """The in-process state, and a persistent one to compare with it."""
    return OnlineState(), _stored(request, request.param)


# -- scenarios -----------------------------------------------------------------------------


def tx(tid: str, at: int, **changes: Any) -> Transaction:
    """A transaction `at` seconds after T0 (C1 paying 100.00 by PIX unless told otherwise)."""
    values: dict[str, Any] = {
        "transaction_id": tid,
        "account_id": "A1",
        "customer_id": "C1",
        "event_ts": T0 + timedelta(seconds=at),
        "transaction_type": "PIX",
        "channel": "mobile",
        "direction": "outbound",
        "amount_cents": 10_000,
        "counterparty_key": "K1",
        "device_id": "D1",
        "state": "SP",
        "status": "approved",
    }
    values.update(changes)
    return Transaction(**values)


@dataclass(frozen=True)
class Probe:
    """Featured, not applied."""

    label: str
    tx: Transaction


@dataclass(frozen=True)
class Report:
    tid: str
    at: int  # seconds after T0


@dataclass(frozen=True)
class Prune:
    label: str


Step = Transaction | Probe | Report | Prune


def step(state: StateBackend, s: Step) -> tuple[str, Any] | None:
    """Plays one step; returns what it produced (features, or the prune's result)."""
    if isinstance(s, Transaction):
        featurized = state.featurize(s)
        state.apply(s, featurized)
        return s.transaction_id, featurized.features
    if isinstance(s, Probe):
        return s.label, state.featurize(s.tx).features
    if isinstance(s, Report):
        state.apply_report(s.tid, ZERO + s.at)
        return None
    return s.label, {"dropped": state.prune(), "size": state.size()}


def play(state: StateBackend, steps: list[Step]) -> dict[str, Any]:
    out = {}
    for s in steps:
        result = step(state, s)
        if result is not None:
            out[result[0]] = result[1]
    return out


WINDOW_ROWS = [  # (id, seconds after T0, cents, declined): C1's rows around each window edge
    ("W-a", -30 * DAY, 409_600, False),  # exactly 30 days before: in no window
    ("W-b", -30 * DAY + 1, 200, False),
    ("W-c", -7 * DAY, 400, False),
    ("W-d", -7 * DAY + 1, 800, False),
    ("W-e", -DAY, 1_600, False),
    ("W-f", -DAY + 1, 3_200, False),
    ("W-g", -3_600, 6_400, True),  # exactly an hour before
    ("W-h", -3_599, 12_800, True),
]
_window = {tid: tx(tid, at, amount_cents=c, status="declined" if d else "approved")
           for tid, at, c, d in WINDOW_ROWS}  # fmt: skip
CUSTOMER_WINDOWS: list[Step] = [
    # late rows: each arrives before rows later than it that are already stored
    *(_window[tid] for tid in ("W-h", "W-g", "W-b", "W-f", "W-a", "W-d", "W-c", "W-e")),
    Probe("alone", tx("W-m", 0)),
    # the same instant as the probe: one id smaller, one larger
    tx("W-l", 0, amount_cents=25_600),
    tx("W-z", 0, amount_cents=51_200),
    Probe("with peers", tx("W-m", 0)),
    Probe("first of the instant", tx("W-0", 0)),
    Probe("other kind", tx("W-m", 0, direction="inbound")),
]

COUNTERPARTY_ROWS = [  # (id, seconds after T0, customer): K9's rows around the windows' edges
    ("K-a", -37 * DAY, "C2"),  # exactly label delay + 30 days before: in no window
    ("K-b", -37 * DAY + 100, "C3"),
    ("K-c", -8 * DAY + 1, "C4"),
    ("K-d", -7 * DAY, "C5"),  # the labelled past ends exactly here
    ("K-e", -7 * DAY + 1, "C6"),
    ("K-f", -DAY + 1, "C7"),
]
COUNTERPARTY_WINDOWS: list[Step] = [
    Report("K-g", -2),  # before its transaction arrives
    Report("K-zzz", -100),  # a transaction that never arrives
    *(tx(tid, at, customer_id=c, counterparty_key="K9") for tid, at, c in COUNTERPARTY_ROWS),
    tx("K-g", -2 * DAY, customer_id="C8", counterparty_key="K9"),
    Report("K-d", -1),
    Report("K-b", 1),  # after the probe's time
    Report("K-c", 0),  # at the probe's time: counted
    Report("K-e", 5),
    Report("K-e", -5),  # a second report of the same transaction, earlier: the first counts
    Report("K-e", 3),
    Probe("at t", tx("K-p", 0, counterparty_key="K9")),
    Probe("a second later", tx("K-p", 1, counterparty_key="K9")),
]

FIRST_TIMES: list[Step] = [
    tx("F-2", 0, customer_id="C2", counterparty_key="K2", direction="inbound", amount_cents=30_000),
    # late and earlier: the first transaction of C2 with K2 now, F-2 no longer
    tx("F-1", -3_600, customer_id="C2", counterparty_key="K2", direction="inbound"),
    Probe("again", tx("F-p", 60, customer_id="C2", counterparty_key="K2", direction="inbound")),
    Probe("outbound", tx("F-o", 60, customer_id="C2", counterparty_key="K3", amount_cents=5_000)),
    Probe("another customer", tx("F-q", 60, customer_id="C3", counterparty_key="K2")),
    # the same instant: the smaller id is the first
    tx("F-5", 600, customer_id="C4", counterparty_key="K2"),
    tx("F-4", 600, customer_id="C4", counterparty_key="K2"),
    Probe("after the tie", tx("F-r", 700, customer_id="C5", counterparty_key="K2")),
    # devices: first uses, then late earlier ones
    tx("V-1", -40 * DAY, customer_id="C1", device_id="DV"),
    tx("V-2", -10 * DAY, customer_id="C2", device_id="DV"),
    tx("V-3", -DAY, customer_id="C3", device_id="DV"),
    Probe("old device", tx("V-p1", 0, customer_id="C1", device_id="DV")),
    Probe("new device", tx("V-p4", 0, customer_id="C4", device_id="DV")),
    tx("V-3b", -20 * DAY, customer_id="C3", device_id="DV"),
    tx("V-2b", -35 * DAY, customer_id="C2", device_id="DV"),
    Probe("first use moved out", tx("V-p2", 0, customer_id="C2", device_id="DV")),
    Probe("first use moved in", tx("V-p3", 0, customer_id="C3", device_id="DV")),
    Probe("new device later", tx("V-p4", 0, customer_id="C4", device_id="DV")),
]

NULLS_AND_STATES: list[Step] = [
    tx("N-1", -2 * DAY),
    tx("N-2", -DAY),
    tx("N-3", -3_600, state="RJ", counterparty_key="K5"),  # no RJ in C1's 30 days: unusual
    tx("N-4", -60, customer_id="C9", counterparty_key=None, device_id=None, state=None),
    Probe("no keys", tx("N-p", 0, counterparty_key=None, device_id=None, state=None)),
    Probe("new customer", tx("N-q", 0, customer_id="C2", counterparty_key="K5")),
    Probe("unseen state", tx("N-r", 0, state="MG")),
    Probe("usual state", tx("N-s", 0)),
    Probe("declined", tx("N-t", 0, status="declined")),
]

LATER = RETENTION_DAYS * DAY + DAY + 10  # so that the horizon falls just after a day
RETENTION: list[Step] = [
    tx("R-1", 0),
    tx("R-2", DAY),
    tx("R-3", LATER, customer_id="C2"),
    Prune("first prune"),
    Report("R-1", LATER),  # forgotten: a report waits for it as for an unknown one
    Probe("after the prune", tx("R-p", LATER + 5)),
    tx("R-0", -5 * DAY),  # older than the horizon: held until the next prune
    Probe("a late row back", tx("R-p", LATER + 5)),
    Prune("second prune"),
    Probe("after the second prune", tx("R-p", LATER + 5)),
]

SCENARIOS = {
    "customer windows": CUSTOMER_WINDOWS,
    "counterparty windows": COUNTERPARTY_WINDOWS,
    "first times": FIRST_TIMES,
    "nulls and states": NULLS_AND_STATES,
    "retention": RETENTION,
}


def random_steps(seed: int, n: int = 600) -> list[Step]:
    """Dense histories: few keys, same instants, late rows, reports of past and future ids."""
    rng = random.Random(seed)
    clock = 0
    transactions = []
    for i in range(n):
        clock += rng.choice([0, 0, 1, 60, 3_599, 3_600, DAY // 4, DAY])
        at = clock
        if rng.random() < 0.15:
            at -= rng.choice([1, 3_600, DAY, 7 * DAY, 30 * DAY, 37 * DAY, 60 * DAY])
        transactions.append(
            tx(
                f"X{rng.randrange(1_000):03d}-{i}",
                at,
                customer_id=f"C{rng.randrange(8)}",
                transaction_type=rng.choice(["PIX", "TED", "BOLETO", "DEBIT", "CREDIT"]),
                direction=rng.choice(["inbound", "outbound"]),
                amount_cents=rng.choice([100, 1_050, 99_999, rng.randrange(1, 10**7)]),
                counterparty_key=rng.choice([None, "K0", "K1", "K2", "K3", "K4"]),
                device_id=rng.choice([None, "D0", "D1", "D2"]),
                state=rng.choice([None, "SP", "RJ", "MG"]),
                status=rng.choice(["approved"] * 4 + ["declined"]),
            )
        )
    steps: list[Step] = []
    for i, t in enumerate(transactions):
        steps.append(t)
        if rng.random() < 0.1:
            target = rng.choice(transactions)  # earlier or not arrived yet
            steps.append(Report(target.transaction_id, clock + rng.choice([-DAY, 0, DAY])))
        if i % 150 == 149:
            steps.append(Prune(f"prune {i}"))
    return steps


# -- the two backends agree ----------------------------------------------------------------


MOTO_STEPS = 200


@pytest.mark.parametrize(
    "steps",
    [*SCENARIOS.values(), random_steps(1), random_steps(2)],
    ids=[*SCENARIOS, "random 1", "random 2"],
)
def test_both_backends_give_the_same_features_at_every_step(
    both: tuple[OnlineState, StateBackend], steps: list[Step]
) -> None:
    online, stored = both
    if isinstance(stored, DynamoDBState):
        # moto answers each request in milliseconds: the first MOTO_STEPS steps of a random
        # sequence (a prune, reports, late rows among them) on DynamoDB, every step elsewhere
        steps = steps[:MOTO_STEPS]
    for i, s in enumerate(steps):
        expected = step(online, s)
        got = step(stored, s)
        assert repr(got) == repr(expected), f"step {i}: {s}"  # repr: floats bit for bit
        if isinstance(s, Transaction):
            assert stored.knows(s.transaction_id)
    assert stored.size() == online.size()
    assert (stored.newest, stored.applied) == (online.newest, online.applied)
    assert len(stored.customers) == len(online.customers)
    assert len(stored.transactions) == len(online.transactions)


# -- hand-computed values, on each backend -------------------------------------------------


def test_customer_windows_include_their_far_edge_out_and_the_same_instant_in(
    state: StateBackend,
) -> None:
    out = play(state, CUSTOMER_WINDOWS)
    alone = out["alone"]
    # (t - N, t]: the row exactly N before is out, the one a second later in
    assert [alone[f"cust_tx_count_{n}d"] for n in (1, 7, 30)] == [3, 5, 7]
    assert [alone[f"cust_amount_sum_{n}d"] for n in (1, 7, 30)] == [224.0, 248.0, 254.0]
    assert alone["cust_amount_avg_1d"] == 224.0 / 3
    assert alone["amount_ratio_to_avg_7d"] == 100.0 / (248.0 / 5)
    assert alone["cust_tx_count_1h"] == 1 and alone["cust_declined_count_1h"] == 1
    assert alone["cust_seconds_since_prev_tx"] == 3_599
    assert alone["amount_ratio_to_max_30d"] == 100.0 / 128.0  # not W-a's 4096.00
    peers = out["with peers"]
    assert [peers[f"cust_tx_count_{n}d"] for n in (1, 7, 30)] == [5, 7, 9]
    assert [peers[f"cust_amount_sum_{n}d"] for n in (1, 7, 30)] == [992.0, 1016.0, 1022.0]
    assert peers["cust_tx_count_1h"] == 3
    assert peers["cust_seconds_since_prev_tx"] == 0  # W-l is before it in (time, id)
    assert peers["amount_ratio_to_max_30d"] == 100.0 / 128.0  # the same instant is not earlier
    amounts = [2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert math.isclose(
        peers["amount_zscore_30d"],
        (100 - statistics.mean(amounts)) / statistics.stdev(amounts),
        rel_tol=1e-12,
    )
    assert out["first of the instant"]["cust_seconds_since_prev_tx"] == 3_599
    assert out["other kind"]["amount_ratio_to_max_30d"] is None  # no earlier inbound PIX


def test_counterparty_windows_and_the_labelled_past_count_reports_made_by_then(
    state: StateBackend,
) -> None:
    out = play(state, COUNTERPARTY_WINDOWS)
    at = out["at t"]
    assert [at[f"cp_tx_count_{n}d"] for n in (1, 7, 30)] == [1, 3, 5]
    assert at["cp_fraud_reported_30d"] == 4  # K-c, K-d, K-e (its first report), K-g (pending)
    assert [at[f"cp_labelled_tx_count_{n}d"] for n in (1, 7, 30)] == [2, 2, 3]
    # K-b's report comes a second after t
    assert [at[f"cp_labelled_fraud_rate_{n}d"] for n in (1, 7, 30)] == [1.0, 1.0, 2 / 3]
    assert at["is_first_time_counterparty"] is True
    assert at["cp_new_customer_count_1d"] == 1  # K-f, C7's first with K9
    assert at["cp_unusual_state_share_1d"] == 0.0
    later = out["a second later"]
    assert later["cp_labelled_tx_count_30d"] == 4  # K-b, K-c, K-d and now K-e
    assert later["cp_labelled_fraud_rate_30d"] == 1.0
    assert later["cp_fraud_reported_30d"] == 4


def test_a_late_earlier_row_becomes_the_first_time_and_the_first_use(
    state: StateBackend,
) -> None:
    out = play(state, FIRST_TIMES)
    assert out["F-2"]["is_first_time_counterparty"] is True
    assert out["F-1"]["is_first_time_counterparty"] is True
    again = out["again"]
    assert again["is_first_time_counterparty"] is False
    assert again["cust_inbound_count_1d"] == 2
    assert again["cust_inbound_new_sender_count_1d"] == 1  # F-1 only: F-2 was unmarked
    assert again["cust_inbound_new_sender_count_7d"] == 1
    assert again["outbound_to_inbound_ratio_1d"] == 0.0  # inbound
    assert out["outbound"]["cust_inbound_amount_1d"] == 400.0
    assert out["outbound"]["outbound_to_inbound_ratio_1d"] == 50.0 / 400.0
    assert out["another customer"]["cp_new_customer_count_1d"] == 1
    assert out["F-4"]["is_first_time_counterparty"] is True  # (600, F-4) < (600, F-5)
    tie = out["after the tie"]
    assert tie["cp_tx_count_1d"] == 4 and tie["cp_new_customer_count_1d"] == 2  # F-1, F-4
    old = out["old device"]
    assert old["is_new_device"] is False
    assert old["cust_device_seconds_since_first_use"] == 40 * DAY
    assert old["device_other_customers_30d"] == 2  # C2, C3
    new = out["new device"]
    assert new["is_new_device"] is True and new["cust_device_seconds_since_first_use"] == 0
    assert new["device_other_customers_30d"] == 2
    assert out["V-3b"]["is_new_device"] is True  # earlier than C3's stored first use
    moved_out = out["first use moved out"]
    assert moved_out["cust_device_seconds_since_first_use"] == 35 * DAY
    assert moved_out["device_other_customers_30d"] == 1  # C3; C2's own first use is older
    moved_in = out["first use moved in"]
    assert moved_in["cust_device_seconds_since_first_use"] == 20 * DAY
    assert moved_in["device_other_customers_30d"] == 0
    assert out["new device later"]["device_other_customers_30d"] == 1


def test_missing_keys_and_states(state: StateBackend) -> None:
    out = play(state, NULLS_AND_STATES)
    assert out["N-3"]["cust_same_state_share_30d"] == 0.0  # the unusual one
    none = out["no keys"]
    assert none["is_first_time_counterparty"] is False and none["is_new_device"] is False
    assert none["cust_device_seconds_since_first_use"] is None
    assert none["device_other_customers_30d"] == 0
    assert none["cust_same_state_share_30d"] is None
    assert none["cp_tx_count_30d"] == 0 and none["cp_unusual_state_share_1d"] is None
    assert none["cp_labelled_fraud_rate_30d"] is None
    fresh = out["new customer"]
    assert fresh["cust_seconds_since_prev_tx"] is None
    assert fresh["cust_same_state_share_30d"] is None  # no history: no share
    assert fresh["cp_unusual_state_share_1d"] == 1.0  # N-3 was unusual for C1
    assert out["unseen state"]["cust_same_state_share_30d"] == 0.0
    assert out["usual state"]["cust_same_state_share_30d"] == 2 / 3
    assert out["declined"]["cust_declined_count_1h"] == 0  # its own status is not history


def test_prune_forgets_what_no_window_reaches_and_keeps_the_previous_time(
    state: StateBackend,
) -> None:
    out = play(state, RETENTION)
    assert out["first prune"]["dropped"] == 2
    assert out["second prune"]["dropped"] == 1
    assert not state.knows("R-1") and not state.knows("R-0") and state.knows("R-3")
    t = LATER + 5
    assert out["after the prune"]["cust_tx_count_30d"] == 0
    assert out["after the prune"]["cust_seconds_since_prev_tx"] == t - DAY
    assert out["a late row back"]["cust_seconds_since_prev_tx"] == t + 5 * DAY
    # the latest pruned row stays the previous one, though a late earlier one was pruned since
    assert out["after the second prune"]["cust_seconds_since_prev_tx"] == t - DAY
    assert out["second prune"]["size"]["customer_rows"] == 1


# -- the Redis backend's own guarantees ----------------------------------------------------


def test_redis_state_outlives_its_object_and_is_shared_by_processes(
    redis_client: redis.Redis, redis_socket: Path
) -> None:
    steps = random_steps(3, n=300)
    online, writer = OnlineState(), RedisState(redis_client)
    for s in steps:
        step(online, s)
        step(writer, s)
    probe = tx("PROBE", 10**7, customer_id="C1", counterparty_key="K1", device_id="D1")
    expected = online.featurize(probe).features
    # a new client and state object: what a restarted service sees
    with redis.Redis(unix_socket_path=str(redis_socket)) as other:
        restarted = RedisState(other)
        assert all(restarted.knows(s.transaction_id) == online.knows(s.transaction_id)
                   for s in steps if isinstance(s, Transaction))  # fmt: skip
        assert repr(restarted.featurize(probe).features) == repr(expected)
        assert restarted.size() == online.size()
    # another process
    code = (
        "import json, sys, redis\n"
        "from python_jobs.serve.redis_state import RedisState\n"
        "from python_jobs.tests.test_serve_state import tx\n"
        "state = RedisState(redis.Redis(unix_socket_path=sys.argv[1]))\n"
        "probe = tx('PROBE', 10**7, customer_id='C1', counterparty_key='K1', device_id='D1')\n"
        "print(json.dumps(state.featurize(probe).features))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(redis_socket)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert json.loads(result.stdout) == json.loads(json.dumps(expected))


def test_redis_states_under_other_prefixes_do_not_meet(redis_client: redis.Redis) -> None:
    first, second = RedisState(redis_client, "a:"), RedisState(redis_client, "b:")
    row = tx("P-1", 0)
    first.apply(row, first.featurize(row))
    assert first.knows("P-1") and not second.knows("P-1")
    second.load(Snapshot.empty("v1"))  # drops b:*, not a:*
    assert first.knows("P-1") and second.loaded() == "v1" and first.loaded() is None
    # a transaction applied twice (two writers) is stored once
    first.apply(row, first.featurize(row))
    assert first.size()["customer_rows"] == 1 and first.applied == 1


def test_redis_state_needs_bytes_replies(redis_socket: Path) -> None:
    with (
        redis.Redis(unix_socket_path=str(redis_socket), decode_responses=True) as client,
        pytest.raises(ValueError, match="decode_responses"),
    ):
        RedisState(client)


# -- the DynamoDB backend's own guarantees -------------------------------------------------


def test_dynamodb_state_outlives_its_object_and_is_shared_by_processes(dynamodb_url: str) -> None:
    steps = random_steps(3, n=300)
    online, writer = OnlineState(), DynamoDBState.from_url(dynamodb_url)
    for s in steps:
        step(online, s)
        step(writer, s)
    probe = tx("PROBE", 10**7, customer_id="C1", counterparty_key="K1", device_id="D1")
    expected = online.featurize(probe).features
    # a new client and state object: what a restarted service sees
    restarted = DynamoDBState.from_url(dynamodb_url)
    assert all(restarted.knows(s.transaction_id) == online.knows(s.transaction_id)
               for s in steps if isinstance(s, Transaction))  # fmt: skip
    assert repr(restarted.featurize(probe).features) == repr(expected)
    assert restarted.size() == online.size()
    assert (restarted.newest, restarted.applied) == (online.newest, online.applied)
    # another process, through the URL `banklake serve --state` takes (the environment
    # points boto3 at moto)
    code = (
        "import json, sys\n"
        "from python_jobs.serve.dynamodb_state import DynamoDBState\n"
        "from python_jobs.tests.test_serve_state import tx\n"
        "state = DynamoDBState.from_url(sys.argv[1])\n"
        "probe = tx('PROBE', 10**7, customer_id='C1', counterparty_key='K1', device_id='D1')\n"
        "print(json.dumps(state.featurize(probe).features))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, dynamodb_url],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert json.loads(result.stdout) == json.loads(json.dumps(expected))


def test_a_retried_apply_counts_once_and_prefixes_do_not_meet(dynamodb_url: str) -> None:
    first = DynamoDBState.from_url(dynamodb_url, "a:")
    second = DynamoDBState.from_url(dynamodb_url, "b:")
    row = tx("P-1", 0, direction="inbound")
    featurized = first.featurize(row)
    first.apply(row, featurized)
    first.apply(row, featurized)  # a retry after a lost answer
    reopened(first).apply(row, featurized)  # another writer, read nothing
    assert first.size()["customer_rows"] == 1 and first.applied == 1
    assert first.size()["first_seen_pairs"] == 2 and len(first.transactions) == 1
    assert first.knows("P-1") and not second.knows("P-1")
    second.load(Snapshot.empty("v1"))  # drops b:*, not a:*
    assert first.knows("P-1") and second.loaded() == "v1" and first.loaded() is None
    # a report applied twice: the first report's time stays
    first.apply_report("P-1", ZERO + 50)
    first.apply_report("P-1", ZERO + 90)
    probe = tx("P-2", 100 * 60, customer_id="C2")
    assert first.featurize(probe).features["cp_fraud_reported_30d"] == 1


def test_an_apply_interrupted_before_its_gate_is_not_its_own_past(dynamodb_url: str) -> None:
    """Rows written by an apply that stopped before its transaction item (a crash, a
    throttled call) are not read as history by the transaction's next featurize, and the
    next apply completes it, counting it once."""
    online, state = OnlineState(), DynamoDBState.from_url(dynamodb_url)
    for s in (tx("I-0", -60, device_id="D9"), tx("I-1", -30, customer_id="C2")):
        step(online, s)
        step(state, s)
    row = tx("I-2", 0, direction="inbound", counterparty_key="K7", device_id="D9")
    featurized = state.featurize(row)
    state._write_all(state._rows(row, featurized, state._read(row)[1]))  # then it stopped
    assert not state.knows("I-2")
    again = state.featurize(row)
    assert repr(again.features) == repr(online.featurize(row).features)
    state.apply(row, again)
    online.apply(row, online.featurize(row))
    assert state.size() == online.size()
    assert (state.newest, state.applied) == (online.newest, online.applied)
    probe = tx("I-p", 60, customer_id="C2", counterparty_key="K7", device_id="D9")
    assert repr(state.featurize(probe).features) == repr(online.featurize(probe).features)


def test_moto_queries_indexed_by_partition_answer_as_moto_s_own(endpoint: str) -> None:
    """The tests' speed-up of moto's Query (moto_s3.index_moto_dynamodb_queries) changes no
    answer: the same queries with and without it, over several partitions, pages included."""
    client = dynamodb_client(endpoint)
    table = new_table(client)
    rng = random.Random(7)
    for pk in ("a", "b", "ab", "c#1"):
        for i in range(60):
            item = {"pk": {"S": pk}, "sk": {"S": f"r#{rng.randrange(100):03d}#{i}"}}
            client.put_item(TableName=table, Item={**item, "v": {"N": str(i)}})
    queries: list[dict[str, Any]] = [
        {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": pk}}}
        for pk in ("a", "ab", "c#1", "none")
    ]
    between = "pk = :p AND sk BETWEEN :l AND :h"
    queries += [
        {
            "KeyConditionExpression": between,
            "ExpressionAttributeValues": {
                ":p": {"S": "b"},
                ":l": {"S": "r#020"},
                ":h": {"S": "r#070$"},
            },
            **extra,
        }
        for extra in ({}, {"ScanIndexForward": False}, {"Limit": 7}, {"ConsistentRead": True})
    ]
    queries.append(
        {
            "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
            "ExpressionAttributeValues": {":p": {"S": "ab"}, ":s": {"S": "r#05"}},
        }
    )

    def answers() -> list[Any]:
        out = []
        for query in queries:
            pages = client.get_paginator("query").paginate(TableName=table, **query)
            out.append([page["Items"] for page in pages])
        return out

    indexed = answers()
    UNINDEXED.set()
    try:
        assert answers() == indexed
    finally:
        UNINDEXED.clear()
    assert sum(len(page) for pages in indexed for page in pages) > 100


def test_unknown_state_urls_and_missing_tables_are_refused_by_name(dynamodb_url: str) -> None:
    with pytest.raises(ValueError, match="unknown scheme 'memcached'"):
        ServeConfig(lake=Path("lake"), state_url="memcached://localhost")
    with pytest.raises(StateTableError, match="no DynamoDB table 'nowhere'"):
        DynamoDBState.from_url("dynamodb://nowhere")
    with pytest.raises(ValueError, match="expected dynamodb://TABLE"):
        DynamoDBState.from_url("dynamodb://")


def _operation(target: str | bytes) -> str:
    """DynamoDB's operation from a request's X-Amz-Target ("DynamoDB_20120810.Query")."""
    return (target.decode() if isinstance(target, bytes) else target).split(".")[1]


def test_a_featurize_is_four_requests_at_once_and_an_apply_three(
    dynamodb_url: str,
) -> None:
    """Counted, not timed: the requests each call sends (botocore's before-send event)."""
    state = DynamoDBState.from_url(dynamodb_url)
    sent: list[str] = []
    state.client.meta.events.register(
        "before-send.dynamodb",
        lambda request, **_: sent.append(_operation(request.headers["X-Amz-Target"])),
    )
    for i in range(3):
        row = tx(f"RT-{i}", i * 60)
        assert not state.knows(row.transaction_id)
        featurized = state.featurize(row)
        state.apply(row, featurized)
    # per transaction: GetItem (knows); three Query and one BatchGetItem (featurize); its
    # rows' BatchWriteItem, the gate's PutItem, the counters' UpdateItem (apply); the first
    # one also writes the markers of its new customer, counterparty and device
    per_transaction = ["GetItem", "BatchGetItem", "Query", "Query", "Query"]
    per_transaction += ["BatchWriteItem", "PutItem", "UpdateItem"]
    assert sorted(sent) == sorted([*(per_transaction * 3), "BatchWriteItem"])


# -- loading an export ---------------------------------------------------------------------


def _snapshot() -> Snapshot:
    """A hand-made export: rows with and without keys, reported, first-time and unusual ones,
    first uses inside and beyond the retention, a customer's last row before it."""
    order = (
        *("tid", "customer", "counterparty", "ts", "cents", "inbound", "declined", "state"),
        *("first_time", "unusual", "reported"),
    )
    rows = [  # in `order`, ts in seconds after T0
        ("S-1", "C1", "K1", -40 * DAY, 1_000, False, False, "SP", True, False, NEVER),
        ("S-2", "C1", "K1", -9 * DAY, 2_000, False, False, "SP", False, False, ZERO - 3 * DAY),
        ("S-3", "C2", "K1", -8 * DAY, 3_000, True, False, "RJ", True, False, NEVER),
        ("S-4", "C2", None, -DAY, 4_000, False, True, None, False, False, NEVER),
        ("S-5", "C1", "K2", -3_000, 5_000, True, False, "MG", True, True, NEVER),
        ("S-6", "C3", "K2", -60, 6_000, False, False, "SP", True, False, ZERO - 30),
    ]
    columns = dict(zip(order, zip(*rows, strict=True), strict=True))
    recent: dict[str, np.ndarray] = {
        name: np.array(columns[name], dtype=SNAPSHOT_COLUMNS[name]) for name in order
    }
    recent["ts"] += ZERO
    recent["kind"] = recent["inbound"].astype(np.int16)  # PIX: 0 outbound, 1 inbound
    first_counterparty = FirstSeen(
        ["C1", "C2", "C1", "C3", "C4"],
        ["K1", "K1", "K2", "K2", "K1"],
        [ZERO - 40 * DAY, ZERO - 8 * DAY, ZERO - 3_000, ZERO - 60, ZERO - 400 * DAY],
        ["S-1", "S-3", "S-5", "S-6", "OLD-1"],
    )
    first_device = FirstSeen(
        ["C1", "C2", "C3"],
        ["D1", "D1", "D1"],
        [ZERO - 400 * DAY, ZERO - 8 * DAY, ZERO - 60],
        ["OLD-2", "S-3", "S-6"],
    )
    return Snapshot("v1", ZERO, recent, first_counterparty, first_device, {"C4": ZERO - 99})


def _probes(customers: list[str], keys: list[str | None], at: int) -> list[Transaction]:
    return [
        tx(f"Q-{c}-{k}-{i}", at + i, customer_id=c, counterparty_key=k, state=s, device_id=d)
        for i, (c, k, s, d) in enumerate(
            (c, k, s, d)
            for c in customers
            for k in keys
            for s in ("SP", "RJ", None)
            for d in ("D1", None)
        )
    ]


def test_a_loaded_export_gives_the_same_features_on_both_backends(
    both: tuple[OnlineState, StateBackend],
) -> None:
    online, stored = both
    snapshot = _snapshot()
    online.load(snapshot)
    stored.load(snapshot)
    assert stored.size() == online.size() and stored.loaded() == online.loaded() == "v1"
    assert (stored.newest, stored.applied) == (online.newest, online.applied)
    probes = _probes(["C1", "C2", "C3", "C4", "C5"], ["K1", "K2", None], 10)
    for probe in probes:
        assert repr(stored.featurize(probe).features) == repr(online.featurize(probe).features)
    c4 = stored.featurize(tx("Q", 10, customer_id="C4", counterparty_key="K1"))
    assert c4.features["cust_seconds_since_prev_tx"] == 109  # its row before the export
    assert c4.first_time_counterparty is False  # its first, 400 days ago, is remembered
    # the loaded rows take reports and late earlier rows as applied ones do
    steps: list[Step] = [
        Report("S-3", -DAY),
        Report("S-6", -3_600),
        tx("S-0", -10 * DAY, customer_id="C2", counterparty_key="K1", direction="inbound"),
        tx("S-7", -4_000, counterparty_key="K2"),
        *probes,
    ]
    for s in steps:
        assert repr(step(stored, s)) == repr(step(online, s))


# -- a lake built by dbt -------------------------------------------------------------------

LAKE_CONFIG = GeneratorConfig(seed=5, start_date=date(2026, 9, 1), days=12, customers=150)


@pytest.fixture(scope="module")
def built_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    lake = Lake(tmp_path_factory.mktemp("state") / "lake")
    generate(lake, LAKE_CONFIG)
    assert build(lake).success
    export(lake)
    return lake


def _published(lake: Lake) -> duckdb.DuckDBPyConnection:
    version = current(lake)
    con = duckdb.connect(":memory:")
    con.execute("create schema curated")
    for name in ("fct_transactions", "ml_features"):
        con.execute(view_sql(version, version.marts[name]))
    return con


TRANSACTIONS_SQL = """
select
    transaction_id, account_id, customer_id, event_ts, transaction_type, channel, direction,
    cast(round(amount_brl * 100) as bigint), counterparty_key, device_id, state, status,
    fraud_reported_at
from curated.fct_transactions
order by event_ts, transaction_id
"""


def _replayed_later_peers(rows: list[Transaction]) -> set[str]:
    """Transactions with a row of the same instant, customer, counterparty or device replayed
    after them: dbt's windows hold it, the state did not yet (never another difference)."""
    peers: dict[tuple[str, str, datetime], list[str]] = defaultdict(list)
    for r in rows:
        for kind, key in (("c", r.customer_id), ("k", r.counterparty_key), ("d", r.device_id)):
            if key is not None:
                peers[(kind, key, r.event_ts)].append(r.transaction_id)
    touched = set()
    for ids in peers.values():
        touched |= set(sorted(ids)[:-1])
    return touched


@pytest.mark.dbt
def test_replaying_the_lake_through_either_backend_gives_ml_features(
    built_lake: Lake, redis_client: redis.Redis
) -> None:
    """(Redis and the process; DynamoDB's replay of a lake is the served one of
    test_serve_replay.py: here, through moto, it would take over ten minutes.)"""
    both = (OnlineState(), RedisState(redis_client))
    con = _published(built_lake)
    raw = con.execute(TRANSACTIONS_SQL).fetchall()
    rows = [Transaction(*r[:12]) for r in raw]
    reports = sorted((epoch(r[12]), r[0]) for r in raw if r[12] is not None)
    built = {
        r[0]: dict(zip(FEATURES, r[1:], strict=True))
        for r in con.execute(
            f"select transaction_id, {', '.join(FEATURES)} from curated.ml_features"
        ).fetchall()
    }
    touched = _replayed_later_peers(rows)
    assert len(rows) > 5_000 and reports and len(touched) < len(rows) * 0.01
    mismatches: dict[str, list[str]] = defaultdict(list)
    for state in both:
        pending = iter(reports)
        report = next(pending, None)
        for row in rows:
            while report is not None and report[0] <= row.epoch:
                state.apply_report(report[1], report[0])
                report = next(pending, None)
            featurized = state.featurize(row)
            state.apply(row, featurized)
            if row.transaction_id not in touched:
                wrong = [
                    name
                    for name in FEATURES
                    if not same(featurized.features[name], built[row.transaction_id][name])
                ]
                if wrong:
                    mismatches[type(state).__name__].append(f"{row.transaction_id}: {wrong}")
    assert dict(mismatches) == {}
    assert both[1].size() == both[0].size()


@pytest.mark.dbt
def test_warming_a_stored_state_from_the_export_equals_warming_the_process(
    built_lake: Lake, both: tuple[OnlineState, StateBackend]
) -> None:
    online, stored = both
    warmed = warm(online, built_lake)
    assert warmed.rows > 5_000
    assert warm(stored, built_lake).rows == warmed.rows
    assert stored.size() == online.size()
    assert (stored.newest, stored.applied, stored.loaded()) == (
        online.newest,
        online.applied,
        online.loaded(),
    )
    rows = [
        Transaction(*r[:12]) for r in _published(built_lake).execute(TRANSACTIONS_SQL).fetchall()
    ]
    last = datetime(1970, 1, 1) + timedelta(seconds=online.newest)
    n = 100 if isinstance(stored, DynamoDBState) else 400  # moto: milliseconds a request
    probes = [
        replace(r, transaction_id=f"PROBE-{i}", event_ts=last + timedelta(seconds=i))
        for i, r in enumerate(rows[-n:])
    ]
    for probe in probes:
        assert repr(stored.featurize(probe).features) == repr(online.featurize(probe).features)
    # then the same arrivals and reports on both
    steps: list[Step] = []
    for i, probe in enumerate(probes[: n // 2]):
        steps.append(probe)
        if i % 20 == 0:
            steps.append(Report(rows[-1 - i].transaction_id, probe.epoch - ZERO))
    for s in steps:
        assert repr(step(stored, s)) == repr(step(online, s))
    # a restart: reusing the stored state keeps what was applied; a plain warm-up reloads
    restarted = reopened(stored)
    assert warm(restarted, built_lake, reuse=True).reused
    assert restarted.knows("PROBE-0")
    assert restarted.size() == online.size()
    reloaded = warm(restarted, built_lake)
    assert not reloaded.reused and reloaded.rows == warmed.rows
    assert not restarted.knows("PROBE-0")


def test_the_warm_up_columns_are_the_built_marts_own_and_all_it_reads(
    built_lake: Lake, tmp_path: Path
) -> None:
    """WARMUP_COLUMNS (what `export --target athena` unloads) against the marts dbt built:
    each column is there with that type, and an export of only those columns warms the same
    state as the whole export."""
    from python_jobs.export import publish_marts

    version = current(built_lake)
    for mart, wanted in WARMUP_COLUMNS.items():
        built = {name: kind.replace(" ", "") for name, kind in version.marts[mart].columns}
        assert {name: built.get(name) for name, _ in wanted} == dict(wanted), mart
    narrow = Lake(tmp_path / "narrow")
    con = _published(built_lake)
    try:
        con.execute("create schema narrow")
        for mart, wanted in WARMUP_COLUMNS.items():
            names = ", ".join(name for name, _ in wanted)
            con.execute(f"create table narrow.{mart} as select {names} from curated.{mart}")
            con.execute(f"drop view curated.{mart}")
            con.execute(f"create table curated.{mart} as select * from narrow.{mart}")
        publish_marts(con, narrow, list(WARMUP_COLUMNS))
    finally:
        con.close()
    whole, narrowed = OnlineState(), OnlineState()
    assert warm(narrowed, narrow).rows == warm(whole, built_lake).rows > 5_000
    rows = [
        Transaction(*r[:12]) for r in _published(built_lake).execute(TRANSACTIONS_SQL).fetchall()
    ]
    last = datetime(1970, 1, 1) + timedelta(seconds=whole.newest)
    for i, row in enumerate(rows[-300:]):
        probe = replace(row, transaction_id=f"PROBE-{i}", event_ts=last + timedelta(seconds=i))
        assert repr(narrowed.featurize(probe).features) == repr(whole.featurize(probe).features)
    assert (narrowed.size(), narrowed.newest) == (whole.size(), whole.newest)


@pytest.mark.parametrize(
    "cents",
    [
        [199, 1_000_001, 37, 250_000, 99_999_999],  # squares fit int64: numpy's exact sum
        [3_037_000_500, 1, 2_999_999_999_999, 7],  # they do not: Python's integers
    ],
)
def test_the_amount_z_score_is_exact_at_any_amount(state: StateBackend, cents: list[int]) -> None:
    """dbt computes it over decimals: the sum of squares in exact integers, never rounded."""
    steps: list[Step] = [tx(f"Z-{i}", i * 60, amount_cents=c) for i, c in enumerate(cents)]
    steps.append(Probe("probe", tx("Z-probe", len(cents) * 60, amount_cents=12_345)))
    z = play(state, steps)["probe"]["amount_zscore_30d"]
    n, s, squares = len(cents), sum(cents), sum(c * c for c in cents)
    deviation = math.sqrt(((n * squares - s * s) / 10_000) / (n * (n - 1)))
    assert z == (123.45 - (s / 100) / n) / deviation
