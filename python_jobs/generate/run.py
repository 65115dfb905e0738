"""The day loop: evolve the bank one day at a time and land each day's raw files.

A day's files depend only on (state at the start of the day, seed, day), and the state
is saved losslessly, so `generate(days=10)` and `generate(days=6)` + `append(days=4)`
write byte-identical raw files.
"""

from __future__ import annotations

import threading
import time as clock
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from python_jobs.generate import config as streams
from python_jobs.generate.config import GeneratorConfig, day_rng
from python_jobs.generate.faults import (
    ACCOUNT_FAULT_WEIGHTS,
    CUSTOMER_FAULT_WEIGHTS,
    FaultPlan,
    apply_transaction_faults,
    deliver_carried,
    extract_faults,
    plan_transaction_faults,
    report_resends,
)
from python_jobs.generate.fraud import (
    PENDING_REPORT_SCHEMA,
    SCENARIOS,
    FraudState,
    emit_reports,
    fraud_transactions,
    prepare_day,
    schedule_reports,
)
from python_jobs.generate.manifest import (
    empty_day,
    finish,
    load_manifest,
    record_day,
    save_manifest,
)
from python_jobs.generate.population import (
    Changes,
    accounts_table,
    customers_table,
    evolve,
    initial_population,
)
from python_jobs.generate.state import (
    GeneratorState,
    load_state,
    new_pending_transactions,
    save_state,
)
from python_jobs.generate.transactions import (
    TxBatch,
    encoded_like,
    legit_transactions,
    time_order,
    transaction_ids,
    transactions_table,
)
from python_jobs.generate.world import World, build_world
from python_jobs.lake.layout import Lake
from python_jobs.lake.schemas import ACCOUNTS, CUSTOMERS, FRAUD_REPORTS, TRANSACTIONS, Feed
from python_jobs.lake.writer import write_raw
from python_jobs.observability.jobs import emit_generate

BATCH = "0001"
TRUTH_DIR = "fraud_truth"  # under lake.generator_state
# Synthetic, deterministic ingestion times (naive UTC) within the partition day: daily
# extracts land at the end of the day they cover, so _ingested_at's date is the partition.
INGESTION_TIME: dict[str, time] = {
    CUSTOMERS.name: time(23, 50),
    ACCOUNTS.name: time(23, 52),
    TRANSACTIONS.name: time(23, 55),
    FRAUD_REPORTS.name: time(23, 57),
}


class GeneratorError(RuntimeError):
    """The lake and the request disagree (append without state, fresh run over data...)."""


@dataclass(frozen=True)
class GenerationResult:
    first_day: date
    last_day: date
    seconds: float
    rows: dict[str, int]  # rows written per feed by this call
    fraud_transactions: int
    faults: dict[str, dict[str, int]]  # feed -> fault kind -> count, this call
    appended: bool
    config: GeneratorConfig  # the effective settings (on append: the lake's own)
    notes: tuple[str, ...] = field(default=())

    @property
    def transactions_per_second(self) -> float:
        return self.rows[TRANSACTIONS.name] / self.seconds if self.seconds > 0 else 0.0


def generate(
    lake: Lake,
    config: GeneratorConfig,
    *,
    append: bool = False,
    progress: Callable[[str], None] | None = None,
) -> GenerationResult:
    """Generates `config.days` days of raw feeds into `lake` (or appends them)."""
    started = clock.perf_counter()
    state = load_state(lake)
    notes: list[str] = []
    if append:
        if state is None or state.last_day is None:
            raise GeneratorError(
                f"lake at {lake.root} has no generator state; run without --append first"
            )
        first = state.last_day + timedelta(days=1)
        notes.extend(_ignored_settings(config, state, first))
    else:
        if state is not None:
            last = state.last_day or state.first_day
            raise GeneratorError(
                f"lake already has data up to {last}; use --append to add days or choose "
                "an empty lake"
            )
        first = config.first_day()
        state = _new_state(config, first)
    effective = GeneratorConfig(
        seed=state.seed,
        start_date=first,
        days=config.days,
        customers=state.customers,
        tx_per_customer_day=state.tx_per_customer_day,
        fraud_rate=state.fraud_rate,
        fault_rate=state.fault_rate,
    )
    world = build_world(state.seed, state.customers)
    manifest = load_manifest(lake)
    totals = empty_day()
    with _Landing() as landing:
        # Day d+1 is drawn while day d's transactions are rendered and written; a day is
        # closed (counted, reported) once its transactions file is rendered.
        in_flight: _DayInFlight | None = None
        for offset in range(config.days):
            day = first + timedelta(days=offset)
            drawn = _run_day(lake, state, world, day, landing)
            if in_flight is not None:
                _close_day(in_flight, manifest, totals, progress)
            in_flight = drawn
            state.last_day = day
        if in_flight is not None:
            _close_day(in_flight, manifest, totals, progress)
    save_state(lake, state)
    seconds = clock.perf_counter() - started
    last = first + timedelta(days=config.days - 1)
    finish(
        manifest,
        settings=_settings(state),
        run={
            "first_day": first.isoformat(),
            "last_day": last.isoformat(),
            "append": append,
            "seconds": round(seconds, 3),
        },
        pending={
            "transactions": state.pending_transactions.num_rows,
            "fraud_reports": state.pending_reports.num_rows,
        },
    )
    save_manifest(lake, manifest)
    result = GenerationResult(
        first_day=first,
        last_day=last,
        seconds=seconds,
        rows={feed: int(totals[feed]["rows_written"]) for feed in totals},
        fraud_transactions=int(totals[TRANSACTIONS.name]["fraud_transactions"]),
        faults={feed: dict(totals[feed]["faults"]) for feed in totals},
        appended=append,
        config=effective,
        notes=tuple(notes),
    )
    emit_generate(lake.root, result)
    return result


