"""Every metric the jobs emit, in one place: docs/operations.md's table, the EMF writer's
checks and the test that cross-checks infrastructure/banklake.yaml's alarms all read it.

Every metric carries the dimensions Environment (where it ran: $BANKLAKE_ENVIRONMENT, the
stack's NamePrefix on AWS, "local" otherwise) and Job (which job emitted it), then the few its
entry names. Dimension values come from closed vocabularies (feeds, rejection reasons, layers,
decisions, feature names): never an identifier of a customer, an account or a transaction.
Rates are in Percent (0-100), PSI and precision-like ratios unitless.
"""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE = "banklake"
BASE_DIMENSIONS = ("Environment", "Job")

# the jobs that emit, each the Job dimension's value
JOBS = (
    "generate",
    "import",
    "validate",
    "build",
    "summary",
    "train",
    "score",
    "monitor",
    "serve",
    "consumer",
)

# what each extra dimension means (docs/operations.md)
DIMENSIONS = {
    "Environment": "where the job ran: $BANKLAKE_ENVIRONMENT (the stack's NamePrefix on AWS), "
    "else local",
    "Job": "the job that emitted the figure: " + ", ".join(JOBS),
    "Feed": "a raw feed: transactions, customers, accounts, fraud_reports, alert_verdicts",
    "Disposition": "what triage made of a raw row: accepted, duplicate, rejected",
    "Reason": "a rejection or refusal reason code (stg_rejected_rows.rejection_reason, the "
    "importer's flags, the API's refusal types)",
    "Layer": "raw (rows delivered), processed (rows accepted by triage), curated (rows in "
    "the marts)",
    "Table": "a curated mart",
    "Fault": "a kind of dirty row the generator injected",
    "Feature": "a model feature (ml/features.py)",
    "Decision": "the real-time decision: approve, review, block",
}

# properties a record may carry beside its metrics and dimensions (context, not metrics)
PROPERTIES = ("Day", "ModelVersion", "Target", "Scope", "IntervalSeconds", "Verdict")

# CloudWatch's units (the EMF specification's MetricDefinition Unit)
UNITS = frozenset(
    {
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    }
)


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    jobs: tuple[str, ...]
    description: str
    dimensions: tuple[str, ...] = ()  # beyond BASE_DIMENSIONS

    @property
    def dimension_set(self) -> tuple[str, ...]:
        return (*BASE_DIMENSIONS, *self.dimensions)


def _metrics(*metrics: Metric) -> dict[str, Metric]:
    catalog = {m.name: m for m in metrics}
    assert len(catalog) == len(metrics), "a metric name is declared twice"
    return catalog


