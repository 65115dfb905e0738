"""The warehouse a browser session reads through: the assistant's (python_jobs/assistant/
warehouse.py), opened once per session, cached and metered.

- A session keeps one warehouse; when a newer export has been published it is reopened on the
  next page run, so the pages show what the build has published last and never a mix.
- Results are cached per SQL text for the life of that warehouse: Streamlit re-runs a page
  at every click, and on Athena each query costs (bytes scanned, at least 10 MB). On DuckDB
  they are also shared between sessions, per published export (`SharedResults`): an export
  never changes, so the same SQL on the same export has the same answer, and the second
  analyst to open a page does not wait for what the first already waited for.
- Every query that ran is logged with its time and, on Athena, its bytes and cost: the
  sidebar shows them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
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


class SharedResults:
    """Query results shared by every session of the process, keyed by (published export, SQL
    text): valid for as long as that export exists. Bounded: the oldest entries go first."""

    def __init__(self, max_entries: int = 2_000) -> None:
        self._results: OrderedDict[tuple[str, str], QueryResult] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def get(self, version: str, sql: str) -> QueryResult | None:
        with self._lock:
            result = self._results.get((version, sql))
            if result is not None:
                self._results.move_to_end((version, sql))
            return result

    def clear(self) -> None:
        with self._lock:
            self._results.clear()

    def put(self, version: str, sql: str, result: QueryResult) -> None:
        with self._lock:
            self._results[(version, sql)] = result
            while len(self._results) > self.max_entries:
                self._results.popitem(last=False)


SHARED = SharedResults()


@dataclass
class SessionWarehouse:
    """A warehouse whose results are kept per SQL text (and, for a published export, shared
    between sessions) and whose queries are logged."""

    warehouse: Warehouse
    log: list[QueryCost] = field(default_factory=list)
    shared: SharedResults | None = None
    # called with each query that reached the warehouse, once logged: the sidebar's totals
    # are drawn before the page's queries run, and redrawn by this as each one ends
    on_query: Callable[[QueryCost], None] | None = field(default=None, repr=False)
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
        # the export's folder, not its name: two lakes (a copy) may hold the same version name
        version = str(self.published.folder) if self.published is not None else None
        if cached is None and self.shared is not None and version is not None:
            cached = self.shared.get(version, sql)
        if cached is not None:
            self._cache[sql] = cached
            return cached
        started = time.perf_counter()
        result = self.warehouse.query(sql)
        cost = None
        if result.bytes_scanned is not None:
            from python_jobs.aws.athena import query_cost_usd

            cost = query_cost_usd(result.bytes_scanned)
        logged = QueryCost(sql, time.perf_counter() - started, result.bytes_scanned, cost)
        self.log.append(logged)
        self._cache[sql] = result
        if self.shared is not None and version is not None:
            self.shared.put(version, sql, result)
        if self.on_query is not None:
            self.on_query(logged)
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


def open_warehouse(
    config: DashboardConfig,
    shared: SharedResults | None = SHARED,
    *,
    athena_client_factory: Callable[[Any], Any] | None = None,
) -> SessionWarehouse:
    """The target's warehouse for one session; on DuckDB its results shared by export. On
    Athena `athena_client_factory` makes the boto3 client (warehouse.make_warehouse)."""
    warehouse = make_warehouse(
        config.target, config.lake, athena_client_factory=athena_client_factory
    )
    return SessionWarehouse(warehouse, shared=shared)


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