def _ignored_settings(config: GeneratorConfig, state: GeneratorState, first: date) -> list[str]:
    """On append the lake's own settings win; say so when the caller asked for others."""
    notes = []
    for name in ("seed", "customers", "tx_per_customer_day", "fraud_rate", "fault_rate"):
        asked, kept = getattr(config, name), getattr(state, name)
        if asked != getattr(GeneratorConfig, name) and asked != kept:
            notes.append(f"{name}={asked} ignored: the lake was generated with {name}={kept}")
    if config.start_date is not None and config.start_date != first:
        notes.append(f"start_date={config.start_date} ignored: appending from {first}")
    return notes


def _settings(state: GeneratorState) -> dict[str, Any]:
    return {
        "seed": state.seed,
        "customers": state.customers,
        "tx_per_customer_day": state.tx_per_customer_day,
        "fraud_rate": state.fraud_rate,
        "fault_rate": state.fault_rate,
        "lake_first_day": state.first_day.isoformat(),
    }


def _new_state(config: GeneratorConfig, first: date) -> GeneratorState:
    rng = day_rng(config.seed, first, streams.POPULATION_INIT)
    return GeneratorState(
        seed=config.seed,
        customers=config.customers,
        tx_per_customer_day=config.tx_per_customer_day,
        fraud_rate=config.fraud_rate,
        fault_rate=config.fault_rate,
        first_day=first,
        last_day=None,
        population=initial_population(rng, config.customers, first.toordinal()),
        fraud=FraudState(),
        pending_transactions=new_pending_transactions(),
        pending_reports=PENDING_REPORT_SCHEMA.empty_table(),
    )


