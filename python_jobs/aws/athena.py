"""Running SQL on Athena: configuration from the environment, start, wait, read, and what a
query cost.

Athena is asynchronous: a query is started, then polled until it ends. Polling backs off
exponentially (a short query answers in a second, a long one should not cost hundreds of API
calls; python_jobs/retry.py's poll), a throttled poll is just a longer wait, and a FAILED or
CANCELLED query raises with Athena's own reason, so the user sees "COLUMN_NOT_FOUND: ..."
rather than a state name. Results are read page by page (`fetch`), as Athena's text values
with each column's type: `banklake athena query` prints the text, the assistant's warehouse
converts it by type.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from python_jobs.aws.clients import aws_client, error_code
from python_jobs.environment import aws_profile, aws_region, environment, parsed, require
from python_jobs.retry import Polling, PollTimeout, poll

# Athena's on-demand price: $5 per TB scanned, each query billed for at least 10 MB and
# rounded up to the next MB. AWS bills data in binary units (1 MB = 2**20 bytes).
PRICE_PER_TB_USD = 5.0
_MB = 2**20
_TB = 2**40
MINIMUM_BILLED_BYTES = 10 * _MB

# Athena's own default data catalog: the Glue catalog of the account and region.
DATA_CATALOG = "AwsDataCatalog"

_THROTTLED = {"ThrottlingException", "TooManyRequestsException"}


class AthenaConfigError(RuntimeError):
    """The environment does not say where to run (printed as is by the CLI)."""


class AthenaQueryFailed(RuntimeError):
    """A query ended FAILED or CANCELLED, or did not end in time."""

    def __init__(self, query_id: str, state: str, reason: str) -> None:
        super().__init__(f"Athena query {query_id} {state}: {reason}")
        self.query_id = query_id
        self.state = state
        self.reason = reason


# name -> what it is, for the error that lists every missing variable at once
_REQUIRED = {
    "BANKLAKE_ATHENA_STAGING_DIR": "s3:// prefix for Athena query results",
    "BANKLAKE_ATHENA_WORKGROUP": "Athena work group to run in (engine v3)",
}
_RAW_REQUIRED = {
    "BANKLAKE_S3_RAW_DIR": "s3:// prefix the raw feeds land in (<prefix>/<feed>/year=/month=/day=)",
}


@dataclass(frozen=True)
class AthenaConfig:
    """Where banklake runs on AWS. The same variables drive the dbt `athena` target
    (profiles.yml.example), so the CLI and dbt cannot point at different places."""

    region: str
    work_group: str
    staging_dir: str
    schema: str = "banklake"  # dbt target schema: prefix of the Glue databases
    raw_database: str = ""  # default <schema>_raw, like the dbt source
    raw_location: str | None = None  # only `register` needs it
    first_raw_year: int = 2020
    last_raw_year: int = field(default_factory=lambda: time.gmtime().tm_year + 1)
    profile: str | None = None

    def __post_init__(self) -> None:
        if not self.raw_database:
            object.__setattr__(self, "raw_database", f"{self.schema}_raw")
        for name in ("staging_dir", "raw_location"):
            value = getattr(self, name)
            if value is not None and not value.startswith("s3://"):
                raise AthenaConfigError(f"{name} must be an s3:// URI, got {value!r}")

    @property
    def curated_database(self) -> str:
        """Where dbt writes the curated marts on Athena: `<schema>_curated`
        (macros/generate_schema_name.sql)."""
        return f"{self.schema}_curated"

    @property
    def scores_database(self) -> str:
        """The Glue database of the files other jobs write under processed/ (the fraud
        scores): `<schema>_processed_files`, what the dbt source processed_files renders to on
        Athena. Prefixed like every other database, so two schemas in one account (dev and
        prod) never share, or re-point, each other's scores table."""
        return f"{self.schema}_processed_files"

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, need_raw_location: bool = False
    ) -> AthenaConfig:
        env = environment(env)
        require(
            env,
            {**_REQUIRED, **(_RAW_REQUIRED if need_raw_location else {})},
            error=AthenaConfigError,
            heading="set these environment variables (README, 'Run on AWS'):",
            region="e.g. sa-east-1",
        )
        first_year = parsed(env, "BANKLAKE_RAW_FIRST_YEAR", "2020", int, error=AthenaConfigError)
        return cls(
            region=aws_region(env) or "",  # require() refused an environment without one
            work_group=env["BANKLAKE_ATHENA_WORKGROUP"],
            staging_dir=env["BANKLAKE_ATHENA_STAGING_DIR"],
            schema=env.get("BANKLAKE_ATHENA_SCHEMA") or "banklake",
            raw_database=env.get("BANKLAKE_ATHENA_RAW_DATABASE", ""),
            raw_location=env.get("BANKLAKE_S3_RAW_DIR") or None,
            first_raw_year=first_year,
            profile=aws_profile(env),
        )


def make_client(config: AthenaConfig) -> Any:
    """A boto3 Athena client for the configured profile and region (python_jobs/aws/clients.py:
    botocore's standard retries; AWS_ENDPOINT_URL, when set, is honoured by boto3 itself)."""
    return aws_client("athena", region=config.region, profile=config.profile)


def runner_from_env(
    env: Mapping[str, str] | None = None, *, need_raw_location: bool = False
) -> AthenaRunner:
    """What the CLI's Athena commands run with: the configuration from the environment
    (AthenaConfig.from_env) and a client for it; the config is `runner.config`."""
    config = AthenaConfig.from_env(env, need_raw_location=need_raw_location)
    return AthenaRunner(make_client(config), config)


def billed_bytes(bytes_scanned: int) -> int:
    """Rounded up to the next MB, at least 10 MB."""
    return max(math.ceil(bytes_scanned / _MB) * _MB, MINIMUM_BILLED_BYTES)