CATALOG = _metrics(
    # generate
    Metric("GeneratedRows", "Count", ("generate",), "raw rows written, per feed", ("Feed",)),
    Metric("GeneratedFraudTransactions", "Count", ("generate",), "fraudulent transactions"),
    Metric("GeneratedFaults", "Count", ("generate",), "dirty rows injected", ("Feed", "Fault")),
    # import
    Metric("ImportedRows", "Count", ("import",), "rows landed in raw, per feed", ("Feed",)),
    Metric(
        "ImportFlaggedRows",
        "Count",
        ("import",),
        "rows landed as delivered that dbt will reject, by reason",
        ("Reason",),
    ),
    Metric("ImportMalformedLines", "Count", ("import",), "CSV lines with a wrong field count"),
    # validate (banklake validate, the build's first step, the S3 trigger on AWS)
    Metric("ValidatedFiles", "Count", ("validate",), "raw files checked and found valid"),
    Metric("QuarantinedFiles", "Count", ("validate",), "raw files moved to quarantine"),
    # build
    Metric("DbtTestsRun", "Count", ("build",), "data and unit tests dbt ran"),
    Metric("DbtTestFailures", "Count", ("build",), "tests that failed or errored"),
    Metric("DbtTestWarnings", "Count", ("build",), "tests that warned (severity warn)"),
    Metric("DbtNodeErrors", "Count", ("build",), "models, seeds, snapshots that errored"),
    # summary (banklake summary on either engine, the end of banklake run and demo)
    Metric("LayerRows", "Count", ("summary",), "rows per layer", ("Layer",)),
    Metric(
        "FeedRows",
        "Count",
        ("summary",),
        "triaged raw rows per feed and disposition",
        ("Feed", "Disposition"),
    ),
    Metric("RejectedRows", "Count", ("summary",), "rejected rows by reason", ("Feed", "Reason")),
    Metric(
        "RejectionRate",
        "Percent",
        ("summary",),
        "rejected rows over raw rows, every feed (the lake's whole history)",
    ),
    Metric(
        "NewestDayRejectionRate",
        "Percent",
        ("summary",),
        "rejected rows over raw rows of the newest ingestion day, every feed",
    ),
    Metric("LakeQuarantinedFiles", "Count", ("summary",), "files in the lake's quarantine"),
    Metric("CuratedRows", "Count", ("summary",), "rows per curated mart", ("Table",)),
    # train
    Metric(
        "ChallengerAveragePrecision",
        "None",
        ("train",),
        "the new model's average precision on the test days",
    ),
    Metric("ChampionAveragePrecision", "None", ("train",), "the champion's, on the same test days"),
    Metric("ModelPromoted", "Count", ("train",), "1 when the new model became the champion"),
    Metric("ModelThreshold", "None", ("train",), "the review threshold the alert budget set"),
    # score (and monitor, which reads the scored day back)
    Metric("ScoredRows", "Count", ("score", "monitor"), "transactions scored"),
    Metric("Alerts", "Count", ("score", "monitor", "serve", "consumer"), "alerts raised"),
    Metric("AlertRate", "Percent", ("score", "monitor"), "alerts over scored transactions"),
    # monitor
    Metric(
        "ExpectedAlertRate",
        "Percent",
        ("score", "monitor"),
        "the alert rate of the validation days",
    ),
    Metric(
        "AlertRateRatio",
        "None",
        ("score", "monitor"),
        "alert rate over the expected one: its band is [1/2, 2] (MonitorConfig)",
    ),
    Metric("ScorePsi", "None", ("score", "monitor"), "PSI of the score against training"),
    Metric(
        "FeaturePsi",
        "None",
        ("monitor",),
        "PSI of the judged features that moved most (top 5)",
        ("Feature",),
    ),
    Metric("FeaturesWarmingUp", "Count", ("monitor",), "features whose PSI is not judged yet"),
    Metric(
        "RealizedPrecision", "Percent", ("monitor",), "precision on the days with mature labels"
    ),
    Metric("RealizedRecall", "Percent", ("monitor",), "recall on the days with mature labels"),
    Metric(
        "KnownFraudRate",
        "Percent",
        ("monitor",),
        "frauds known now among the day's transactions (grows as reports arrive)",
    ),
    Metric("RetrainRecommended", "Count", ("monitor",), "1 when the verdict is retrain"),
    # serve (every interval, default 60 s, and at shutdown)
    Metric("ApiRequests", "Count", ("serve",), "transactions answered in the interval"),
    Metric("ApiLatencyP50", "Milliseconds", ("serve",), "median server-side latency"),
    Metric("ApiLatencyP99", "Milliseconds", ("serve",), "99th percentile latency"),
    Metric("Decisions", "Count", ("serve",), "decisions in the interval", ("Decision",)),
    Metric("Refusals", "Count", ("serve",), "requests refused, by reason", ("Reason",)),
    Metric("AlertSinkFailures", "Count", ("serve",), "alerts a sink failed to take"),
    Metric("FlushLag", "Seconds", ("serve",), "age of the oldest record not landed yet"),
    Metric("FlushPendingRecords", "Count", ("serve",), "acknowledged records not landed"),
    # consumer (the Kinesis consumer Lambda, per batch)
    Metric("StreamRecords", "Count", ("consumer",), "Kinesis records in the batch"),
    Metric("StreamAccepted", "Count", ("consumer",), "records decided"),
    Metric("StreamRefused", "Count", ("consumer",), "records refused (dead-lettered)"),
    Metric(
        "StreamLag",
        "Milliseconds",
        ("consumer",),
        "age of the batch's oldest record when read (its iterator age)",
    ),
)


def emitted_by(job: str) -> list[Metric]:
    return [m for m in CATALOG.values() if job in m.jobs]