def _accumulate(total: dict[str, Any], part: dict[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, dict):
            _accumulate(total[key], value)
        else:
            total[key] += value


@dataclass(frozen=True)
class _DayInFlight:
    """A drawn day whose transactions file is still being rendered in the background."""

    day: date
    counts: dict[str, Any]  # everything but the transactions' rows written and faults
    rendered: Future[_Rendered]


@dataclass(frozen=True)
class _Rendered:
    rows_written: int
    faults: dict[str, int]  # faults present in the file, carried rows included


def _close_day(
    done: _DayInFlight,
    manifest: dict[str, Any],
    totals: dict[str, Any],
    progress: Callable[[str], None] | None,
) -> None:
    """Waits for the day's transactions file, completes its counts, records and reports it."""
    rendered = done.rendered.result()  # re-raises a failure of the render stage
    tx = done.counts[TRANSACTIONS.name]
    tx["rows_written"] = rendered.rows_written
    for kind, n in rendered.faults.items():
        tx["faults"][kind] += n
    record_day(manifest, done.day, done.counts)
    _accumulate(totals, done.counts)
    if progress is not None:
        progress(
            f"{done.day}: {tx['rows_written']:,} transactions, "
            f"{tx['fraud_transactions']:,} fraud, {sum(tx['faults'].values()):,} faults"
        )


def _run_day(
    lake: Lake, state: GeneratorState, world: World, day: date, landing: _Landing
) -> _DayInFlight:
    """Draws one ingestion day and hands its files to `landing`.

    The order of steps is part of the determinism contract: each step draws from its
    own (seed, day, stream) generator, and later steps see the state earlier ones left.
    """
    pop, counts = state.population, empty_day()
    if day == state.first_day:  # the lake's first extract holds everyone
        changes = Changes(np.arange(pop.n_customers), np.arange(pop.accounts["acct_no"].size))
    else:
        changes = evolve(_rng(state, day, streams.POPULATION_EVOLVE), pop, day.toordinal())
        onboarded = pop.customers["onboard"] == day.toordinal()
        counts[CUSTOMERS.name]["new_customers"] = int(onboarded.sum())
    report_rng = _rng(state, day, streams.REPORTS)
    fraud_rng = _rng(state, day, streams.FRAUD)
    blocked = prepare_day(fraud_rng, pop, world, state.fraud, day.toordinal(), state.customers)
    scheduled, rendered = _land_transactions(
        lake, state, world, day, landing, fraud_rng, report_rng, counts
    )
    _land_reports(lake, state, day, landing, report_rng, scheduled, counts)
    changed_accounts = _sorted_union(changes.accounts, blocked)
    _land_extracts(lake, state, world, day, landing, changes.customers, changed_accounts, counts)
    return _DayInFlight(day, counts, rendered)


def _sorted_union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.union1d by sorting: numpy 2.4's hash-based unique is far slower than a sort on
    the first day's account indexes."""
    values = np.sort(np.concatenate([a, b]).astype(np.int64))
    distinct = np.ones(values.size, dtype=bool)
    distinct[1:] = values[1:] != values[:-1]
    return values[distinct]


def _rng(state: GeneratorState, day: date, stream: int) -> np.random.Generator:
    return day_rng(state.seed, day, stream)


def _land_transactions(
    lake: Lake,
    state: GeneratorState,
    world: World,
    day: date,
    landing: _Landing,
    fraud_rng: np.random.Generator,
    report_rng: np.random.Generator,
    counts: dict[str, Any],
) -> tuple[pa.Table, Future[_Rendered]]:
    """Legit and fraud activity of `day`, damaged and carried rows included, plus ground
    truth. Returns the fraud reports it schedules and the render stage's future.

    Everything is decided here, on numbers (time order, fraud rows, which rows are faulty,
    late or re-delivered); the text is rendered once, for exactly the rows that land, by
    `_render_transactions` on the landing's render thread.
    """
    ordinal, pop = day.toordinal(), state.population
    legit = legit_transactions(
        _rng(state, day, streams.LEGIT), pop, world, day, state.tx_per_customer_day
    )
    fraud = fraud_transactions(
        fraud_rng, pop, world, state.fraud, ordinal, len(legit), state.fraud_rate
    )
    batch = TxBatch.concat([legit, fraud])
    order = time_order(batch.sec)  # position in time order -> batch row; ids follow it
    is_fraud = batch.scenario[order] > 0
    fraud_rows = np.flatnonzero(is_fraud)
    frauds = batch.take(order[fraud_rows])
    fraud_ids = transaction_ids(day, fraud_rows + 1)
    scheduled = schedule_reports(report_rng, frauds, fraud_ids, day)
    plan = plan_transaction_faults(_rng(state, day, streams.TX_FAULTS), ~is_fraud, state.fault_rate)

    tx = counts[TRANSACTIONS.name]
    tx["fraud_transactions"] = int(fraud_rows.size)
    by_scenario = np.bincount(frauds.scenario, minlength=len(SCENARIOS) + 1)
    tx["fraud_by_scenario"] = {s: int(by_scenario[i + 1]) for i, s in enumerate(SCENARIOS)}
    landing.submit(_write_truth, lake, day, _truth(fraud_ids, frauds))
    # Customer numbers never change for an index, so the array as of today is safe to read
    # from the render thread while the population moves on.
    rendered = landing.render(
        _render_transactions,
        lake,
        state,
        day,
        batch,
        order,
        plan,
        pop.customers["cust_no"],
        landing,
    )
    return scheduled, rendered


def _render_transactions(
    lake: Lake,
    state: GeneratorState,
    day: date,
    batch: TxBatch,
    order: np.ndarray,
    plan: FaultPlan,
    customer_numbers: np.ndarray,
    landing: _Landing,
) -> _Rendered:
    """Text for the day's landing rows, faults applied, rows owed to later days set aside
    and rows owed to today delivered; hands the file to the writers.

    Runs on the single render thread, days in order: it alone reads and updates
    `state.pending_transactions` until the run ends.
    """
    ordinal = day.toordinal()
    layout = plan.layout()
    rows = batch.take(order[layout])
    table = transactions_table(rows, day, customer_numbers[rows.cust], seq=layout + 1)
    faulted = apply_transaction_faults(table, plan, ordinal)
    carried, waiting, carried_faults = deliver_carried(state.pending_transactions, ordinal)
    state.pending_transactions = pa.concat_tables([waiting, faulted.carry])
    landed = pa.concat_tables([faulted.today, encoded_like(carried, faulted.today.schema)])
    landing.submit(_write, lake, TRANSACTIONS, day, landed, always=True)
    faults = dict(faulted.counts)
    for kind, n in carried_faults.items():
        faults[kind] = faults.get(kind, 0) + n
    return _Rendered(landed.num_rows, faults)


def _land_reports(
    lake: Lake,
    state: GeneratorState,
    day: date,
    landing: _Landing,
    report_rng: np.random.Generator,
    scheduled: pa.Table,
    counts: dict[str, Any],
) -> None:
    """Reports due today (scheduled today or on any earlier day), and yesterday's re-sends."""
    pending = pa.concat_tables([state.pending_reports, scheduled])
    due_fresh = pc.and_(pc.equal(pending["due"], day.toordinal()), pc.invert(pending["resend"]))
    n_fresh = int(pc.sum(pc.cast(due_fresh, pa.int64())).as_py() or 0)
    reports = emit_reports(pending, day, report_resends(report_rng, n_fresh))
    state.pending_reports = reports.pending
    rep = counts[FRAUD_REPORTS.name]
    rep["rows_written"] = reports.table.num_rows
    rep["reports_by_scenario"] = reports.new_by_scenario
    rep["faults"]["duplicate_delivery"] = reports.resent
    landing.submit(_write, lake, FRAUD_REPORTS, day, reports.table)


def _land_extracts(
    lake: Lake,
    state: GeneratorState,
    world: World,
    day: date,
    landing: _Landing,
    customers_idx: np.ndarray,
    accounts_idx: np.ndarray,
    counts: dict[str, Any],
) -> None:
    """The customers and accounts extracts: everything on day one, then what changed."""
    pop = state.population
    extract_rng = _rng(state, day, streams.EXTRACT_FAULTS)
    customers, customer_faults = extract_faults(
        extract_rng,
        customers_table(pop, customers_idx, world.salt),
        CUSTOMER_FAULT_WEIGHTS,
        "customer_id",
    )
    accounts, account_faults = extract_faults(
        extract_rng, accounts_table(pop, accounts_idx), ACCOUNT_FAULT_WEIGHTS, "account_id"
    )
    for feed, table, faults in (
        (CUSTOMERS, customers, customer_faults),
        (ACCOUNTS, accounts, account_faults),
    ):
        counts[feed.name]["rows_written"] = table.num_rows
        counts[feed.name]["faults"] = faults
        landing.submit(_write, lake, feed, day, table)


def _truth(ids: pa.Array, frauds: TxBatch) -> pa.Table:
    """Ground truth for model evaluation and tests, kept outside raw: every fraud
    transaction, including the ones never reported."""
    scenario = frauds.scenario.astype(np.int64) - 1
    return pa.table(
        {
            "transaction_id": ids,
            "scenario": pa.array(SCENARIOS, pa.string()).take(pa.array(scenario)),
            "incident": pa.array(frauds.incident, pa.int64()),
        }
    )


def _write_truth(lake: Lake, day: date, truth: pa.Table) -> None:
    folder = lake.generator_state / TRUTH_DIR
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(truth, folder / f"fraud_truth-{day:%Y%m%d}.parquet", compression="zstd")


class _Landing:
    """Two background stages, so the main thread only draws numbers.

    - render: one thread, days in order, turns a day's transaction numbers into its file
      (it must: a day's file takes the rows the previous day carried over);
    - write: a small pool that encodes, compresses and lands files.

    numpy, pyarrow compute, the Parquet writer and zlib release the GIL, so the stages run
    on the other core while day d+1 is drawn. File contents never depend on timing, so
    determinism holds; a failed write re-raises at the next submit or on exit, a failed
    render when its day is closed.
    """

    def __init__(self, writers: int = 2, max_in_flight: int = 12) -> None:
        self._render = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lake-render")
        self._pool = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="lake-write")
        self._lock = threading.Lock()  # submit() is called from both the main and render threads
        self._in_flight: deque[Future[None]] = deque()
        self._max_in_flight = max_in_flight

    def render(self, fn: Callable[..., _Rendered], *args: Any) -> Future[_Rendered]:
        return self._render.submit(fn, *args)

    def submit(self, fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        future = self._pool.submit(fn, *args, **kwargs)
        with self._lock:
            self._in_flight.append(future)
            excess = len(self._in_flight) - self._max_in_flight
            oldest = [self._in_flight.popleft() for _ in range(max(0, excess))]
        for done in oldest:  # back-pressure: at most max_in_flight files held in memory
            done.result()

    def __enter__(self) -> _Landing:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        failing = exc_type is not None
        try:
            self._render.shutdown(wait=True, cancel_futures=failing)
            while True:
                with self._lock:
                    if not self._in_flight:
                        break
                    future = self._in_flight.popleft()
                if failing:
                    future.exception()  # wait, but let the error already raised win
                else:
                    future.result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _write(lake: Lake, feed: Feed, day: date, table: pa.Table, *, always: bool = False) -> None:
    """Lands one raw file; empty JSON extracts are skipped (nothing was delivered)."""
    if table.num_rows == 0 and not always:
        return
    ingested_at = datetime.combine(day, INGESTION_TIME[feed.name])
    write_raw(lake, feed, day, table, batch=BATCH, ingested_at=ingested_at)
