"""Tests of the synthetic data generator: determinism, append, fraud signatures, faults.

Small lakes (hundreds of customers, days to weeks) keep the file fast; the fraud and
fault rates are raised so every scenario and fault kind shows up often enough to test.
Fraud ground truth comes from `_generator/fraud_truth/`, never from the raw feeds.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from python_jobs.generate import GenerationResult, GeneratorConfig, GeneratorError, generate
from python_jobs.generate import reference as ref
from python_jobs.generate import run as run_module
from python_jobs.generate.faults import FEED_FAULTS
from python_jobs.generate.fraud import SCENARIOS
from python_jobs.lake.layout import Lake, partition_date
from python_jobs.lake.query import one_row
from python_jobs.lake.schemas import ALERT_VERDICTS, FEEDS, TRANSACTIONS

MAIN_START, SMALL_START = date(2026, 1, 26), date(2026, 3, 1)
MAIN = GeneratorConfig(
    seed=11, start_date=MAIN_START, days=24, customers=500, fraud_rate=0.02, fault_rate=0.03
)
SMALL = GeneratorConfig(seed=5, start_date=SMALL_START, days=5, customers=300)
TS = "%Y-%m-%d %H:%M:%S"


def digests(lake: Lake) -> dict[str, str]:
    return {
        path.relative_to(lake.root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(lake.raw.rglob("*"))
        if path.is_file()
    }


def manifest(lake: Lake) -> dict:
    return json.loads((lake.generator_state / "manifest.json").read_text())


def connect(lake: Lake) -> duckdb.DuckDBPyConnection:
    """Views over the raw feeds plus ground truth; `pd` is the partition (ingestion) date."""
    con = duckdb.connect()
    raw = lake.raw.as_posix()
    con.execute(
        "create macro pdate(f) as "
        r"strptime(regexp_extract(f, '-(\d{8})-\d{4}\.', 1), '%Y%m%d')::date"
    )
    con.execute(
        f"create view tx as select *, pdate(_source_file) pd "
        f"from read_parquet('{raw}/transactions/**/*.parquet')"
    )
    for feed in ("customers", "accounts", "fraud_reports"):
        con.execute(
            f"create view {feed} as select *, pdate(_source_file) pd "
            f"from read_json_auto('{raw}/{feed}/**/*.jsonl.gz')"
        )
    truth = (lake.generator_state / "fraud_truth").as_posix()
    con.execute(f"create view truth as select * from read_parquet('{truth}/*.parquet')")
    con.execute(f"""create view fr as select t.*, s.scenario, s.incident,
        strptime(t.event_ts, '{TS}') ts, try_cast(t.amount as double) amt
        from tx t join truth s using (transaction_id)""")
    con.execute(f"""create view legit as select t.*, strptime(t.event_ts, '{TS}') ts,
        try_cast(t.amount as double) amt from tx t anti join truth s using (transaction_id)
        where try_strptime(t.event_ts, '{TS}') is not null""")
    return con


@pytest.fixture(scope="module")
def main_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, GenerationResult]:
    lake = Lake(tmp_path_factory.mktemp("main"))
    lines: list[str] = []
    result = generate(lake, MAIN, progress=lines.append)
    assert len(lines) == MAIN.days and lines[0].startswith("2026-01-26: ")
    return lake, result


@pytest.fixture(scope="module")
def split_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    lake = Lake(tmp_path_factory.mktemp("split"))
    generate(lake, replace(MAIN, days=14))
    result = generate(lake, GeneratorConfig(days=10), append=True)
    assert result.first_day == date(2026, 2, 9) and result.last_day == date(2026, 2, 18)
    assert result.config.seed == MAIN.seed and result.appended
    return lake


@pytest.fixture(scope="module")
def con(main_lake: tuple[Lake, GenerationResult]) -> duckdb.DuckDBPyConnection:
    return connect(main_lake[0])


# --- Determinism and append ----------------------------------------------------------------


def test_same_seed_gives_identical_files_and_other_seed_does_not(tmp_path: Path) -> None:
    a, b, c = (Lake(tmp_path / name) for name in "abc")
    generate(a, SMALL)
    generate(b, SMALL)
    generate(c, replace(SMALL, seed=6))
    first, second, other = digests(a), digests(b), digests(c)
    assert len(first) >= SMALL.days + 2  # transactions daily, day-1 customers and accounts
    assert first == second
    assert first.keys() & other.keys()
    assert all(first[k] != other[k] for k in first.keys() & other.keys())


def test_one_shot_equals_six_then_append(
    main_lake: tuple[Lake, GenerationResult], split_lake: Lake, tmp_path: Path
) -> None:
    """10 days at once == 6 days + append 4, byte for byte (pending rows cross the seam)."""
    one, six = Lake(tmp_path / "one"), Lake(tmp_path / "six")
    config = replace(MAIN, days=10, customers=300)
    generate(one, config)
    generate(six, replace(config, days=6))
    seam = json.loads((six.generator_state / "state.json").read_text())["pending"]
    assert seam["transactions"] > 0 and seam["fraud_reports"] > 0  # the seam is exercised
    generate(six, replace(config, days=4), append=True)
    assert digests(one) == digests(six)
    assert manifest(one)["days"] == manifest(six)["days"]
    assert manifest(one)["totals"] == manifest(six)["totals"]
    assert manifest(six)["pending"] == manifest(one)["pending"]
    # The bigger lakes too: 24 days vs 14 + 10, including ground truth.
    main = main_lake[0]
    assert digests(main) == digests(split_lake)
    truth = sorted((main.generator_state / "fraud_truth").iterdir())
    assert [p.read_bytes() for p in truth] == [
        (split_lake.generator_state / "fraud_truth" / p.name).read_bytes() for p in truth
    ]
    assert manifest(main)["totals"] == manifest(split_lake)["totals"]
    assert len(manifest(split_lake)["runs"]) == 2


def test_append_needs_state_and_fresh_run_refuses_state(
    main_lake: tuple[Lake, GenerationResult], tmp_path: Path
) -> None:
    with pytest.raises(GeneratorError, match="no generator state"):
        generate(Lake(tmp_path / "empty"), SMALL, append=True)
    with pytest.raises(GeneratorError, match="already has data up to 2026-02-18; use --append"):
        generate(main_lake[0], MAIN)


def test_append_keeps_the_lakes_settings_and_says_so(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    generate(lake, replace(SMALL, days=2))
    result = generate(lake, GeneratorConfig(seed=99, days=1, fraud_rate=0.1), append=True)
    assert result.config.seed == SMALL.seed and result.config.fraud_rate == SMALL.fraud_rate
    assert any("seed=99 ignored" in note for note in result.notes)
    assert any("fraud_rate=0.1 ignored" in note for note in result.notes)
    assert result.first_day == result.last_day == SMALL_START + timedelta(days=2)
    state = json.loads((lake.generator_state / "state.json").read_text())
    assert state["last_day"] == "2026-03-03" and state["seed"] == SMALL.seed
    assert not list(lake.generator_state.rglob("*.pkl")) and not list(
        lake.generator_state.rglob("*.pickle")
    )


def test_default_start_is_the_period_ending_yesterday() -> None:
    assert GeneratorConfig(days=30).first_day(date(2026, 5, 31)) == date(2026, 5, 1)
    with pytest.raises(ValueError):
        GeneratorConfig(fraud_rate=0.9)


# --- Layout and metadata ---------------------------------------------------------------------


def test_raw_layout_and_ingestion_metadata(main_lake: tuple[Lake, GenerationResult]) -> None:
    lake, result = main_lake
    days = {MAIN_START + timedelta(days=i) for i in range(MAIN.days)}
    assert result.rows["transactions"] == manifest(lake)["totals"]["transactions"]["rows_written"]
    # investigators' verdicts come from the dashboard, never from the generator
    assert lake.raw_files(ALERT_VERDICTS) == []
    for feed in FEEDS.values():
        if feed is ALERT_VERDICTS:
            continue
        files = lake.raw_files(feed)
        assert files, feed.name
        total = 0
        for path in files:
            day = partition_date(path)
            assert day in days and path == lake.raw_file(feed, day, "0001")
            if feed.file_format == "parquet":
                table = pq.read_table(path)
                assert table.schema.equals(feed.schema)
                rows = table.select(["_source_file", "_source_row", "_ingested_at"]).to_pylist()
            else:
                with gzip.open(path, "rt") as handle:
                    rows = [json.loads(line) for line in handle]
                assert set(rows[0]) == {f.name for f in feed.schema}
            assert [r["_source_row"] for r in rows] == list(range(len(rows)))
            assert {r["_source_file"] for r in rows} == {lake.relative(path)}
            stamps = {str(r["_ingested_at"])[:10] for r in rows}
            assert stamps == {day.isoformat()}
            total += len(rows)
        assert total == manifest(lake)["totals"][feed.name]["rows_written"], feed.name


def test_low_cardinality_transaction_text_is_dictionary_encoded(
    main_lake: tuple[Lake, GenerationResult],
) -> None:
    """Types, channels, cities... are written as Parquet dictionaries straight from the
    generator's indices; ids, keys and amounts plain. Readers see text either way."""
    path = main_lake[0].raw_files(TRANSACTIONS)[3]
    meta = pq.ParquetFile(path).metadata.row_group(0)
    dictionary = {
        meta.column(i).path_in_schema
        for i in range(meta.num_columns)
        if "RLE_DICTIONARY" in meta.column(i).encodings
    }
    assert dictionary == {
        "transaction_type",
        "channel",
        "direction",
        "merchant_category_code",
        "city",
        "state",
        "status",
        "_source_file",
    }
    assert pq.read_table(path).schema.equals(TRANSACTIONS.schema)


