"""dbt on a real generated lake: every raw row accounted for, PII kept out of curated,
incremental runs equal to a full rebuild, and re-runs that change nothing; and the Athena SQL
of the same project executed over the same lake (python_jobs/aws/athena_dry_run.py), its
first build and its incremental run equal to the DuckDB target's."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml.layout import MlLayout
from ml.score import SCORES_SCHEMA
from python_jobs.aws.athena_dry_run import (
    AthenaOnDuckDB,
    DryRunReport,
    compare_relations,
    compile_for_execution,
    recorded_test_failures,
    unaccounted,
)
from python_jobs.dbt_runner import PROJECT_DIR, DbtOutcome, run_dbt
from python_jobs.dbt_runs import recent_runs
from python_jobs.export import export_curated
from python_jobs.feedback import Alert, record_verdict
from python_jobs.generate import GeneratorConfig, generate
from python_jobs.lake.layout import Lake
from python_jobs.lake.query import one_row
from python_jobs.lake.schemas import TRANSACTIONS
from python_jobs.pipeline import append_days, build

pytestmark = pytest.mark.dbt

CONFIG = GeneratorConfig(
    seed=7, start_date=date(2026, 10, 1), days=10, customers=400, fault_rate=0.03
)
SCORES_MODEL = "pipeline-test-1"  # the model version of score_and_review's scores
REJECTING_FAULTS = (
    "missing_transaction_id",
    "missing_account_id",
    "missing_customer_id",
    "missing_event_ts",
    "unparseable_event_ts",
    "missing_amount",
    "unparseable_amount",
    "non_positive_amount",
    "unknown_transaction_type",
)


def query(lake: Lake, sql: str) -> list[tuple]:
    con = duckdb.connect(str(lake.database), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def table_digests(lake: Lake, schema: str) -> dict[str, str]:
    """An order-independent fingerprint of every table in a schema."""
    con = duckdb.connect(str(lake.database), read_only=True)
    try:
        tables = [
            name
            for (name,) in con.execute(
                "select table_name from information_schema.tables "
                "where table_schema = ? and table_type = 'BASE TABLE'",
                [schema],
            ).fetchall()
        ]
        return {
            table: one_row(
                con,
                f"select count(*) || ':' || coalesce(md5(string_agg(cast(t as varchar), '|' "
                f"order by cast(t as varchar))), '') from {schema}.\"{table}\" as t",
            )[0]
            for table in tables
        }
    finally:
        con.close()


def manifest(lake: Lake) -> dict:
    return json.loads((lake.generator_state / "manifest.json").read_text())


@pytest.fixture(scope="module")
def built_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    lake = Lake(tmp_path_factory.mktemp("dbt") / "lake")
    generate(lake, CONFIG)
    # a corrupt delivery must be quarantined without blocking or losing the good files
    bad = lake.partition_dir(TRANSACTIONS, date(2026, 10, 3)) / "transactions-20261003-9999.parquet"
    bad.write_bytes(b"not a parquet file")
    build(lake)
    return lake


@pytest.fixture(scope="module")
def athena_first_build(
    built_lake: Lake, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AthenaOnDuckDB, DryRunReport]]:
    """The project compiled for Athena (moto standing in for AWS) and its first build run on
    DuckDB over built_lake's files, compared with the DuckDB target's build of them. Before
    daily_increment: it must read the lake as the DuckDB target first built it."""
    compiled = compile_for_execution(tmp_path_factory.mktemp("athena-dry-run"))
    run = AthenaOnDuckDB(compiled, built_lake)
    report = run.first_build(recorded_test_failures(recent_runs(built_lake)))
    report.timings |= compiled.timings
    print(report.summary())
    yield run, report
    run.close()


def score_and_review(lake: Lake, now: datetime) -> None:
    """A day of fraud scores for the last event day built, in the scoring job's schema and
    place (ml/score.py, ml/layout.py: training a model is ml/tests' business), 5% of them
    alerts with reasons from the reason-code seed, and an investigator's verdicts on two of
    the alerts, one fraud and one legitimate, recorded through the real feedback path: so
    that the score marts, the verdicts and a label that changes are built, and compared."""
    with duckdb.connect(str(lake.database), read_only=True) as con:
        rows = con.execute(
            "select transaction_id, customer_id, event_ts, event_date from curated.fct_transactions"
            " where event_date = (select max(event_date) from curated.fct_transactions)"
            " order by transaction_id"
        ).fetchall()
    with (PROJECT_DIR / "seeds" / "feature_reason_codes.csv").open(encoding="utf-8") as seed:
        features = [row["feature"] for row in csv.DictReader(seed)]
    n, threshold, day = len(rows), 0.95, rows[0][3]
    scores = [round(((i * 7919) % n + 0.5) / n, 6) for i in range(n)]  # a permutation of ranks
    columns = {
        "transaction_id": pa.array([r[0] for r in rows], pa.string()),
        "customer_id": pa.array([r[1] for r in rows], pa.string()),
        "event_ts": pa.array([r[2] for r in rows], pa.timestamp("us")),
        "model_version": pa.array([SCORES_MODEL] * n, pa.string()),
        "score": pa.array(scores, pa.float64()),
        "threshold": pa.array([threshold] * n, pa.float64()),
        "decision": pa.array(["alert" if s >= threshold else "pass" for s in scores]),
        "scored_at": pa.array([now.astimezone(UTC).replace(tzinfo=None)] * n, pa.timestamp("us")),
    }
    for k in (1, 2, 3):
        columns[f"reason_{k}"] = pa.array([features[(i + k) % len(features)] for i in range(n)])
        columns[f"reason_{k}_contribution"] = pa.array([round(s / k, 6) for s in scores])
    path = MlLayout(lake).scores_file(day)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=SCORES_SCHEMA), path)
    alerts = [row[0] for row, score in zip(rows, scores, strict=True) if score >= threshold]
    for transaction, verdict in zip(alerts, ("fraud", "legitimate"), strict=False):
        recorded = record_verdict(
            lake, Alert(transaction, day, SCORES_MODEL), verdict, "ana", now=now
        )
        assert recorded.landed, recorded.summary()


@pytest.fixture(scope="module")
def daily_increment(
    built_lake: Lake, athena_first_build: tuple[AthenaOnDuckDB, DryRunReport]
) -> DbtOutcome:
    """Two new days delivered, a day scored and two of its alerts reviewed
    (score_and_review), all built as the daily run builds them (tests scoped to the
    rewritten rows, no unit tests), once for the module. After the Athena dry run's first
    build (athena_first_build), which replays this increment."""
    append_days(built_lake, 2)
    score_and_review(built_lake, datetime(2026, 10, 12, 15, 0, tzinfo=UTC))
    return build(built_lake, daily_new_day=date(2026, 10, 11))


def test_corrupt_file_is_quarantined_and_the_build_goes_on(built_lake: Lake) -> None:
    quarantined = built_lake.quarantine / "transactions/year=2026/month=10/day=03"
    assert (quarantined / "transactions-20261003-9999.parquet").exists()
    note = json.loads((quarantined / "transactions-20261003-9999.parquet.reason.json").read_text())
    assert note["reason"].startswith("unreadable")
    assert query(built_lake, "select count(*) from curated.fct_transactions")[0][0] > 0


def test_every_raw_row_is_accepted_duplicate_or_rejected_as_the_generator_says(
    built_lake: Lake,
) -> None:
    totals = manifest(built_lake)["totals"]
    for feed in ("transactions", "customers", "accounts", "fraud_reports"):
        rows = dict(
            query(
                built_lake,
                f"select disposition, count(*) from processed.stg_{feed}_triaged group by 1",
            )
        )
        assert sum(rows.values()) == totals[feed]["rows_written"], feed
        assert rows.get("duplicate", 0) == totals[feed]["faults"]["duplicate_delivery"], feed

    rejected = dict(
        query(
            built_lake,
            "select rejection_reason, count(*) from processed.stg_rejected_rows "
            "where feed = 'transactions' group by 1",
        )
    )
    expected = {
        kind: totals["transactions"]["faults"][kind]
        for kind in REJECTING_FAULTS
        if totals["transactions"]["faults"][kind]
    }
    assert rejected == expected
    assert sum(expected.values()) > 0, "the fault rate should have produced rejections"

    customer_rejections = dict(
        query(
            built_lake,
            "select rejection_reason, count(*) from processed.stg_rejected_rows "
            "where feed = 'customers' group by 1",
        )
    )
    for kind in ("invalid_cpf", "missing_customer_id"):
        assert customer_rejections.get(kind, 0) == totals["customers"]["faults"][kind]


def test_misspellings_are_normalized_not_rejected(built_lake: Lake) -> None:
    normalized = query(
        built_lake,
        "select count(*) from processed.stg_transactions_triaged "
        "where disposition = 'accepted' and raw_transaction_type != transaction_type",
    )[0][0]
    assert normalized >= manifest(built_lake)["totals"]["transactions"]["faults"]["misspelled_type"]
    assert query(
        built_lake,
        "select count(*) from processed.stg_rejected_rows "
        "where rejection_reason = 'unknown_channel'",
    ) == [(0,)]


def test_fraud_labels_come_only_from_reports(built_lake: Lake) -> None:
    totals = manifest(built_lake)["totals"]
    by_scenario = dict(
        query(
            built_lake,
            "select fraud_scenario, count(*) from curated.fct_transactions "
            "where is_fraud_reported group by 1",
        )
    )
    reported = {k: v for k, v in totals["fraud_reports"]["reports_by_scenario"].items() if v}
    assert by_scenario == reported
    # reports arrive after the fact: fewer labels than frauds generated so far
    assert sum(by_scenario.values()) < totals["transactions"]["fraud_transactions"]


def test_no_cpf_name_or_pix_key_reaches_curated_in_clear(built_lake: Lake) -> None:
    con = duckdb.connect(str(built_lake.database), read_only=True)
    try:
        pii = {
            value
            for (cpf, name) in con.execute(
                "select cpf, full_name from "
                f"read_json('{built_lake.raw}/customers/*/*/*/*.jsonl.gz')"
            ).fetchall()
            for value in (cpf, "".join(ch for ch in (cpf or "") if ch.isdigit()), name)
            if value
        }
        assert len(pii) > 500
        # a person's PIX key (CPF, phone, e-mail, random key) or bank account (TED)
        personal_keys = {
            key
            for (key,) in con.execute(
                "select distinct counterparty_key from "
                f"read_parquet('{built_lake.raw}/transactions/*/*/*/*.parquet') "
                "where upper(trim(transaction_type)) in ('PIX', 'TED')"
            ).fetchall()
            if key
        }
        assert sum("@" in key for key in personal_keys) > 50
        pii |= personal_keys
        columns = con.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_schema = 'curated' and data_type = 'VARCHAR'"
        ).fetchall()
        leaks = []
        for table, column in columns:
            values = {
                v
                for (v,) in con.execute(
                    f'select distinct "{column}" from curated."{table}"'
                ).fetchall()
            }
            leaks += [(table, column) for _ in values & pii]
    finally:
        con.close()
    assert leaks == []


def test_curated_export_matches_the_marts(built_lake: Lake) -> None:
    exported = {t.name: t for t in export_curated(built_lake)}
    assert set(exported) == {
        "dim_accounts",
        "dim_customer_insights",
        "dim_customer_segments",
        "dim_customers",
        "fct_daily_kpis",
        "fct_daily_kpis_by_segment",
        "fct_data_quality_daily",
        "fct_fraud_alerts",
        "fct_model_performance_daily",
        "fct_risk_analysis",
        "fct_score_distribution_daily",
        "fct_transactions",
        "ml_features",
    }
    for name, table in exported.items():
        files = f"{table.path}/**/*.parquet"
        with duckdb.connect() as scratch:
            rows = one_row(scratch, f"select count(*) from read_parquet('{files}')")[0]
        assert rows == table.rows, name
    assert list((built_lake.curated / "fct_transactions").glob("event_date=*"))


def test_athena_sql_of_every_model_snapshot_and_test_builds_what_duckdb_builds(
    athena_first_build: tuple[AthenaOnDuckDB, DryRunReport],
) -> None:
    """Every model, the snapshot and every data test compiled for Athena and executed on
    DuckDB (athena_transpile.py: Athena's semantics) over the lake's files: each relation
    equals the DuckDB target's (rows, columns, a checksum per column and per row) and each
    test fails with as many rows as in the target's build; nothing skipped unlisted."""
    run, report = athena_first_build
    assert report.findings == [], report.summary()
    assert unaccounted(run.compiled, report) == []
    counts = report.counts()
    assert counts["model"] == len(list((PROJECT_DIR / "models").rglob("*.sql")))
    assert counts["snapshot"] >= 1
    assert counts["test"] > 300
    assert len(report.compared) == counts["model"] + counts["snapshot"]
    # tests with failing rows (the warn-severity relationships) compared too, not only zeros
    assert sum(report.test_failures.values()) > 0


def test_the_athena_dry_run_sees_a_changed_value_and_a_failing_row(
    athena_first_build: tuple[AthenaOnDuckDB, DryRunReport],
) -> None:
    """No rubber stamp: one value changed in a relation built from Athena's SQL is a
    difference, and a data test's Athena SQL counts the bad row (rolled back after)."""
    run, _ = athena_first_build
    (model,) = [uid for uid, node in run.compiled.first.items() if node.name == "fct_transactions"]
    relation = run.compiled.manifest["nodes"][model]["relation_name"]
    run.con.execute(f"create temp table planted as select * from {relation}")
    run.con.execute(
        "update planted set event_hour = 99 "
        "where transaction_id = (select min(transaction_id) from planted)"
    )
    with run.target():
        assert compare_relations(run.con, relation, run.target_relation(model)) == []
        assert compare_relations(run.con, "planted", run.target_relation(model)) == [
            "event_hour: different values (checksum)"
        ]
    run.con.execute("drop table planted")
    (test,) = [
        node
        for node in run.compiled.first.values()
        if node.name.startswith("accepted_range_fct_transactions_event_hour")
    ]

    def failing_rows() -> int:
        select = run.run_select(test.sql, run.schema())
        return int(one_row(run.con, f"select count(*) from ({select})")[0])

    assert failing_rows() == 0
    run.con.execute("begin transaction")
    try:
        run.con.execute(
            f"update {relation} set event_hour = 99 "
            f"where transaction_id = (select min(transaction_id) from {relation})"
        )
        assert failing_rows() == 1
    finally:
        run.con.execute("rollback")
    assert failing_rows() == 0


def test_rebuilding_the_same_data_changes_nothing(built_lake: Lake) -> None:
    before = table_digests(built_lake, "curated") | table_digests(built_lake, "processed")
    build(built_lake)
    after = table_digests(built_lake, "curated") | table_digests(built_lake, "processed")
    assert after == before


def test_daily_increment_equals_a_full_rebuild(
    built_lake: Lake, daily_increment: DbtOutcome, tmp_path: Path
) -> None:
    # as the daily run builds: tests scoped to the rewritten rows, no unit tests
    outcome = daily_increment
    assert outcome.count("unit_test", "pass", "fail", "error") == 0
    assert outcome.count("test", "pass") > 0
    incremental = table_digests(built_lake, "processed") | table_digests(built_lake, "curated")
    assert query(built_lake, "select max(ingestion_date) from processed.stg_transactions_triaged")[
        0
    ][0] == date(2026, 10, 12)

    # the snapshot now holds history: customers changed on the delivered days
    versions = query(
        built_lake,
        "select count(*) from (select customer_id from snapshots.customers_snapshot "
        "group by 1 having count(*) > 1)",
    )[0][0]
    assert versions > 0

    # the same lake rebuilt from scratch gives the very same tables
    copy = Lake(tmp_path / "copy")
    shutil.copytree(built_lake.root, copy.root)
    outcome = run_dbt(["build", "--full-refresh", "--exclude", "resource_type:snapshot"], copy)
    assert outcome.success, outcome.failures
    rebuilt = table_digests(copy, "processed") | table_digests(copy, "curated")
    assert rebuilt == incremental


def test_athena_incremental_sql_replays_the_daily_run(
    athena_first_build: tuple[AthenaOnDuckDB, DryRunReport], daily_increment: DbtOutcome
) -> None:
    """The daily run replayed from the Athena SQL, as dbt-athena runs it: every incremental
    model through its is_incremental() SQL (the values it asks Athena for while compiling
    answered by its own query, run here at its turn) merged on its unique key, tables rebuilt;
    every relation then equals the DuckDB target's after its own daily run."""
    assert daily_increment.success
    run, _ = athena_first_build
    report = run.replay_increment()
    print(report.summary())
    assert report.findings == [], report.summary()
    incremental = run.compiled.incremental
    assert set(report.increment_rows) == {node.name for node in incremental.values()}
    for uid, node in incremental.items():
        assert node.sql != run.compiled.first[uid].sql, node.name  # the other branch
    # the models that ask Athena for their bounds while compiling got real answers
    assert run.compiled.bounds and set(run.compiled.bounds) <= set(incremental)
    for name in ("stg_transactions_triaged", "fct_transactions", "ml_features"):
        assert report.increment_rows[name] > 0, name
    assert report.increment_rows["stg_alert_verdicts_triaged"] == 2  # score_and_review's
    # the scores' marts were compared with rows in them, not empty against empty
    with run.target():
        for mart in ("fct_fraud_alerts", "fct_model_performance_daily", "int_alert_reviews"):
            (uid,) = [u for u, n in run.compiled.first.items() if n.name == mart]
            assert one_row(run.con, f"select count(*) from {run.target_relation(uid)}")[0] > 0
    assert len(report.compared) == len(run.compiled.dag_order()) - 1  # but the snapshot


def test_the_daily_run_tests_the_rows_it_rewrote_and_full_builds_everything(
    built_lake: Lake, tmp_path: Path
) -> None:
    """var daily_test_new_day scopes the data tests to the rows an incremental run rewrites
    (macros/testing/daily_test_scope.sql): a bad row there fails the daily run, a bad older
    row is left to the full build's tests, which still see it."""
    lake = Lake(tmp_path / "lake")
    shutil.copytree(built_lake.root, lake.root)
    target = tmp_path / "target"
    last_day = query(lake, "select max(ingestion_date) from curated.fct_transactions")[0][0]
    new_day = last_day + timedelta(days=1)  # re-read from last_day - lookback_days (1)
    daily = ["--vars", json.dumps({"daily_test_new_day": new_day.isoformat()})]
    selection = ["--select", "fct_transactions", "ml_features", "stg_transactions"]

    def run_tests(*extra: str) -> DbtOutcome:
        return run_dbt(["test", *selection, *extra], lake, target_path=target)

    clean = run_tests(*daily)
    assert clean.success, clean.failures
    compiled = {path.name: path.read_text() for path in (target / "compiled").rglob("*.sql")}
    scoped = [name for name, sql in compiled.items() if "ingestion_date >= cast(" in sql]
    assert any(name.startswith("not_null_fct_transactions") for name in scoped)
    assert any(name.startswith("unique_ml_features") for name in scoped)
    # whole-table comparisons are never scoped
    whole = [n for n in compiled if n.startswith(("row_count_matches_source", "row_count_anomaly"))]
    assert whole
    assert not set(whole) & set(scoped)

    def break_row(where: str) -> None:
        with duckdb.connect(str(lake.database)) as con:
            con.execute(
                "update curated.fct_transactions set event_hour = 99 where transaction_id = "
                f"(select min(transaction_id) from curated.fct_transactions where {where})"
            )

    # an old row (ingested before the re-read days, no fraud report): out of the daily scope
    break_row(f"ingestion_date < date '{last_day - timedelta(days=3)}' and not is_fraud_reported")
    assert run_tests(*daily).success
    full = run_tests()
    assert not full.success
    assert any("accepted_range_fct_transactions_event_hour" in f for f in full.failures)
    # a row of the re-read days: the daily run's tests catch it
    break_row(f"ingestion_date = date '{last_day}'")
    failed = run_tests(*daily)
    assert any("accepted_range_fct_transactions_event_hour" in f for f in failed.failures)


def test_feeds_nothing_has_delivered_yet_build_empty(small_raw_lake: Lake) -> None:
    """A young lake, or an import without labels: no account or fraud-report file exists.
    The build goes through, those feeds are empty, and every raw row still reconciles."""
    assert not (small_raw_lake.raw / "fraud_reports").exists()
    assert not (small_raw_lake.raw / "accounts").exists()
    outcome = build(small_raw_lake)
    assert outcome.success and outcome.count("test", "fail", "error") == 0
    counts = query(
        small_raw_lake,
        "select (select count(*) from processed.stg_fraud_reports), "
        "(select count(*) from processed.stg_accounts), "
        "(select count(*) from processed.stg_transactions), "
        "(select count(*) from curated.fct_transactions where is_fraud_reported)",
    )
    assert counts == [(0, 0, 10, 0)]


def test_generate_validate_build_and_summary_emit_their_figures(built_lake: Lake) -> None:
    """built_lake's own jobs wrote EMF lines (docs/operations.md, Job metrics): what the
    generator wrote, the corrupt file quarantined, the build's tests, and the summary's rows
    per layer and rejections, equal to the summary itself; no CPF or name in any line."""
    from python_jobs.pipeline import summarize_and_emit
    from python_jobs.tests.emf_spec import lake_records, values

    generated = lake_records(built_lake.root, "generate")
    assert values(generated, "GeneratedRows", Feed="transactions")[0] > 0
    validated = lake_records(built_lake.root, "validate")
    assert values(validated, "QuarantinedFiles")[0] == 1  # the corrupt delivery
    built = lake_records(built_lake.root, "build")
    assert values(built, "DbtTestsRun")[0] > 0
    assert values(built, "DbtTestFailures")[0] == values(built, "DbtNodeErrors")[0] == 0
    assert {r["Scope"] for r in built} >= {"full"}

    summary = summarize_and_emit(built_lake)
    lines = lake_records(built_lake.root, "summary")
    raw = sum(summary.raw_rows(feed) for feed in summary.processed)
    rejected = sum(n for _, _, n in summary.rejected)
    assert values(lines, "LayerRows", Layer="raw")[-1] == raw
    assert values(lines, "RejectionRate")[-1] == pytest.approx(100 * rejected / raw)
    for feed, reason, n in summary.rejected:
        assert values(lines, "RejectedRows", Feed=feed, Reason=reason)[-1] == n
    assert values(lines, "LakeQuarantinedFiles")[-1] == summary.quarantined_files == 1
    newest, newest_raw, newest_rejected = query(
        built_lake,
        "select max(ingestion_date)::varchar, sum(raw_rows), "
        "sum(raw_rows) filter (where disposition = 'rejected') from curated.fct_data_quality_daily "
        "where ingestion_date = (select max(ingestion_date) from curated.fct_data_quality_daily)",
    )[0]
    assert summary.newest_day == (newest, newest_raw, newest_rejected)
    assert values(lines, "NewestDayRejectionRate")[-1] == pytest.approx(
        100 * newest_rejected / newest_raw
    )

    with duckdb.connect() as con:
        people = con.execute(
            "select distinct full_name, cpf from read_json(?, format = 'newline_delimited')",
            [str(built_lake.raw / "customers" / "*" / "*" / "*" / "*.jsonl.gz")],
        ).fetchall()
    text = "\n".join(p.read_text() for p in (built_lake.root / "metrics").rglob("*.jsonl"))
    assert people and not [n for n, c in people if (n and n in text) or (c and c in text)]
