"""The warehouse a browser session reads through: the assistant's (python_jobs/assistant/
warehouse.py), opened once per session, cached and metered.

- A session keeps one warehouse; when a newer export has been published it is reopened on the
  next page run, so the pages show what the build has published last and never a mix.
- Results are cached per SQL text for the life of that warehouse: Streamlit re-runs a page
  at every click, and on Athena each query costs (bytes scanned, at least 10 MB).
- Every query that ran is logged with its time and, on Athena, its bytes and cost: the
  sidebar shows them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from python_jobs.assistant.warehouse import QueryResult, Warehouse, make_warehouse
from python_jobs.dashboard.config import DashboardConfig

SESSION_KEY = "banklake_warehouse"


@dataclass(frozen=True)
class QueryCost:
    sql: str
    seconds: float
    bytes_scanned: int | None  # Athena only
    cost_usd: float | None


class Closable(Protocol):
    def close(self) -> None: ...


@dataclass
class SessionWarehouse:
    """A warehouse whose results are kept per SQL text and whose queries are logged."""

    warehouse: Warehouse
    log: list[QueryCost] = field(default_factory=list)
    _cache: dict[str, QueryResult] = field(default_factory=dict)

    @property
    def dialect(self) -> str:
        return self.warehouse.dialect

    @property
    def curated_schema(self) -> str:
        return str(getattr(self.warehouse, "curated_schema", "curated"))

    @property
    def published(self) -> Any:
        """The export a DuckDB warehouse reads (python_jobs/lake/published.py), else None."""
        return getattr(self.warehouse, "published", None)

    def query(self, sql: str) -> QueryResult:
        cached = self._cache.get(sql)
        if cached is not None:
            return cached
        started = time.perf_counter()
        result = self.warehouse.query(sql)
        cost = None
        if result.bytes_scanned is not None:
            from python_jobs.aws.athena import query_cost_usd

            cost = query_cost_usd(result.bytes_scanned)
        self.log.append(QueryCost(sql, time.perf_counter() - started, result.bytes_scanned, cost))
        self._cache[sql] = result
        return result

    def is_current(self) -> bool:
        check = getattr(self.warehouse, "is_current", None)
        return True if check is None else bool(check())

    @property
    def bytes_scanned(self) -> int:
        return sum(q.bytes_scanned or 0 for q in self.log)

    @property
    def cost_usd(self) -> float:
        return sum(q.cost_usd or 0.0 for q in self.log)

    def close(self) -> None:
        close = getattr(self.warehouse, "close", None)
        if close is not None:
            close()


def open_warehouse(config: DashboardConfig) -> SessionWarehouse:
    return SessionWarehouse(make_warehouse(config.target, config.lake))


def session_warehouse(config: DashboardConfig, state: Any) -> SessionWarehouse:
    """The session's warehouse (`state`: st.session_state), reopened when stale."""
    current: SessionWarehouse | None = state.get(SESSION_KEY)
    if current is not None and not current.is_current():
        current.close()
        current = None
    if current is None:
        current = open_warehouse(config)
        state[SESSION_KEY] = current
    return current
