"""The dbt project compiles to SQL Athena can run: python_jobs/aws/athena_check.py, offline,
against moto's S3/Glue on 127.0.0.1 (see its docstring), plus the detectors it relies on,
each shown to catch what it claims on known-bad SQL."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest

from python_jobs.aws.athena import AthenaConfig
from python_jobs.aws.athena_check import SQLFLUFF_CONFIG, CheckReport, Lint, run_check
from python_jobs.aws.athena_ddl import SCORES_TABLE
from python_jobs.aws.athena_jobs import dbt_schemas
from python_jobs.aws.athena_sql import (
    duckdb_only_constructs,
    empty_typed_literals,
    millisecond_timestamps,
)
from python_jobs.dbt_runner import PROJECT_DIR

TRIAGED = [f"stg_{feed}_triaged" for feed in ("transactions", "customers", "accounts")] + [
    "stg_fraud_reports_triaged"
]


# --- the detectors, on SQL whose verdict is known ------------------------------------------


def test_duckdb_only_constructs_are_found_by_token_and_named() -> None:
    sql = """
        select a::int, strftime(ts, '%Y'), regexp_replace(a, 'b', 'c', 'g'),
            list_transform(xs, x -> x), epoch_ms(ts), isodow(d), struct_pack(a := 1),
            x ilike 'a%', current_date - 7, d - interval 3 day, * exclude (a),
            a // b, cast(a as hugeint)
        from read_parquet('lake/*.parquet')
        qualify row_number() over () = 1
    """
    found = "\n".join(duckdb_only_constructs(sql))
    for construct in (
        "`::`",
        "strftime()",
        "regexp_replace() with a 4th",
        "list_transform()",
        "epoch_ms()",
        "isodow()",
        "struct_pack()",
        "ILIKE",
        "date +/- integer",
        "interval 3 unquoted",
        "SELECT * EXCLUDE",
        "read_parquet()",
        "QUALIFY",
        "`//` integer division",
        "HUGEINT",
    ):
        assert construct in found, construct


def test_literals_comments_and_athena_equivalents_are_not_duckdb_only() -> None:
    sql = """
        -- strftime(x) read_parquet(y) :: qualify
        select date_format(ts, '%Y::%m'), 'strftime(' as label, regexp_replace(a, 'b', 'c'),
            regexp_replace(a, '(x)', x -> upper(x[1])), interval '7' day, "qualify"
        from t /* list_value(1) */
    """
    assert duckdb_only_constructs(sql) == []


def test_empty_typed_literals_are_found() -> None:
    sql = "select date '', timestamp ' ', date '2026-10-05', '' as empty from t where d = date ''"
    assert empty_typed_literals(sql) == ["date ''", "timestamp ''", "date ''"]
    assert empty_typed_literals("select date '2026-10-05', '' from t -- date ''") == []


def _macro_module(path: Path) -> object:
    env = jinja2.Environment(extensions=["jinja2.ext.do"])
    env.globals.update(
        cast_table_timestamp=lambda e: f"cast({e} as timestamp(6))",
        cast_timestamp=lambda e: f"cast({e} as timestamp(6))",
        env_var=lambda name, default="": default,
    )
    return env.from_string(path.read_text()).module


@pytest.mark.parametrize(
    ("file", "macro", "args"),
    [
        ("macros/cross_db/parse_datetime.sql", "parse_timestamp", ("x",)),
        ("macros/cross_db/parse_datetime.sql", "parse_date", ("x",)),
        ("macros/cross_db/parse_datetime.sql", "iso_day_of_week", ("d",)),
        ("macros/cross_db/median.sql", "median", ("x",)),
        ("macros/cross_db/text.sql", "regexp_remove", ("x", "[^0-9]")),
        ("macros/cross_db/text.sql", "mask_name", ("x",)),
        ("macros/staging/normalize_key.sql", "normalize_key", ("x",)),
        ("macros/cross_db/rolling_window.sql", "rolling_window", ("c", "ts", 7)),
        ("macros/cross_db/decimal_divide.sql", "decimal_divide", ("x", "n", 2)),
    ],
)
def test_the_check_catches_every_duckdb_body_of_the_dispatch_macros(file, macro, args) -> None:
    """Had a model called the DuckDB body directly, Athena SQL would carry it: the check must
    see each one, and pass each Athena body."""
    module = _macro_module(PROJECT_DIR / file)
    duckdb_sql = str(getattr(module, f"default__{macro}")(*args))
    athena_sql = str(getattr(module, f"athena__{macro}")(*args))
    wrap = "select {} as v from t" if macro != "rolling_window" else "select sum(1) {} from t"
    assert duckdb_only_constructs(wrap.format(duckdb_sql)), duckdb_sql
    assert duckdb_only_constructs(wrap.format(athena_sql)) == [], athena_sql


def test_millisecond_timestamps_are_followed_to_the_output_columns() -> None:
    sql = """
        with parsed as (
            select date_parse(a, '%Y') as p, cast(b as timestamp) as c,
                cast(cast(d as timestamp) as date) as as_date, cast(null as timestamp) as unused
            from t
        )
        select parsed.p, coalesce(c, now()) as c2, as_date,
            date_diff('day', cast(e as timestamp), current_timestamp) as days
        from parsed
        union all
        select cast(try(date_parse(a, '%Y')) as timestamp(6)), x, y, 1 from u
    """
    assert millisecond_timestamps(sql) == [
        "DATE_PARSE(a, '%Y')",
        "CAST(b AS TIMESTAMP)",
        "CURRENT_TIMESTAMP",
    ]
    fine = "select cast(try(date_parse(a, '%Y')) as timestamp(6)) as ts, * from (select 1 as n)"
    assert millisecond_timestamps(fine) == []


def test_the_compiled_sql_lint_is_no_rubber_stamp(tmp_path: Path) -> None:
    rules = tmp_path / "rules.sql"
    rules.write_text("with unused as (select 1 as a)\nselect x as y, z as y, count(*) from t\n")
    grammar = tmp_path / "grammar.sql"
    grammar.write_text("select a, b, from t\n")  # Athena refuses a trailing comma
    good = tmp_path / "good.sql"
    good.write_text('select cast(x as integer) as y from "awsdatacatalog"."db"."t"\n')
    problems = Lint({rules: "rules", grammar: "grammar", good: "good"}).problems()
    codes = {
        label: {p.split()[0] for lbl, p in problems if lbl == label}
        for label in ("rules", "grammar", "good")
    }
    assert codes["rules"] >= {"ST03", "AL08", "AL03"}, problems
    assert codes["grammar"] & {"PRS", "CV03"}, problems
    assert codes["good"] == set(), problems
    assert "dialect = athena" in SQLFLUFF_CONFIG.read_text()


# --- the check on the real project --------------------------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> CheckReport:
    result = run_check(tmp_path_factory.mktemp("athena-check"))
    print(result.summary())
    return result


def findings(report: CheckReport, kind: str) -> list[str]:
    return [str(f) for f in report.findings if f.kind == kind]


@pytest.mark.dbt
def test_every_model_snapshot_analysis_and_test_compiles_for_athena(report) -> None:
    assert findings(report, "count") == []
    compiled = report.compiled["full-refresh"]
    models_on_disk = len(list((PROJECT_DIR / "models").rglob("*.sql")))
    assert compiled["model"] == report.expected["model"] == models_on_disk
    assert compiled["analysis"] == report.expected["analysis"] >= 3
    assert compiled["snapshot"] == report.expected["snapshot"] >= 1
    assert compiled["test"] == report.expected["test"] > 100


@pytest.mark.dbt
def test_incremental_models_compile_their_incremental_branch_once_registered(report) -> None:
    assert findings(report, "is_incremental()") == []
    # every compile-time answer a model reads was given (none rendered `date ''`)
    assert findings(report, "empty typed literal") == []
    names = {node.name for node in report.nodes["incremental"].values()}
    assert set(TRIAGED) <= names
    assert len(names) == len(report.incremental_models)
    this = '"awsdatacatalog"."banklake_processed"."stg_transactions_triaged"'
    first = next(
        n for n in report.nodes["full-refresh"].values() if n.name == "stg_transactions_triaged"
    )
    again = next(n for n in report.nodes["incremental"].values() if n.name == first.name)
    assert this not in first.sql and this in again.sql


@pytest.mark.dbt
def test_compiled_sql_parses_with_sqlglots_athena_dialect(report) -> None:
    assert findings(report, "sqlglot athena parse") == []


@pytest.mark.dbt
def test_no_duckdb_only_construct_reaches_athena(report) -> None:
    assert findings(report, "DuckDB-only SQL") == []


@pytest.mark.dbt
def test_sources_render_as_glue_tables_not_duckdb_file_reads(report) -> None:
    assert findings(report, "source") == []
    raw = [s for s in report.manifest["sources"].values() if s["source_name"] == "raw"]
    assert {s["schema"] for s in raw} == {AthenaConfig("r", "w", "s3://x/").raw_database}
    triaged = next(
        n for n in report.nodes["full-refresh"].values() if n.name == "stg_transactions_triaged"
    )
    assert '"awsdatacatalog"."banklake_raw"."transactions"' in triaged.sql
    # the scores: the table `athena register` creates (database and name), read as a table
    (scores,) = [s for s in report.manifest["sources"].values() if s["name"] == SCORES_TABLE]
    assert scores["schema"] == AthenaConfig("r", "w", "s3://x/").scores_database
    stg_scores = next(
        n for n in report.nodes["full-refresh"].values() if n.name == "stg_fraud_scores"
    )
    assert f'"awsdatacatalog"."banklake_processed_files"."{SCORES_TABLE}"' in stg_scores.sql
    assert "where 1 = 0" not in stg_scores.sql  # on Athena the table always exists
    for phase in report.nodes.values():
        for node in phase.values():
            assert "read_parquet" not in node.sql and "read_json" not in node.sql, node.name


@pytest.mark.dbt
def test_iceberg_tables_get_no_millisecond_timestamp_columns(report) -> None:
    assert findings(report, "timestamp(3) in an Iceberg table") == []


@pytest.mark.dbt
def test_sqlfluff_with_the_athena_dialect_passes_on_the_compiled_sql(report) -> None:
    expected = sum(report.expected[t] for t in ("model", "snapshot", "analysis"))
    assert report.linted_files == expected + len(report.incremental_models)
    assert findings(report, "sqlfluff") == []


@pytest.mark.dbt
def test_processed_and_curated_tables_are_iceberg_partitioned_by_day(report) -> None:
    nodes = {n["name"]: n for n in report.manifest["nodes"].values()}
    layers = {"processed", "curated", "intermediate"}
    for node in nodes.values():
        config = node["config"]
        writes_table = config["materialized"] in {"table", "incremental", "snapshot"}
        in_layer = node["resource_type"] == "snapshot" or (
            node["resource_type"] == "model" and node["fqn"][1] in layers
        )
        if writes_table and in_layer:
            assert config.get("table_type") == "iceberg", node["name"]
    for name in TRIAGED:
        assert nodes[name]["config"]["partitioned_by"] == ["day(ingestion_date)"]
        assert nodes[name]["config"]["incremental_strategy"] == "merge"
    assert nodes["fct_transactions"]["config"]["partitioned_by"] == ["day(event_date)"]
    assert nodes["fct_daily_kpis"]["config"]["partitioned_by"] == ["month(event_date)"]


@pytest.mark.dbt
def test_register_creates_a_database_for_every_schema_dbt_writes(report) -> None:
    nodes = [SimpleNamespace(**n) for n in report.manifest["nodes"].values()]
    assert set(dbt_schemas(nodes)) == {
        "banklake_processed",
        "banklake_curated",
        "banklake_snapshots",
        "banklake_reference",
    }


@pytest.mark.dbt
@pytest.mark.filterwarnings("ignore:dbt-athena-community will be deprecated")
def test_contract_types_are_athena_types_and_compare_as_dbt_athena_compares(report) -> None:
    """The same data_type serves both adapters: DuckDB compares it as is, and dbt-athena
    compares only the base type of what the query returns (timestamp(6) in an Iceberg table
    is TIMESTAMP, decimal(18,2) is DECIMAL). Each must also be castable on Athena, which is
    how dbt-athena builds the contract's empty schema query."""
    import sqlglot
    from dbt.adapters.athena.connections import AthenaConnectionManager

    base = AthenaConnectionManager.data_type_code_to_name
    assert base("timestamp(6)") == base("timestamp") == "TIMESTAMP"
    assert base("decimal(18,2)") == base("decimal(18, 2)") == "DECIMAL"
    contracted = [
        n
        for n in report.manifest["nodes"].values()
        if n["resource_type"] == "model" and n["config"]["contract"]["enforced"]
    ]
    assert len(contracted) >= 7
    for node in contracted:
        casts = ", ".join(
            f"cast(null as {c['data_type']}) as {name}" for name, c in node["columns"].items()
        )
        statement = sqlglot.parse_one(f"select {casts}", read="athena")
        for cast in statement.find_all(sqlglot.exp.Cast):
            assert cast.to.this != sqlglot.exp.DataType.Type.USERDEFINED, (node["name"], cast)


@pytest.mark.dbt
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # dbt-athena's own macros and name
def test_athena_query_compiles_the_analysis_for_the_athena_target(monkeypatch, tmp_path) -> None:
    """The real compile step of `banklake athena query` (no AWS call: an analysis needs no
    catalog lookup), checked like every compiled node."""
    from python_jobs.aws.athena_jobs import compile_analysis

    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "BANKLAKE_AWS_PROFILE", "BANKLAKE_TARGET"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "sa-east-1")
    sql = compile_analysis(Path("analyses/daily_kpis.sql"), tmp_path)
    assert 'from "awsdatacatalog"."banklake_curated"."fct_daily_kpis"' in sql
    assert "{{" not in sql and duckdb_only_constructs(sql) == []
