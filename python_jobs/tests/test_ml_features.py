"""The fraud-model marts on a real generated lake: ml_features has exactly the contract's
columns, its windows agree with a brute-force oracle, an incremental run after new days equals
a full rebuild, and the alert marts work before and after the scoring job writes scores."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml.features import FEATURES, KEY_COLUMNS, LABEL_COLUMNS, LABEL_DELAY_DAYS
from python_jobs.dbt_runner import DbtOutcome, run_dbt
from python_jobs.generate import GeneratorConfig, generate
from python_jobs.lake.layout import Lake, partition_path
from python_jobs.lake.query import one_row

pytestmark = pytest.mark.dbt

# 33 days, so that an incremental run after 3 more days reads 30 days of history but not all;
# 500 customers, so that the day before the days it recomputes has unusual-state transactions
# at counterparties of recomputed ones (at 250 there were none).
START = date(2026, 9, 1)
CONFIG = GeneratorConfig(seed=11, start_date=START, days=33, customers=500, fault_rate=0.05)
# the marts and what they read (and int_customers_latest, which the no-PII tests read)
FEATURE_MODELS = [
    "+ml_features",
    "+fct_fraud_alerts",
    "+fct_model_performance_daily",
    "+fct_score_distribution_daily",  # and its seed, score_bands
    "+int_customers_latest",
]
HELPERS = ("int_customer_counterparty_first_seen", "int_customer_device_first_seen")
MARTS = ("ml_features", "fct_fraud_alerts", "fct_model_performance_daily")


@dataclass(frozen=True)
class Workspace:
    """Every dbt run of this module points at one lake folder, so dbt parses the project once
    and reuses it (a new BANKLAKE_LAKE_DIR would make it parse everything again). A test copies
    the state it starts from into the folder, runs dbt there and reads the result."""

    lake: Lake
    target: Path

    def checkout(self, state: Lake) -> Lake:
        shutil.rmtree(self.lake.root, ignore_errors=True)
        shutil.copytree(state.root, self.lake.root)
        return self.lake

    def save(self, to: Path) -> Lake:
        shutil.copytree(self.lake.root, to)
        return Lake(to)

    def dbt(self, *args: str) -> DbtOutcome:
        outcome = run_dbt(
            [*args, "--log-path", str(self.target / "logs")],
            self.lake,
            target_path=self.target,
        )
        assert outcome.success, outcome.failures
        return outcome


def query(lake: Lake, sql: str) -> list[tuple]:
    con = duckdb.connect(str(lake.database), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def digest(lake: Lake, table: str) -> str:
    return query(
        lake,
        f"select count(*) || ':' || md5(string_agg(cast(t as varchar), '|' "
        f"order by cast(t as varchar))) from {table} as t",
    )[0][0]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("ml_features")
    return Workspace(Lake(root / "lake"), root / "target")


@pytest.fixture(scope="module")
def lake(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """A generated lake with the feature and alert marts built and tested, no scores yet.
    Data tests of upstream models are left to the whole-project build (test_dbt_pipeline)."""
    generate(workspace.lake, CONFIG)
    workspace.dbt("build", "--select", *FEATURE_MODELS, "--exclude-resource-type", "test")
    workspace.dbt("test", "--select", *MARTS, *HELPERS)
    return workspace.save(tmp_path_factory.mktemp("built") / "lake")


def test_ml_features_has_exactly_the_contract_columns(lake: Lake) -> None:
    columns = [
        name
        for (name,) in query(
            lake,
            "select column_name from information_schema.columns "
            "where table_schema = 'curated' and table_name = 'ml_features' "
            "order by ordinal_position",
        )
    ]
    assert columns == [*KEY_COLUMNS, *LABEL_COLUMNS, *FEATURES]
    assert query(lake, "select count(*) from curated.ml_features") == query(
        lake, "select count(*) from curated.fct_transactions"
    )


def test_alert_marts_are_empty_before_any_scoring(lake: Lake) -> None:
    assert not (lake.root / "processed" / "fraud_scores").exists()
    for table in ("processed.stg_fraud_scores", "curated.fct_fraud_alerts"):
        assert query(lake, f"select count(*) from {table}") == [(0,)], table
    assert query(lake, "select count(*) from curated.fct_model_performance_daily") == [(0,)]


ORACLE = f"""
with
t as (select * from curated.fct_transactions),
customer as (
    select
        t.transaction_id,
        count(o.transaction_id) filter (where o.event_ts > t.event_ts - interval 1 day) as c1,
        count(o.transaction_id) filter (where o.event_ts > t.event_ts - interval 7 day) as c7,
        count(o.transaction_id) as c30,
        coalesce(sum(o.amount_brl) filter (
            where o.event_ts > t.event_ts - interval 7 day), 0) as s7,
        count(o.transaction_id) filter (
            where o.direction = 'inbound' and o.event_ts > t.event_ts - interval 1 day) as in1
    from t
    left join t as o
        on o.customer_id = t.customer_id and o.transaction_id != t.transaction_id
        and o.event_ts <= t.event_ts and o.event_ts > t.event_ts - interval 30 day
    group by t.transaction_id
),
counterparty as (
    -- the previous {LABEL_DELAY_DAYS + 30} days: the last 30, and the labelled past before the
    -- {LABEL_DELAY_DAYS}-day label delay
    select
        t.transaction_id,
        count(o.transaction_id) filter (where o.event_ts > t.event_ts - interval 7 day) as cp7,
        count(o.transaction_id) filter (
            where o.event_ts > t.event_ts - interval 30 day
            and o.is_fraud_reported and o.fraud_reported_at <= t.event_ts) as cpf30,
        count(o.transaction_id) filter (
            where o.event_ts <= t.event_ts - interval {LABEL_DELAY_DAYS} day
            and o.event_ts > t.event_ts - interval {LABEL_DELAY_DAYS + 7} day) as lab7,
        count(o.transaction_id) filter (
            where o.event_ts <= t.event_ts - interval {LABEL_DELAY_DAYS} day) as lab30,
        count(o.transaction_id) filter (
            where o.event_ts <= t.event_ts - interval {LABEL_DELAY_DAYS} day
            and o.is_fraud_reported and o.fraud_reported_at <= t.event_ts) as labf30,
        count(o.transaction_id) filter (
            where o.event_ts > t.event_ts - interval 30 day and o.is_fraud_reported
        ) as cpf30_reported_by_now
    from t
    left join t as o
        on o.counterparty_key = t.counterparty_key and o.transaction_id != t.transaction_id
        and o.event_ts <= t.event_ts
        and o.event_ts > t.event_ts - interval {LABEL_DELAY_DAYS + 30} day
    group by t.transaction_id
),
earlier as (
    -- every earlier transaction of the customer: before in time, or at the same instant with a
    -- smaller id
    select
        t.transaction_id,
        o.event_ts,
        o.counterparty_key = t.counterparty_key as same_counterparty,
        o.device_id = t.device_id as same_device
    from t
    join t as o on o.customer_id = t.customer_id
    where o.event_ts < t.event_ts
        or (o.event_ts = t.event_ts and o.transaction_id < t.transaction_id)
),
history as (
    select
        t.transaction_id,
        max(earlier.event_ts) as previous_ts,
        not coalesce(bool_or(earlier.same_counterparty), false) as first_time_counterparty,
        t.device_id is not null and not coalesce(bool_or(earlier.same_device), false)
            as new_device
    from t
    left join earlier using (transaction_id)
    group by t.transaction_id, t.device_id
)
select
    customer.transaction_id, c1, c7, c30, cast(s7 as double), in1, cp7, cpf30, lab7, lab30,
    cast(labf30 as double) / nullif(lab30, 0),
    date_diff('second', previous_ts, t.event_ts), first_time_counterparty, new_device,
    cpf30_reported_by_now, labf30