def query_cost_usd(bytes_scanned: int) -> float:
    """What one successful query costs on demand (DDL and failed queries are free)."""
    return billed_bytes(bytes_scanned) / _TB * PRICE_PER_TB_USD


# How long Athena queries are polled: 0.5 s, doubling up to 10 s between polls, an hour in all.
POLLING = Polling(initial=0.5, factor=2.0, maximum=10.0, timeout=3600.0)


@dataclass(frozen=True)
class Rows:
    """Query results as Athena returns them: text values (None for null), with each column's
    Athena type; `truncated` when more rows existed than were read."""

    columns: list[str]
    types: list[str]
    rows: list[tuple[str | None, ...]]
    truncated: bool = False


@dataclass
class QueryResult:
    query_id: str
    columns: list[str]
    rows: list[tuple[str | None, ...]]
    bytes_scanned: int
    engine_ms: int
    truncated: bool = False
    types: list[str] = field(default_factory=list)  # Athena's type of each column

    @property
    def cost_usd(self) -> float:
        return query_cost_usd(self.bytes_scanned)


class AthenaRunner:
    """Starts queries in the configured work group and waits for them. `sleep` and `clock`
    are injectable so that tests check the backoff without waiting."""

    def __init__(
        self,
        client: Any,
        config: AthenaConfig,
        *,
        backoff: Polling = POLLING,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.config = config
        self.backoff = backoff
        self._sleep = sleep
        self._clock = clock

    def start(self, sql: str, database: str | None = None) -> str:
        context = {"Catalog": DATA_CATALOG}
        if database:
            context["Database"] = database
        response = self.client.start_query_execution(
            QueryString=sql,
            WorkGroup=self.config.work_group,
            QueryExecutionContext=context,
            ResultConfiguration={"OutputLocation": self.config.staging_dir},
        )
        return response["QueryExecutionId"]

    def wait(self, query_id: str) -> dict[str, Any]:
        """Polls until the query ends; returns its QueryExecution. Raises AthenaQueryFailed
        for FAILED or CANCELLED, and stops the query when it outlives the backoff timeout."""
        try:
            return poll(
                lambda: self._finished(query_id), self.backoff, sleep=self._sleep, clock=self._clock
            )
        except PollTimeout:
            self.client.stop_query_execution(QueryExecutionId=query_id)
            raise AthenaQueryFailed(
                query_id, "TIMED OUT", f"still running after {self.backoff.timeout:.0f} s"
            ) from None

    def _finished(self, query_id: str) -> dict[str, Any] | None:
        """The QueryExecution of a query that SUCCEEDED, None while it runs (or the poll was
        throttled: the query is still there, the next poll is only later); raises for FAILED
        or CANCELLED."""
        from botocore.exceptions import ClientError

        try:
            execution = self.client.get_query_execution(QueryExecutionId=query_id)
        except ClientError as error:
            if error_code(error) not in _THROTTLED:
                raise
            return None
        query = execution["QueryExecution"]
        status = query["Status"]
        state = status["State"]
        if state in {"FAILED", "CANCELLED"}:
            raise AthenaQueryFailed(query_id, state, _failure_reason(status))
        return query if state == "SUCCEEDED" else None

    def fetch(self, query_id: str, max_rows: int) -> Rows:
        """Column names and types, and up to max_rows rows, page by page."""
        columns: list[str] = []
        types: list[str] = []
        rows: list[tuple[str | None, ...]] = []
        token: str | None = None
        first_page = True
        while True:
            kwargs: dict[str, Any] = {"QueryExecutionId": query_id, "MaxResults": 1000}
            if token:
                kwargs["NextToken"] = token
            page = self.client.get_query_results(**kwargs)
            result_set = page["ResultSet"]
            if first_page:
                info = result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                columns = [column["Name"] for column in info]
                types = [column.get("Type", "varchar") for column in info]
            page_rows = [
                tuple(datum.get("VarCharValue") for datum in row.get("Data", []))
                for row in result_set.get("Rows", [])
            ]
            if first_page and page_rows and list(page_rows[0]) == columns:
                page_rows = page_rows[1:]  # a SELECT's first row repeats the header
            first_page = False
            rows.extend(page_rows)
            token = page.get("NextToken")
            if len(rows) > max_rows:
                return Rows(columns, types, rows[:max_rows], truncated=True)
            if not token:
                return Rows(columns, types, rows)

    def run(
        self, sql: str, *, database: str | None = None, max_rows: int | None = 100
    ) -> QueryResult:
        """Start, wait, and read up to max_rows rows (None: read none, e.g. DDL)."""
        query_id = self.start(sql, database)
        try:
            query = self.wait(query_id)
        except KeyboardInterrupt:
            # an interrupted CLI must not leave a scan running (and billing) in the background
            self.client.stop_query_execution(QueryExecutionId=query_id)
            raise
        statistics = query.get("Statistics", {})
        rows = self.fetch(query_id, max_rows) if max_rows is not None else Rows([], [], [])
        return QueryResult(
            query_id=query_id,
            columns=rows.columns,
            rows=rows.rows,
            bytes_scanned=int(statistics.get("DataScannedInBytes", 0)),
            engine_ms=int(statistics.get("EngineExecutionTimeInMillis", 0)),
            truncated=rows.truncated,
            types=rows.types,
        )


def _failure_reason(status: Mapping[str, Any]) -> str:
    reason = status.get("StateChangeReason") or ""
    error = status.get("AthenaError") or {}
    message = error.get("ErrorMessage") or ""
    if message and message not in reason:
        reason = f"{reason} ({message})" if reason else message
    return reason or "no reason given"
