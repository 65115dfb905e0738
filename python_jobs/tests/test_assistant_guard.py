"""The SQL guard, on its own: unit tests of each rule, and the adversarial corpus
(python_jobs/tests/data/adversarial_sql.yml) for both dialects. No engine needed: what runs is
tested in test_assistant_ask.py against a real DuckDB lake."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot
import yaml
from sqlglot import exp

from python_jobs.assistant.guard import (
    MAX_LITERAL_CHARS,
    MAX_SQL_CHARS,
    AllowList,
    SQLRefused,
    guard_sql,
)

CORPUS = yaml.safe_load(
    (Path(__file__).parent / "data" / "adversarial_sql.yml").read_text(encoding="utf-8")
)["cases"]
CATEGORIES = {
    "multi_statement",
    "ddl_dml",
    "engine_command",
    "file_url_read",
    "catalog_probing",
    "pii",
    "resource_exhaustion",
    "prompt_leak",
    "malformed",
}
SCHEMAS = {"duckdb": "curated", "athena": "banklake_curated"}
MARTS = frozenset(
    {
        "dim_accounts",
        "dim_customers",
        "dim_customer_insights",
        "fct_daily_kpis",
        "fct_fraud_alerts",
        "fct_transactions",
    }
)
PII = {
    "dim_customers": frozenset({"cpf_hash", "name_masked"}),
    "fct_transactions": frozenset({"counterparty_key"}),
    "fct_fraud_alerts": frozenset({"counterparty_key"}),
}


def allow_for(dialect: str) -> AllowList:
    return AllowList(SCHEMAS[dialect], MARTS, PII)


def guard(sql: str, dialect: str = "duckdb", max_rows: int = 100):
    return guard_sql(sql, dialect=dialect, allow=allow_for(dialect), max_rows=max_rows)


def refused_rule(sql: str, dialect: str = "duckdb") -> str:
    with pytest.raises(SQLRefused) as raised:
        guard(sql, dialect)
    return raised.value.rule


def corpus_params() -> list:
    params = []
    for case in CORPUS:
        for dialect in case.get("dialects", ["duckdb", "athena"]):
            params.append(pytest.param(case, dialect, id=f"{case['id']}-{dialect}"))
    return params


# --- the corpus --------------------------------------------------------------------------


def test_the_corpus_is_large_varied_and_well_formed() -> None:
    ids = [case["id"] for case in CORPUS]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert len(CORPUS) >= 40
    assert {case["category"] for case in CORPUS} == CATEGORIES
    for case in CORPUS:
        assert ("refused" in case) != ("neutralized" in case), case["id"]
        assert set(case.get("dialects", ["duckdb"])) <= set(SCHEMAS), case["id"]


@pytest.mark.parametrize(("case", "dialect"), corpus_params())
def test_adversarial_statement_is_refused_or_neutralized(case: dict, dialect: str) -> None:
    if "refused" in case:
        rule = case["refused"]
        rule = rule[dialect] if isinstance(rule, dict) else rule
        with pytest.raises(SQLRefused) as raised:
            guard(case["sql"], dialect)
        assert raised.value.rule == rule, str(raised.value)
        assert str(raised.value).startswith(f"refused ({rule}): ")
        return
    expected = case["neutralized"]
    guarded = guard(case["sql"], dialect)
    assert guarded.limit == expected["limit"]
    assert guarded.limit_action == expected["limit_action"]
    for text in expected.get("absent", []):
        assert text not in guarded.sql
    # what runs is one SELECT over qualified curated marts, with the limit on the outside
    statements = [s for s in sqlglot.parse(guarded.sql, read=dialect) if s is not None]
    assert len(statements) == 1
    assert isinstance(statements[0], (exp.Select, exp.SetOperation))
    assert int(statements[0].args["limit"].expression.name) == expected["limit"]
    for table in statements[0].find_all(exp.Table):
        assert table.db == SCHEMAS[dialect]


# --- what is accepted, and how it is rewritten --------------------------------------------


@pytest.mark.parametrize("dialect", ["duckdb", "athena"])
def test_relations_are_qualified_with_the_warehouse_schema(dialect: str) -> None:
    guarded = guard(
        "select d.segment, count(*) as n from fct_transactions t "
        "join curated.dim_customers d on t.customer_id = d.customer_id group by 1",
        dialect,
    )
    tables = {
        (t.db, t.name) for t in sqlglot.parse_one(guarded.sql, read=dialect).find_all(exp.Table)
    }
    assert tables == {(SCHEMAS[dialect], "fct_transactions"), (SCHEMAS[dialect], "dim_customers")}
    assert guarded.relations == ("dim_customers", "fct_transactions")


def test_cte_names_in_scope_are_not_relations_but_their_bodies_are_checked() -> None:
    guarded = guard(
        "with daily as (select event_date, sum(transactions) as n from fct_daily_kpis group by 1),"
        " top as (select event_date, n from daily order by n desc limit 3) select * from top"
    )
    assert guarded.relations == ("fct_daily_kpis",)
    assert "curated.daily" not in guarded.sql and "curated.top" not in guarded.sql
    # a CTE is visible only after it is defined: `later` inside `early` is a table name
    assert (
        refused_rule(
            "with early as (select * from later), later as (select 1 as x from fct_daily_kpis) "
            "select * from early"
        )
        == "relation_not_allowed"
    )


def test_a_cte_defined_in_a_subquery_is_not_visible_outside_it() -> None:
    sql = (
        "select n from (with fct_x as (select count(*) as n from fct_daily_kpis) select n "
        "from fct_x) s join fct_x on s.n = fct_x.n"
    )
    assert refused_rule(sql) == "relation_not_allowed"


@pytest.mark.parametrize(
    ("sql", "limit", "action"),
    [
        ("select state from fct_daily_kpis", 50, "injected"),
        ("select state from fct_daily_kpis limit 7", 7, "kept"),
        ("select state from fct_daily_kpis limit 500", 50, "capped"),
        ("(select state from fct_daily_kpis) limit 500", 50, "capped"),
        ("select state from fct_daily_kpis order by state limit 10 offset 5", 10, "kept"),
    ],
)
def test_limit_is_injected_kept_or_capped(sql: str, limit: int, action: str) -> None:
    guarded = guard(sql, max_rows=50)
    assert (guarded.limit, guarded.limit_action) == (limit, action)
    tree = sqlglot.parse_one(guarded.sql, read="duckdb")
    assert int(tree.args["limit"].expression.name) == limit


def test_output_has_no_comments_and_passes_the_guard_again_unchanged() -> None:
    guarded = guard("select /* hi */ state -- there\n from fct_daily_kpis")
    assert "hi" not in guarded.sql and "there" not in guarded.sql
    assert guard(guarded.sql).sql == guarded.sql


def test_count_star_is_fine_even_over_a_relation_with_pii() -> None:
    guarded = guard("select count(*) as customers from dim_customers")
    assert guarded.relations == ("dim_customers",)


def test_star_over_a_relation_without_pii_is_allowed() -> None:
    assert guard("select * from fct_daily_kpis").relations == ("fct_daily_kpis",)


@pytest.mark.parametrize(
    "condition",
    [
        "t.customer_id = d.customer_id",
        "(t.customer_id = d.customer_id)",
        "t.customer_id = d.customer_id and d.segment = 'pj'",
        "lower(t.customer_id) = lower(d.customer_id)",
    ],
)
def test_joins_on_a_key_equality_are_allowed(condition: str) -> None:
    sql = (
        "select d.segment, count(*) as n from fct_transactions t "
        f"join dim_customers d on {condition} group by 1"
    )
    assert guard(sql).relations == ("dim_customers", "fct_transactions")


def test_join_using_is_allowed() -> None:
    guarded = guard(
        "select customer_id, count(*) as n from dim_accounts "
        "join dim_customers using (customer_id) group by 1"
    )
    assert guarded.relations == ("dim_accounts", "dim_customers")


# --- refusals the corpus does not spell out ------------------------------------------------


def test_overlong_statement_and_literal_are_refused() -> None:
    long_sql = "select state from fct_daily_kpis where " + " or ".join(
        ["state = 'SP'"] * (MAX_SQL_CHARS // 10)
    )
    assert refused_rule(long_sql) == "too_long"
    literal = "x" * (MAX_LITERAL_CHARS + 1)
    assert refused_rule(f"select '{literal}' as s from fct_daily_kpis") == "long_literal"
    guard(f"select '{'x' * MAX_LITERAL_CHARS}' as s from fct_daily_kpis")


def test_unknown_mart_names_the_allowed_ones() -> None:
    with pytest.raises(SQLRefused) as raised:
        guard("select x from fct_secret")
    assert raised.value.rule == "relation_not_allowed"
    assert "fct_secret" in raised.value.reason and "fct_transactions" in raised.value.reason


def test_the_reason_names_what_was_refused() -> None:
    with pytest.raises(SQLRefused) as raised:
        guard("select cpf_hash from dim_customers")
    assert "cpf_hash" in str(raised.value)
    with pytest.raises(SQLRefused) as raised:
        guard("select * from read_csv('/etc/passwd')")
    assert "read_csv" in str(raised.value)


def test_the_logical_curated_name_is_accepted_on_athena_and_rewritten() -> None:
    guarded = guard("select state from curated.fct_daily_kpis", "athena")
    assert "banklake_curated.fct_daily_kpis" in guarded.sql
    assert refused_rule("select state from other_curated.fct_daily_kpis", "athena") == (
        "relation_not_allowed"
    )


def test_bad_arguments_are_errors_not_refusals() -> None:
    with pytest.raises(ValueError, match="dialect"):
        guard_sql("select 1", dialect="postgres", allow=allow_for("duckdb"))
    with pytest.raises(ValueError, match="max_rows"):
        guard_sql("select 1", dialect="duckdb", allow=allow_for("duckdb"), max_rows=0)