from customer
join counterparty using (transaction_id)
join history using (transaction_id)
join t using (transaction_id)
"""

MART = """
select
    transaction_id, cust_tx_count_1d, cust_tx_count_7d, cust_tx_count_30d, cust_amount_sum_7d,
    cust_inbound_count_1d, cp_tx_count_7d, cp_fraud_reported_30d, cp_labelled_tx_count_7d,
    cp_labelled_tx_count_30d, cp_labelled_fraud_rate_30d,
    cust_seconds_since_prev_tx, is_first_time_counterparty, is_new_device
from curated.ml_features
"""


def test_features_agree_with_a_brute_force_oracle(lake: Lake) -> None:
    """Self-joins over all of history: the definitions written the slow, obvious way."""
    con = duckdb.connect(str(lake.database), read_only=True)
    try:
        con.execute(f"create temp table oracle as {ORACLE}")
        compared = "select * exclude (cpf30_reported_by_now, labf30) from oracle"
        assert con.execute(f"select count(*) from (({compared}) except ({MART}))").fetchall() == [
            (0,)
        ]
        assert con.execute(f"select count(*) from (({MART}) except ({compared}))").fetchall() == [
            (0,)
        ]
        # what the sample exercises: counterparty frauds known before some transactions, and
        # frauds at a counterparty that were reported only after later transactions there
        known, reported_later, labelled = one_row(
            con,
            "select count(*) filter (where cpf30 > 0), "
            "count(*) filter (where cpf30_reported_by_now > cpf30), "
            "count(*) filter (where labf30 > 0) from oracle",
        )
    finally:
        con.close()
    assert known > 0
    assert reported_later > 0
    assert labelled > 0


# The hour windows, the earlier maximum, devices, the counterparty's new and out-of-state
# customers, written the slow, obvious way (self-joins; ratios rounded for the comparison).
SCENARIO_ORACLE = """
with
t as (select * from curated.fct_transactions),
firsts as (
    -- per row: the first of its (customer, counterparty) and of its (customer, device)
    select
        t.transaction_id,
        not exists (
            select 1 from t as o
            where o.customer_id = t.customer_id and o.counterparty_key = t.counterparty_key
                and (o.event_ts < t.event_ts
                    or (o.event_ts = t.event_ts and o.transaction_id < t.transaction_id))
        ) as first_time_counterparty,
        t.device_id is not null and not exists (
            select 1 from t as o
            where o.customer_id = t.customer_id and o.device_id = t.device_id
                and (o.event_ts < t.event_ts
                    or (o.event_ts = t.event_ts and o.transaction_id < t.transaction_id))
        ) as new_device
    from t
),
rows_ as (select * from t join firsts using (transaction_id)),
customer as (
    select
        t.transaction_id,
        count(o.transaction_id) filter (where o.event_ts > t.event_ts - interval 1 hour) as c1h,
        count(o.transaction_id) filter (
            where o.event_ts > t.event_ts - interval 1 hour and o.status = 'declined') as d1h,
        max(o.amount_brl) filter (
            where o.event_ts < t.event_ts and o.transaction_type = t.transaction_type
            and o.direction = t.direction) as earlier_max,
        count(o.transaction_id) as c30,
        count(o.transaction_id) filter (where o.state = t.state) as same_state30,
        count(o.transaction_id) filter (
            where o.event_ts > t.event_ts - interval 1 day and o.direction = 'inbound'
            and o.first_time_counterparty) as new_senders1
    from rows_ as t
    left join rows_ as o
        on o.customer_id = t.customer_id and o.transaction_id != t.transaction_id
        and o.event_ts <= t.event_ts and o.event_ts > t.event_ts - interval 30 day
    group by t.transaction_id
),
unusual as (
    select
        transaction_id,
        coalesce(t.state is not null and c30 > 0 and same_state30 = 0, false) as is_unusual
    from customer join t using (transaction_id)
),
rows2 as (select * from rows_ join unusual using (transaction_id)),
counterparty as (
    select
        t.transaction_id,
        count(o.transaction_id) filter (where o.first_time_counterparty) as new_customers1,
        count(o.transaction_id) filter (where o.is_unusual) as unusual1,
        count(o.transaction_id) as cp1
    from rows2 as t
    left join rows2 as o
        on o.counterparty_key = t.counterparty_key and o.transaction_id != t.transaction_id
        and o.event_ts <= t.event_ts and o.event_ts > t.event_ts - interval 1 day
    group by t.transaction_id
),
device as (
    select
        t.transaction_id,
        count(o.transaction_id) filter (
            where o.customer_id != t.customer_id and o.new_device
            and o.event_ts <= t.event_ts and o.event_ts > t.event_ts - interval 30 day
        ) as other_customers,
        min(o.event_ts) filter (where o.customer_id = t.customer_id) as first_use
    from rows_ as t
    left join rows_ as o on o.device_id = t.device_id
    group by t.transaction_id
)
select
    t.transaction_id, c1h, d1h,
    round(cast(t.amount_brl as double) / cast(earlier_max as double), 9),
    date_diff('second', first_use, t.event_ts), coalesce(other_customers, 0),
    new_customers1,
    case when t.state is not null then round(same_state30 / nullif(c30, 0), 9) end,
    round(unusual1 / nullif(cp1, 0), 9),
    new_senders1
