"""The dashboard's SQL is Athena SQL too: every query the pages send, built for the Athena
target, parses with sqlglot's athena dialect, holds no DuckDB-only construct and reads the
curated database only (the facts' own check, test_assistant_report_athena.py)."""

from __future__ import annotations

from datetime import date

import pytest

from python_jobs.assistant.report_facts import (
    FactsSQL,
    KpiSlice,
    daily_kpis_sql,
    kpi_series_sql,
    period_kpis_sql,
)
from python_jobs.dashboard import figures
from python_jobs.tests.test_assistant_report_athena import assert_athena_sql

ATHENA = FactsSQL("athena", "banklake_curated")
DAY = date(2026, 11, 27)
SLICES = [
    KpiSlice(),
    KpiSlice(transaction_types=("PIX",), channels=("mobile", "app"), states=("SP",)),
    KpiSlice(regions=("Sudeste",), segments=("varejo",), states=("SP",)),
    KpiSlice(segments=("it's quoted",)),
]


@pytest.mark.parametrize("where", SLICES)
def test_every_kpi_query_is_athena_sql(where: KpiSlice) -> None:
    assert_athena_sql(daily_kpis_sql(ATHENA, [DAY, date(2026, 11, 20)], where))
    assert_athena_sql(kpi_series_sql(ATHENA, date(2026, 11, 1), DAY, where))
    assert_athena_sql(
        period_kpis_sql(
            ATHENA, [(date(2026, 11, 21), DAY), (date(2026, 11, 14), date(2026, 11, 20))], where
        )
    )


def test_a_slice_value_is_a_quoted_literal() -> None:
    sql = kpi_series_sql(ATHENA, DAY, DAY, KpiSlice(segments=("x') or ('1'='1",)))
    assert "in ('x'') or (''1''=''1')" in sql


def test_every_figures_query_is_athena_sql() -> None:
    for sql in (
        figures.filter_options_sql(ATHENA),
        figures.performance_history_sql(ATHENA),
        figures.losses_sql(ATHENA),
        figures.score_distribution_sql(ATHENA, DAY, "20261127T060000Z"),
        figures.data_quality_sql(ATHENA),
    ):
        assert_athena_sql(sql)