@pytest.mark.parametrize("stage", ["render", "write"])
def test_a_failure_in_a_background_stage_fails_the_run(
    stage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rendering and writing run on other threads: their errors must still stop the run,
    before the state (the commit point of a run) is saved."""

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(f"{stage} failed")

    target = "transactions_table" if stage == "render" else "write_raw"
    monkeypatch.setattr(run_module, target, broken)
    lake = Lake(tmp_path / "lake")
    with pytest.raises(OSError, match=f"{stage} failed"):
        generate(lake, replace(SMALL, days=3))
    assert not (lake.generator_state / "state.json").exists()


# --- Population ------------------------------------------------------------------------------


def _cpf_valid(cpf: str) -> bool:
    digits = [int(c) for c in cpf if c.isdigit()]
    if len(digits) != 11 or len(set(digits)) == 1:
        return False
    for n in (9, 10):
        total = sum(d * w for d, w in zip(digits[:n], range(n + 1, 1, -1), strict=True))
        if (total * 10 % 11) % 10 != digits[n]:
            return False
    return True


def test_cpfs_are_valid_except_injected_faults(
    con: duckdb.DuckDBPyConnection, main_lake: tuple[Lake, GenerationResult]
) -> None:
    cpfs = [r[0] for r in con.sql("select cpf from customers").fetchall()]
    assert all(re.fullmatch(r"\d{3}\.\d{3}\.\d{3}-\d{2}", c) for c in cpfs)
    invalid = sum(not _cpf_valid(c) for c in cpfs)
    assert invalid == manifest(main_lake[0])["totals"]["customers"]["faults"]["invalid_cpf"]
    assert invalid < 0.01 * len(cpfs)
    distinct = one_row(
        con,
        "select count(distinct cpf), count(distinct customer_id) "
        "from customers where customer_id is not null",
    )
    assert distinct[0] >= distinct[1]  # one CPF per customer (broken ones add a few)


def test_customer_extracts_build_scd2_history(
    con: duckdb.DuckDBPyConnection, main_lake: tuple[Lake, GenerationResult]
) -> None:
    m = manifest(main_lake[0])
    first = MAIN_START
    day1 = one_row(
        con, f"select count(distinct customer_id), count(*) from customers where pd = '{first}'"
    )
    faults = m["days"][first.isoformat()]["customers"]["faults"]
    assert day1[0] + (faults["missing_customer_id"] > 0) == MAIN.customers
    assert day1[1] == MAIN.customers + faults["duplicate_delivery"]
    later = one_row(
        con,
        f"""select count(*), count(*) filter (where updated_at::date = pd),
        count(*) filter (where onboarding_date::date = pd) from customers
        where pd > '{first}'""",
    )
    assert 0 < later[0] < MAIN.customers * 0.05 * MAIN.days
    assert later[1] == later[0]  # later extracts only hold what changed that day
    assert later[2] == m["totals"]["customers"]["new_customers"] > 0
    segments = dict(
        con.sql(
            f"select segment, count(*) / sum(count(*)) over () from customers "
            f"where pd = '{first}' group by 1"
        ).fetchall()
    )
    assert 0.62 < segments["varejo"] < 0.78 and 0.05 < segments["pj"] < 0.15
    states = one_row(
        con, f"select count(distinct address.state) from customers where pd = '{first}'"
    )[0]
    assert states >= 20
    assert (
        one_row(
            con,
            "select count(*) from customers where customer_id is not null and "
            "segment not in ('varejo', 'alta_renda', 'private', 'pj')",
        )[0]
        == 0
    )


def test_accounts_follow_customers(con: duckdb.DuckDBPyConnection) -> None:
    first = MAIN_START
    row = one_row(
        con,
        f"""with a as (select distinct account_id, customer_id, account_type,
        credit_limit from accounts),
        c as (select distinct customer_id, segment from customers
              where pd = '{first}' and customer_id is not null)
        select count(*) filter (where not exists (select 1 from a where a.customer_id =
                   c.customer_id and a.account_type = 'checking')),
               avg((exists (select 1 from a where a.customer_id = c.customer_id and
                   a.account_type = 'credit_card'))::int) filter (where segment <> 'pj'),
               (select count(*) from a where (credit_limit is not null)
                   <> (account_type = 'credit_card'))
        from c""",
    )
    assert row[0] == 0  # every customer has a checking account
    assert 0.5 < row[1] < 0.75  # ~60% of individuals have a credit card
    assert row[2] == 0  # credit limits only on credit cards


# --- Transactions ----------------------------------------------------------------------------


def test_transactions_are_consistent(con: duckdb.DuckDBPyConnection) -> None:
    """Clean rows (canonical spellings, positive amounts) obey the feed's business rules."""
    types = "', '".join(ref.TRANSACTION_TYPES)
    channels = "', '".join(ref.CHANNELS)
    row = one_row(
        con,
        f"""with a as (select distinct account_id, account_type from accounts
                                 where account_id is not null)
        select count(*),
          count(*) filter (where t.transaction_type = 'CREDIT' and a.account_type <> 'credit_card'),
          count(*) filter (where t.transaction_type in ('PIX','TED','BOLETO','DEBIT')
                           and a.account_type <> 'checking'),
          count(*) filter (where (merchant_category_code is not null)
                           <> (t.transaction_type in ('DEBIT', 'CREDIT'))),
          count(*) filter (where device_id is not null
                           and channel not in ('mobile', 'internet_banking')),
          count(*) filter (where not regexp_full_match(amount, '\\d+\\.\\d{{2}}')),
          count(*) filter (where not regexp_full_match(transaction_id, 'T\\d{{17}}')),
          avg((t.transaction_type = 'PIX')::int),
          avg((direction = 'inbound')::int) filter (where t.transaction_type = 'PIX'),
          avg((status = 'approved')::int),
          count(*) filter (where t.transaction_type in ('DEBIT', 'CREDIT')
                           and direction = 'inbound')
        from legit t join a using (account_id)
        where t.transaction_type in ('{types}') and t.channel in ('{channels}')
          and t.amt > 0""",
    )
    assert row[0] > 20_000
    assert row[1:7] == (0, 0, 0, 0, 0, 0)
    assert 0.38 < row[7] < 0.52  # PIX ~45%
    assert 0.28 < row[8] < 0.45  # ~35% of PIX inbound
    assert 0.95 < row[9] < 0.99  # ~97% approved
    assert row[10] == 0  # cards only pay out


def test_activity_has_calendar_and_hour_patterns(con: duckdb.DuckDBPyConnection) -> None:
    by_day = dict(con.sql("select ts::date, count(*) from legit group by 1").fetchall())
    sundays = [n for d, n in by_day.items() if d.weekday() == 6]
    fridays = [n for d, n in by_day.items() if d.weekday() == 4]
    assert max(sundays) < min(fridays)
    assert by_day[date(2026, 2, 5)] > 1.15 * by_day[date(2026, 2, 4)]  # pay day
    hours = dict(con.sql("select hour(ts), count(*) from legit group by 1").fetchall())
    assert hours[3] * 8 < hours[12] and hours[3] * 8 < hours[19]
    home = one_row(
        con,
        """select avg((t.state = c.address.state)::int) from legit t join
        (select distinct customer_id, address from customers where customer_id is not null
         qualify row_number() over (partition by customer_id order by pd) = 1) c
        using (customer_id) where t.channel = 'pos'""",
    )[0]
    assert 0.85 < home < 0.995  # mostly at home, sometimes travelling


def test_amounts_depend_on_income_and_are_heavy_tailed(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.sql("""with c as (select customer_id, any_value(segment) segment
                                 from customers group by 1)
        select segment, median(amt), quantile_cont(amt, 0.999) / median(amt)
        from legit join c using (customer_id)
        where transaction_type = 'PIX' and direction = 'outbound' group by 1""").fetchall()
    median = {r[0]: r[1] for r in rows}
    assert median["private"] > median["alta_renda"] > median["varejo"]
    assert all(r[2] > 20 for r in rows if r[0] == "varejo")


# --- Fraud -------------------------------------------------------------------------------------


def test_fraud_rate_and_mix(
    main_lake: tuple[Lake, GenerationResult], con: duckdb.DuckDBPyConnection
) -> None:
    totals = manifest(main_lake[0])["totals"]["transactions"]
    rate = totals["fraud_transactions"] / totals["rows_written"]
    assert 0.6 * MAIN.fraud_rate < rate < 1.4 * MAIN.fraud_rate
    mix = {s: n / totals["fraud_transactions"] for s, n in totals["fraud_by_scenario"].items()}
    assert set(mix) == set(SCENARIOS) and all(0.04 < share < 0.5 for share in mix.values())
    in_files = dict(con.sql("select scenario, count(*) from fr group by 1").fetchall())
    assert in_files == totals["fraud_by_scenario"]  # every fraud row landed, unfaulted
    default = GeneratorConfig()
    assert 0.005 <= default.fraud_rate <= 0.01


def test_account_takeover_signature(con: duckdb.DuckDBPyConnection) -> None:
    row = one_row(
        con,
        """select count(*), avg((hour(ts) < 6)::int),
        count(*) filter (where exists (select 1 from legit l where l.customer_id = f.customer_id
                                       and l.device_id = f.device_id)),
        count(*) filter (where exists (select 1 from legit l where l.customer_id = f.customer_id
                                       and l.counterparty_key = f.counterparty_key)),
        count(*) filter (where transaction_type <> 'PIX' or direction <> 'outbound'
                         or device_id is null)
        from fr f where scenario = 'account_takeover'""",
    )
    assert row[0] > 30
    assert row[1] > 0.6  # mostly at night
    assert row[2] == 0 and row[3] == 0  # a device and beneficiaries never seen for the victim
    assert row[4] == 0
    drained = one_row(
        con,
        """with c as (select customer_id, min(monthly_income) income
                                    from customers group by 1)
        select avg((total >= 0.3 * income)::int) from (select customer_id, incident,
        sum(amt) total from fr where scenario = 'account_takeover' group by all)
        join c using (customer_id)""",
    )[0]
    assert drained > 0.8  # a big share of monthly income leaves in one night


def test_pix_scam_signature(con: duckdb.DuckDBPyConnection) -> None:
    row = one_row(
        con,
        """with habit as (select customer_id, median(amt) usual from legit
            where transaction_type = 'PIX' and direction = 'outbound' group by 1)
        select count(*), count(*) filter (where hour(ts) not between 9 and 18),
          avg((exists (select 1 from legit l where l.customer_id = f.customer_id
                       and l.device_id = f.device_id))::int),
          count(*) filter (where exists (select 1 from legit l where
                           l.customer_id = f.customer_id and l.counterparty_key =
                           f.counterparty_key)),
          avg((amt >= 4 * usual)::int)
        from fr f join habit using (customer_id) where scenario = 'pix_scam'""",
    )
    assert row[0] > 20
    assert row[1] == 0  # daytime
    assert row[2] > 0.8  # on the customer's usual device
    assert row[3] == 0  # to a new beneficiary
    assert row[4] > 0.8  # far above the customer's habit


def test_card_testing_signature(con: duckdb.DuckDBPyConnection) -> None:
    bursts = con.sql("""select count(*) n, min(amt), max(amt),
          date_diff('second', min(ts), max(ts)) span, count(distinct counterparty_key) shops,
          count(distinct merchant_category_code) mccs, any_value(merchant_category_code) mcc,
          count(device_id) devices, avg((status = 'declined')::int) declined,
          bool_and(channel = 'internet_banking' and transaction_type = 'CREDIT') online
        from fr where scenario = 'card_testing' group by incident, ts::date""").fetchall()
    assert len(bursts) >= 3
    testing = {str(m) for m in ref.CARD_TESTING_MCCS}
    for n, low, high, span, shops, mccs, mcc, devices, _declined, online in bursts:
        assert 10 <= n <= 30 and 1.0 <= low <= high <= 10.0
        assert span <= 45 * 60 and shops == 1 and mccs == 1 and mcc in testing
        assert devices == 0 and online
    declined = sum(b[8] * b[0] for b in bursts) / sum(b[0] for b in bursts)
    assert 0.3 < declined < 0.85


def test_compromised_terminal_signature(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.sql("""with f as (select counterparty_key, min(ts::date) since, count(*) frauds,
            count(distinct customer_id) victims,
            bool_and(channel = 'pos' and merchant_category_code is not null) pos
          from fr where scenario = 'compromised_terminal' group by 1)
        select f.*, (select count(*) from legit l where l.counterparty_key = f.counterparty_key
                     and l.ts::date >= f.since) legit_after
        from f""").fetchall()
    assert 1 <= len(rows) <= 6
    for _, _, frauds, victims, pos, legit_after in rows:
        assert pos and victims >= 0.8 * frauds  # cloned cards of many different customers
        assert frauds / (frauds + legit_after) > 0.5  # most of its traffic is now fraud
    far = one_row(
        con,
        """with c as (select customer_id, any_value(address.city) city
                                from customers group by 1)
        select avg((f.city <> c.city)::int) from fr f join c using (customer_id)
        where scenario = 'compromised_terminal'""",
    )[0]
    assert far > 0.7  # victims come from all over the country


def test_mule_account_signature(con: duckdb.DuckDBPyConnection) -> None:
    mules = con.sql("""select customer_id,
          count(*) filter (where direction = 'inbound') inbound,
          count(*) filter (where direction = 'outbound') outbound,
          count(distinct counterparty_key) filter (where direction = 'inbound') senders,
          count(distinct counterparty_key) filter (where direction = 'outbound') cashout_keys,
          sum(amt) filter (where direction = 'inbound') received,
          sum(amt) filter (where direction = 'outbound') sent,
          count(*) filter (where direction = 'outbound' and not exists (
              select 1 from fr i where i.customer_id = fr.customer_id
              and i.direction = 'inbound' and i.scenario = 'mule_account'
              and i.ts between fr.ts - interval 1 hour and fr.ts)) slow
        from fr where scenario = 'mule_account' group by 1""").fetchall()
    assert mules
    for _, inbound, outbound, senders, keys, received, sent, slow in mules:
        assert inbound >= 2 * outbound > 0
        assert senders >= 0.9 * inbound  # unrelated senders
        assert keys <= 3  # a few cash-out keys
        assert 0.8 * received < sent < received
        assert slow == 0  # forwarded within the hour


def test_reports_follow_their_transactions(
    con: duckdb.DuckDBPyConnection, main_lake: tuple[Lake, GenerationResult]
) -> None:
    m = manifest(main_lake[0])
    row = one_row(
        con,
        f"""with r as (select * from fraud_reports
            qualify row_number() over (partition by report_id order by pd, _source_row) = 1)
        select count(*),
          count(*) filter (where f.transaction_id is null),
          count(*) filter (where r.scenario <> f.scenario),
          count(*) filter (where strptime(r.reported_at::varchar, '{TS}') <= f.ts),
          count(*) filter (where r.reported_at::date <> r.pd),
          count(*) filter (where date_diff('day', f.ts::date, r.pd) not between 1 and 45),
          count(*) filter (where r.report_channel = 'chargeback'
                           and f.transaction_type not in ('DEBIT', 'CREDIT')),
          count(*) filter (where r.report_channel = 'med' and f.transaction_type <> 'PIX'),
          count(distinct r.report_channel)
        from r left join fr f using (transaction_id)""",
    )
    assert row[0] == sum(m["totals"]["fraud_reports"]["reports_by_scenario"].values()) > 50
    assert row[1:8] == (0, 0, 0, 0, 0, 0, 0)
    assert row[8] == 3
    coverage = one_row(
        con,
        f"""select count(r.transaction_id) / count(*) from fr
        left join (select distinct transaction_id from fraud_reports) r using (transaction_id)
        where scenario = 'account_takeover' and ts < date '{MAIN.start_date}' + 10""",
    )
    assert 0.85 < coverage[0] <= 1.0  # ~95% of frauds get reported, takeovers within days
    assert m["pending"]["fraud_reports"] > 0  # slow scenarios are still due after the last day


# --- Faults ------------------------------------------------------------------------------------


def _recount_transaction_faults(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, int]]:
    spellings = list(ref.TRANSACTION_TYPE_SPELLINGS)
    channel_spellings = list(ref.CHANNEL_SPELLINGS)
    rows = con.execute(
        f"""with t as (select *, row_number() over (partition by transaction_id
            order by pd, _source_row) nth, count(*) over (partition by transaction_id) copies
            from tx)
        select pd::varchar,
          count(*) filter (where transaction_id is not null and nth > 1),
          count(*) filter (where copies = 1 and transaction_id is not null
                           and try_strptime(event_ts, '{TS}')::date < pd),
          count(*) filter (where transaction_type in (select unnest($1))
                           and transaction_type not in (select unnest($3))),
          count(*) filter (where channel in (select unnest($2))
                           and channel not in (select unnest($4))),
          count(*) filter (where transaction_id is null),
          count(*) filter (where account_id is null),
          count(*) filter (where customer_id is null),
          count(*) filter (where event_ts is null),
          count(*) filter (where try_strptime(event_ts, '{TS}') is null and event_ts is not null),
          count(*) filter (where amount is null or amount = ''),
          count(*) filter (where amount <> '' and try_cast(amount as decimal(18, 2)) is null),
          count(*) filter (where try_cast(amount as decimal(18, 2)) <= 0),
          count(*) filter (where transaction_type not in (select unnest($1)))
        from t group by 1""",
        [spellings, channel_spellings, list(ref.TRANSACTION_TYPES), list(ref.CHANNELS)],
    ).fetchall()
    kinds = FEED_FAULTS["transactions"]
    return {r[0]: dict(zip(kinds, r[1:], strict=True)) for r in rows}


def test_transaction_faults_in_files_match_manifest(
    con: duckdb.DuckDBPyConnection, main_lake: tuple[Lake, GenerationResult]
) -> None:
    m = manifest(main_lake[0])
    recount = _recount_transaction_faults(con)
    expected = {day: counts["transactions"]["faults"] for day, counts in m["days"].items()}
    assert recount == expected
    totals = m["totals"]["transactions"]["faults"]
    assert all(totals[k] > 0 for k in FEED_FAULTS["transactions"]), totals
    rate = sum(totals.values()) / m["totals"]["transactions"]["rows_written"]
    assert 0.6 * MAIN.fault_rate < rate < 1.4 * MAIN.fault_rate
    # Late rows land 1-5 days after their event, in a later partition.
    lag = one_row(
        con,
        f"""select min(date_diff('day', try_strptime(event_ts, '{TS}')::date, pd)),
        max(date_diff('day', try_strptime(event_ts, '{TS}')::date, pd)) from tx
        where try_strptime(event_ts, '{TS}')::date <> pd""",
    )
    assert lag == (1, 5)


def test_faulty_rows_are_never_fraud(con: duckdb.DuckDBPyConnection) -> None:
    types = "', '".join(ref.TRANSACTION_TYPES)
    channels = "', '".join(ref.CHANNELS)
    dirty = one_row(
        con,
        f"""select count(*) from fr where transaction_type not in ('{types}')
        or channel not in ('{channels}') or account_id is null or customer_id is null
        or amt is null or amt <= 0 or ts::date <> pd""",
    )[0]
    assert dirty == 0
    assert (
        one_row(
            con,
            "select count(*) from (select transaction_id from tx join truth "
            "using (transaction_id) group by 1 having count(*) > 1)",
        )[0]
        == 0
    )


def test_extract_and_report_faults_match_manifest(
    con: duckdb.DuckDBPyConnection, main_lake: tuple[Lake, GenerationResult]
) -> None:
    totals = manifest(main_lake[0])["totals"]
    customers = one_row(
        con,
        """select count(*) - count(distinct (customer_id, full_name, cpf,
            updated_at, pd)), count(*) filter (where customer_id is null)
        from customers""",
    )
    assert customers == (
        totals["customers"]["faults"]["duplicate_delivery"],
        totals["customers"]["faults"]["missing_customer_id"],
    )
    accounts = one_row(
        con,
        """select count(*) - count(distinct (account_id, customer_id, status,
            credit_limit, updated_at, pd)), count(*) filter (where account_id is null)
        from accounts""",
    )
    assert accounts == (
        totals["accounts"]["faults"]["duplicate_delivery"],
        totals["accounts"]["faults"]["missing_account_id"],
    )
    reports = one_row(
        con,
        """select count(*) - count(distinct report_id),
        count(*) filter (where pd <> reported_at::date + 1 and report_id in (select report_id
            from fraud_reports group by 1 having count(*) > 1) and pd <> reported_at::date)
        from fraud_reports""",
    )
    assert reports == (totals["fraud_reports"]["faults"]["duplicate_delivery"], 0)
    assert sum(totals["customers"]["faults"].values()) > 0
    assert sum(totals["accounts"]["faults"].values()) > 0


def test_spelling_maps_cover_every_variant_written(con: duckdb.DuckDBPyConnection) -> None:
    written = {r[0] for r in con.sql("select distinct transaction_type from tx").fetchall()}
    known = set(ref.TRANSACTION_TYPE_SPELLINGS) | set(ref.UNKNOWN_TRANSACTION_TYPES) | {None}
    assert written <= known and len(written - set(ref.TRANSACTION_TYPES)) > 5
    channels = {r[0] for r in con.sql("select distinct channel from tx").fetchall()}
    assert channels <= set(ref.CHANNEL_SPELLINGS) and len(channels) > 10
    assert ref.TRANSACTION_TYPE_SPELLINGS["débito"] == "DEBIT"
    assert ref.CHANNEL_SPELLINGS["maquininha"] == "pos"
    assert ref.folded_spellings(ref.TRANSACTION_TYPE_SPELLINGS)["pix"] == "PIX"
    assert TRANSACTIONS.name in FEED_FAULTS