from t
join customer using (transaction_id)
join counterparty using (transaction_id)
join device using (transaction_id)
"""

SCENARIO_MART = """
select
    transaction_id, cust_tx_count_1h, cust_declined_count_1h, round(amount_ratio_to_max_30d, 9),
    cust_device_seconds_since_first_use, device_other_customers_30d, cp_new_customer_count_1d,
    round(cust_same_state_share_30d, 9), round(cp_unusual_state_share_1d, 9),
    cust_inbound_new_sender_count_1d
from curated.ml_features
"""


def test_scenario_features_agree_with_a_brute_force_oracle(lake: Lake) -> None:
    con = duckdb.connect(str(lake.database), read_only=True)
    try:
        con.execute(f"create temp table oracle as {SCENARIO_ORACLE}")
        for first, second in ((SCENARIO_ORACLE, SCENARIO_MART), (SCENARIO_MART, SCENARIO_ORACLE)):
            differing = one_row(con, f"select count(*) from (({first}) except ({second}))")
            assert differing == (0,)
        # what the sample exercises: bursts with declines, devices shared across customers,
        # counterparties with out-of-state customers, amounts above every earlier one
        exercised = one_row(
            con,
            "select count(*) filter (where cust_declined_count_1h > 0), "
            "count(*) filter (where device_other_customers_30d > 0), "
            "count(*) filter (where cp_unusual_state_share_1d > 0), "
            "count(*) filter (where amount_ratio_to_max_30d > 1), "
            "count(*) filter (where cust_inbound_new_sender_count_1d > 0) "
            "from curated.ml_features",
        )
    finally:
        con.close()
    assert all(count > 0 for count in exercised), exercised


def test_incremental_run_after_new_days_equals_a_full_rebuild(
    lake: Lake, workspace: Workspace, tmp_path: Path
) -> None:
    daily = workspace.checkout(lake)
    generate(daily, GeneratorConfig(days=3), append=True)
    workspace.dbt("run", "--select", "+ml_features")
    compiled = workspace.target / "compiled/banklake/models/curated/ml_features.sql"
    features_sql = compiled.read_text()
    assert " as stored" in features_sql, "ml_features did not run incrementally"
    compiled = workspace.target / "compiled/banklake/models/curated/fct_transactions.sql"
    assert " as stored" in compiled.read_text(), "fct_transactions did not run incrementally"

    first_new_day = START + timedelta(days=CONFIG.days)
    late, relabelled = query(
        daily,
        f"select count(*) filter (where ingestion_date >= date '{first_new_day}' "
        f"  and event_date < date '{first_new_day}'), "
        f"count(*) filter (where event_date < date '{first_new_day}' "
        f"  and fraud_reported_at >= date '{first_new_day}') "
        "from curated.fct_transactions",
    )[0]
    assert late > 0, "the new days should carry late arrivals for already featured days"
    assert relabelled > 0, "the new days should report frauds on already featured rows"
    # the late arrivals' partitions are recomputed from the earliest late day (the late scope),
    # every partition from the first new day: the new days must exercise both
    bounds = re.search(
        r"stored_in_late_scope as \(.*?event_date >= date '([0-9-]+)'"
        r".*?event_date < date '([0-9-]+)'",
        features_sql,
        re.DOTALL,
    )
    assert bounds, "the compiled ml_features no longer shows its recomputed days"
    late_from, recompute_from = (date.fromisoformat(day) for day in bounds.groups())
    assert recompute_from == first_new_day
    assert late_from < recompute_from, "no late arrival reached the late scope"
    # the day before the new days enters the counterparties' 1-day windows with its stored
    # unusual-state flags: the new days must exercise that path too
    day_before = recompute_from - timedelta(days=1)
    carried = query(
        daily,
        "select count(*) from curated.ml_features as recomputed "
        "inner join curated.ml_features as earlier "
        "  on recomputed.counterparty_key = earlier.counterparty_key "
        f"where recomputed.event_date >= date '{recompute_from}' "
        f"  and earlier.event_date = date '{day_before}' "
        "  and earlier.cust_same_state_share_30d = 0 "
        "  and earlier.event_ts > recomputed.event_ts - interval 1 day",
    )[0][0]
    assert carried > 0, "no recomputed row's 1-day window holds an unusual state of the day before"
    incremental = workspace.save(tmp_path / "incremental")

    # the same data, the incremental marts and the feature models rebuilt from scratch
    rebuilt = workspace.dbt(
        "run", "--full-refresh", "--select", *HELPERS, "fct_transactions", "ml_features"
    )
    assert rebuilt.count("model", "success") == 4
    for table in (
        "curated.fct_transactions",
        "curated.ml_features",
        *(f"processed.{name}" for name in HELPERS),
    ):
        assert digest(incremental, table) == digest(workspace.lake, table), table


def test_scores_feed_the_alert_queue_and_the_model_performance(
    lake: Lake, workspace: Workspace
) -> None:
    scored = workspace.checkout(lake)
    # a day with reported frauds: three frauds and five other transactions of that day
    (day,) = query(
        scored,
        "select event_date from curated.fct_transactions group by 1 "
        "having count(*) filter (where is_fraud_reported) >= 3 order by 1 limit 1",
    )[0]
    frauds = [
        row[0]
        for row in query(
            scored,
            f"select transaction_id from curated.fct_transactions where event_date = "
            f"date '{day}' and is_fraud_reported order by transaction_id limit 3",
        )
    ]
    others = [
        row[0]
        for row in query(
            scored,
            f"select transaction_id from curated.fct_transactions where event_date = "
            f"date '{day}' and not is_fraud_reported order by transaction_id limit 5",
        )
    ]
    # (transaction, score, reason_1): two frauds and two others alerted, one fraud missed
    scores = [
        (others[0], 0.97, "is_new_device"),
        (frauds[0], 0.91, "amount_zscore_30d"),
        (frauds[1], 0.91, "cust_inbound_new_sender_count_7d"),
        (others[1], 0.80, "is_night"),
        (frauds[2], 0.40, "amount_log"),
        (others[2], 0.30, "is_pix"),
        (others[3], 0.20, "is_pix"),
        (others[4], 0.10, "is_pix"),
    ]
    customers = dict(
        query(
            scored,
            "select transaction_id, customer_id from curated.fct_transactions "
            f"where event_date = date '{day}'",
        )
    )
    count = len(scores)
    table = pa.table(
        {
            "transaction_id": [tx for tx, _, _ in scores],
            "customer_id": [customers[tx] for tx, _, _ in scores],
            "event_ts": [datetime(day.year, day.month, day.day, 12)] * count,
            "model_version": ["xgb-test"] * count,
            "score": [score for _, score, _ in scores],
            "threshold": [0.75] * count,
            "decision": ["alert" if score >= 0.75 else "pass" for _, score, _ in scores],
            "reason_1": [reason for _, _, reason in scores],
            "reason_1_contribution": [0.4] * count,
            "reason_2": ["amount_log"] * count,
            "reason_2_contribution": [0.2] * count,
            "reason_3": pa.array([None] * count, pa.string()),
            "reason_3_contribution": pa.array([None] * count, pa.float64()),
            "scored_at": [datetime(day.year, day.month, day.day, 23)] * count,
        }
    )
    folder = scored.root / "processed" / "fraud_scores" / f"score_date={day}"
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "scores-0001.parquet")

    workspace.dbt("build", "--select", "stg_fraud_scores+")

    queue = query(
        scored,
        "select alert_rank, transaction_id, reason_1_code, reason_1_description, reason_2_code,"
        " reason_3_code, is_fraud_reported, days_to_report is not null "
        f"from curated.fct_fraud_alerts where score_date = date '{day}' order by alert_rank",
    )
    tied = sorted([frauds[0], frauds[1]])  # equal scores rank by transaction id
    reasons = {
        frauds[0]: ("AMOUNT_OUTLIER", True),
        frauds[1]: ("MANY_NEW_SENDERS", True),
    }
    assert [row[:2] for row in queue] == [
        (1, others[0]),
        (2, tied[0]),
        (3, tied[1]),
        (4, others[1]),
    ]
    assert queue[0][2:4] == ("NEW_DEVICE", "First transaction ever from this device")
    assert queue[3][2] == "NIGHT_TIME"
    for rank, tx, code, _, code_2, code_3, is_fraud, has_days in queue:
        assert (code_2, code_3) == ("HIGH_AMOUNT", None), rank
        assert is_fraud is (tx in frauds) and has_days is is_fraud, rank
        if tx in reasons:
            assert (code, is_fraud) == reasons[tx]

    performance = query(
        scored,
        "select score_date, model_version, transactions_scored, alerts, alerts_confirmed_fraud,"
        " precision_so_far, frauds_known, recall_so_far "
        "from curated.fct_model_performance_daily",
    )
    assert performance == [(day, "xgb-test", 8, 4, 2, 0.5, 3, 2 / 3)]


def _raw_transactions(lake: Lake) -> str:
    return f"read_parquet('{lake.raw}/transactions/*/*/*/*.parquet', union_by_name = true)"


def _deliver(lake: Lake, feed: str, day: date, rows: list[dict]) -> None:
    """Lands `rows` as one more raw file of `day` (ingestion metadata filled in)."""
    suffix = ".parquet" if feed == "transactions" else ".jsonl.gz"
    path = lake.raw / feed / partition_path(day) / f"{feed}-{day:%Y%m%d}-late{suffix}"
    ingested_at = datetime.combine(day, datetime.min.time()) + timedelta(hours=23, minutes=58)
    for number, row in enumerate(rows):
        row.update(_source_file=lake.relative(path), _source_row=number, _ingested_at=ingested_at)
    if feed == "transactions":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        with gzip.open(path, "wt", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, default=str) + "\n")


def test_late_data_recomputes_the_partitions_it_reaches(
    lake: Lake, workspace: Workspace, tmp_path: Path
) -> None:
    """Late data changes older rows outside its own customer: a device's other customers, the
    unusual-state flags in a counterparty's 1-day window, a counterparty's reported frauds.
    Crafted late rows hit each of these paths; the incremental run must then agree with a full
    rebuild on every row, and show each change."""
    daily = workspace.checkout(lake)
    new_day = START + timedelta(days=CONFIG.days)
    generate(daily, GeneratorConfig(days=1), append=True)
    raw = _raw_transactions(daily)
    featured = "curated.ml_features"
    staged = "processed.stg_transactions"
    # rows of featured days, at least two days before the new one, whose later effects stay
    # in featured days
    last_effect_day = new_day - timedelta(days=1)

    # 1. a device used by one customer: another customer uses it first, an hour earlier
    device_row, other_customer_row = _first(
        "device and a customer who never used it",
        query(
            daily,
            f"select later.transaction_id, other.transaction_id from {staged} as later "
            f"inner join {staged} as other on other.customer_id != later.customer_id "
            f"where later.device_id is not null "
            f"  and later.event_ts::date between date '{new_day - timedelta(days=4)}' "
            f"  and date '{new_day - timedelta(days=2)}' "
            f"  and other.transaction_type = later.transaction_type "
            f"  and not exists (select 1 from {staged} as used where used.customer_id = "
            f"    other.customer_id and used.device_id = later.device_id) "
            "order by later.transaction_id, other.transaction_id limit 1",
        ),
    )
    # 2. a transaction in a state unusual for its customer, at a counterparty another
    # customer uses within the next day: the same customer in that state, an hour earlier
    unusual_row, counterparty_row = _first(
        "unusual state at a counterparty used within the next day",
        query(
            daily,
            f"select unusual.transaction_id, next.transaction_id from {featured} as unusual "
            f"inner join {featured} as next on next.counterparty_key = unusual.counterparty_key "
            "  and next.customer_id != unusual.customer_id "
            "  and next.event_ts > unusual.event_ts "
            "  and next.event_ts <= unusual.event_ts + interval 1 day "
            f"where unusual.cust_same_state_share_30d = 0 and unusual.cust_tx_count_30d > 0 "
            f"  and unusual.event_date >= date '{new_day - timedelta(days=4)}' "
            f"  and next.event_date <= date '{last_effect_day}' "
            "order by unusual.transaction_id, next.transaction_id limit 1",
        ),
    )
    # 3. a fraud reported late: made two days before the new day, delivered with it, at a
    # counterparty another customer uses after the report
    fraud_row, reported_at, after_report_row = _first(
        "counterparty used by another customer after a transaction there",
        query(
            daily,
            f"select fraud.transaction_id, fraud.event_ts + interval 1 hour, later.transaction_id "
            f"from {featured} as fraud "
            f"inner join {featured} as later on later.counterparty_key = fraud.counterparty_key "
            "  and later.customer_id != fraud.customer_id "
            "  and later.event_ts > fraud.event_ts + interval 1 hour "
            f"  and later.event_date <= date '{last_effect_day}' "
            f"where not fraud.label_is_fraud "
            f"  and fraud.event_date = date '{new_day - timedelta(days=3)}' "
            "order by fraud.transaction_id, later.transaction_id limit 1",
        ),
    )

    def raw_row(transaction_id: str) -> dict:
        con = duckdb.connect()
        try:
            cursor = con.execute(f"select * from {raw} where transaction_id = ?", [transaction_id])
            names = [column[0] for column in cursor.description]
            row = cursor.fetchone()
            assert row is not None, f"{transaction_id} is in no raw transactions file"
            return dict(zip(names, row, strict=True))
        finally:
            con.close()

    def an_hour_before(row: dict) -> str:
        return str(datetime.fromisoformat(row["event_ts"]) - timedelta(hours=1))

    used, other = raw_row(device_row), raw_row(other_customer_row)
    unusual = raw_row(unusual_row)
    late_rows = [
        {
            **other,
            "event_ts": an_hour_before(used),
            "device_id": used["device_id"],
            "channel": used["channel"],
            "counterparty_key": "late.device@example.com",
        },
        {
            **unusual,
            "event_ts": an_hour_before(unusual),
            "device_id": None,
            "counterparty_key": "late.state@example.com",
        },
    ]
    for number, row in enumerate(late_rows):
        day = datetime.fromisoformat(row["event_ts"])
        row["transaction_id"] = f"T{day:%Y%m%d}9{number:08d}"
    _deliver(daily, "transactions", new_day, late_rows)
    _deliver(
        daily,
        "fraud_reports",
        new_day,
        [
            {
                "report_id": f"FR{new_day:%Y%m%d}9000001",
                "transaction_id": fraud_row,
                "reported_at": str(reported_at),
                "scenario": "account_takeover",
                "report_channel": "customer_contact",
            }
        ],
    )

    checked = (device_row, counterparty_row, after_report_row)
    before = dict(query(daily, _changed_features(checked)))
    workspace.dbt("run", "--select", "+ml_features")
    after = dict(query(daily, _changed_features(checked)))
    assert after[device_row][0] == before[device_row][0] + 1, "the device's other customers"
    assert after[counterparty_row][1] < before[counterparty_row][1], "the unusual-state share"
    assert after[after_report_row][2] == before[after_report_row][2] + 1, "the reported frauds"
    incremental = workspace.save(tmp_path / "incremental")

    workspace.dbt("run", "--full-refresh", "--select", *HELPERS, "fct_transactions", "ml_features")
    for table in ("curated.fct_transactions", "curated.ml_features"):
        assert digest(incremental, table) == digest(workspace.lake, table), table


def _first(what: str, rows: list[tuple]) -> tuple:
    assert rows, f"the lake has no {what}: the test's crafted late data needs one"
    return rows[0]


def _changed_features(transaction_ids: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{transaction_id}'" for transaction_id in transaction_ids)
    return (
        "select transaction_id, [device_other_customers_30d, cp_unusual_state_share_1d, "
        "cp_fraud_reported_30d] from curated.ml_features "
        f"where transaction_id in ({listed})"
    )
