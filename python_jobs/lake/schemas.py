"""The raw layer's contract: which feeds exist, their file format and their columns.

Everything that writes raw files (the generator, the importer) and everything that
reads or checks them (the validator, dbt sources, the S3 ingest) agrees through this
module. Raw transaction values are kept as text, exactly as the source delivered
them: typing, normalization and rejection are the processed layer's job, so an
unparseable amount still lands and is rejected downstream with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import pyarrow as pa

# Ingestion metadata stamped on every raw record by the lake writer.
INGESTION_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("_source_file", pa.string()),  # lake-relative path of the file the row landed in
    ("_source_row", pa.int64()),  # 0-based position of the row in that file
    ("_ingested_at", pa.timestamp("us")),  # UTC, naive
)


@dataclass(frozen=True)
class Feed:
    """One raw feed: its name, on-disk format and the columns a file must carry."""

    name: str
    file_format: str  # "parquet" or "jsonl.gz"
    schema: pa.Schema

    @property
    def file_suffix(self) -> str:
        return ".parquet" if self.file_format == "parquet" else ".jsonl.gz"

    @cached_property
    def payload_columns(self) -> list[str]:
        """The contract's columns a producer sends (not the ingestion metadata). Computed
        once: the real-time service reads it for every transaction. Do not mutate."""
        meta = {name for name, _ in INGESTION_COLUMNS}
        return [f.name for f in self.schema if f.name not in meta]


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([*fields, *INGESTION_COLUMNS])


TRANSACTIONS = Feed(
    name="transactions",
    file_format="parquet",
    schema=_schema(
        ("transaction_id", pa.string()),
        ("account_id", pa.string()),
        ("customer_id", pa.string()),
        ("event_ts", pa.string()),  # "YYYY-MM-DD HH:MM:SS", America/Sao_Paulo wall time
        ("transaction_type", pa.string()),  # PIX, TED, BOLETO, DEBIT, CREDIT (spellings vary)
        ("channel", pa.string()),  # mobile, internet_banking, atm, pos, branch (spellings vary)
        ("direction", pa.string()),  # outbound | inbound
        ("amount", pa.string()),  # BRL, "1234.56"
        (
            "counterparty_key",
            pa.string(),
        ),  # PIX key, merchant, terminal, bank account, boleto issuer
        ("merchant_category_code", pa.string()),  # MCC, card transactions only
        ("device_id", pa.string()),  # mobile / internet banking only
        ("city", pa.string()),
        ("state", pa.string()),  # UF
        ("status", pa.string()),  # approved | declined
    ),
)

CUSTOMERS = Feed(
    name="customers",
    file_format="jsonl.gz",
    schema=_schema(
        ("customer_id", pa.string()),
        ("full_name", pa.string()),
        ("cpf", pa.string()),  # "123.456.789-09"; PII, never leaves the processed layer in clear
        ("birth_date", pa.string()),  # "YYYY-MM-DD"
        ("segment", pa.string()),  # varejo | alta_renda | private | pj
        ("monthly_income", pa.float64()),
        ("risk_rating", pa.string()),  # A (lowest risk) .. E
        ("onboarding_date", pa.string()),
        ("address", pa.struct([("state", pa.string()), ("city", pa.string())])),
        ("updated_at", pa.string()),  # "YYYY-MM-DD HH:MM:SS"
    ),
)

ACCOUNTS = Feed(
    name="accounts",
    file_format="jsonl.gz",
    schema=_schema(
        ("account_id", pa.string()),
        ("customer_id", pa.string()),
        ("account_type", pa.string()),  # checking | savings | credit_card
        ("opened_date", pa.string()),
        ("status", pa.string()),  # active | blocked | closed
        ("credit_limit", pa.float64()),  # credit cards only
        ("updated_at", pa.string()),
    ),
)

FRAUD_REPORTS = Feed(
    name="fraud_reports",
    file_format="jsonl.gz",
    schema=_schema(
        ("report_id", pa.string()),
        ("transaction_id", pa.string()),
        ("reported_at", pa.string()),  # "YYYY-MM-DD HH:MM:SS"
        ("scenario", pa.string()),
        # chargeback | med | customer_contact | analyst (seeds/report_channels.csv)
        ("report_channel", pa.string()),
    ),
)

# An investigator's verdict on an alert, from the dashboard's feedback (python_jobs/feedback.py):
# "fraud" (a fraud_reports row with channel `analyst` is written with it) or "legitimate", the
# confirmed negatives precision needs. The investigator's name stays in raw and processed.
ALERT_VERDICTS = Feed(
    name="alert_verdicts",
    file_format="jsonl.gz",
    schema=_schema(
        ("verdict_id", pa.string()),  # deterministic per (transaction, verdict)
        ("transaction_id", pa.string()),
        ("verdict", pa.string()),  # fraud | legitimate (seeds/alert_verdicts.csv)
        ("investigator", pa.string()),
        ("decided_at", pa.string()),  # "YYYY-MM-DD HH:MM:SS", São Paulo wall time
        ("score_date", pa.string()),  # the alert reviewed: its scoring day and model version
        ("model_version", pa.string()),
    ),
)

FEEDS: dict[str, Feed] = {
    f.name: f for f in (TRANSACTIONS, CUSTOMERS, ACCOUNTS, FRAUD_REPORTS, ALERT_VERDICTS)
}
