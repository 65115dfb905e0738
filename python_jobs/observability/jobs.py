"""One function per job: its result object, as the job already has it, into figures, emitted.

Nothing here recomputes a figure: each reads the numbers the job's own result carries
(GenerationResult, ImportResult, ValidationReport, DbtOutcome, LakeSummary, TrainOutcome,
ScoreResult, MonitorReport, the service's counters). Imports of those types are for the type
checker only, so this module stays standard-library (the Lambdas carry it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from python_jobs.observability.emf import Figure, emit

if TYPE_CHECKING:
    from ml.monitor import MonitorReport
    from ml.score import ScoreResult
    from ml.train import TrainOutcome
    from python_jobs.generate import GenerationResult
    from python_jobs.importer.run import ImportResult
    from python_jobs.lake.validate import ValidationReport
    from python_jobs.summary import LakeSummary

Record = dict[str, Any]
TOP_FEATURES = 5  # FeaturePsi: the judged features that moved most
RETRAIN = "retrain recommended"  # ml/monitor.py's verdict


def _percent(part: float, whole: float) -> float | None:
    return 100.0 * part / whole if whole else None


def _ratio_percent(value: float | None) -> float | None:
    return None if value is None else 100.0 * value


def emit_generate(lake: Path, result: GenerationResult) -> list[Record]:
    figures = [Figure("GeneratedRows", n, {"Feed": feed}) for feed, n in result.rows.items()]
    figures.append(Figure("GeneratedFraudTransactions", result.fraud_transactions))
    figures += [
        Figure("GeneratedFaults", n, {"Feed": feed, "Fault": kind})
        for feed, kinds in result.faults.items()
        for kind, n in kinds.items()
    ]
    day = f"{result.first_day.isoformat()}..{result.last_day.isoformat()}"
    return emit("generate", figures, lake=lake, properties={"Day": day})


def emit_import(lake: Path, result: ImportResult) -> list[Record]:
    rows: dict[str, int] = {}
    for landed in result.files:
        rows[landed.feed] = rows.get(landed.feed, 0) + landed.rows
    figures = [Figure("ImportedRows", n, {"Feed": feed}) for feed, n in rows.items()]
    figures += [Figure("ImportFlaggedRows", n, {"Reason": r}) for r, n in result.flags.items()]
    figures.append(Figure("ImportMalformedLines", len(result.malformed)))
    return emit("import", figures, lake=lake)


def emit_validation(lake: Path | None, valid: int, quarantined: int) -> list[Record]:
    """`banklake validate`, the build's first step, and the S3 trigger on AWS."""
    figures = [Figure("ValidatedFiles", valid), Figure("QuarantinedFiles", quarantined)]
    return emit("validate", figures, lake=lake)


def emit_validate(lake: Path, report: ValidationReport) -> list[Record]:
    return emit_validation(lake, report.valid, len(report.quarantined))


def emit_trigger(actions: Iterable[str]) -> list[Record]:
    """The S3 trigger's outcomes (python_jobs/aws/s3_trigger.py Outcome.action): files it
    validated or quarantined now (not those a retry found done already)."""
    done = list(actions)
    return emit_validation(None, done.count("validated"), done.count("quarantined"))


def emit_build(lake: Path | None, statuses: Mapping[str, int], *, scope: str) -> list[Record]:
    """A `dbt build`'s tallies from its count per "resource_type:status" (DbtOutcome.statuses
    in process, python_jobs/dbt_runs.py's DbtRun.statuses from a run_results.json); called
    before require_success, so a failing build is counted too."""

    def count(kinds: tuple[str, ...], states: tuple[str, ...]) -> int:
        return sum(statuses.get(f"{kind}:{state}", 0) for kind in kinds for state in states)

    tests = ("test", "unit_test")
    failed = ("fail", "error", "runtimeerr", "runtime error")
    figures = [
        Figure("DbtTestsRun", sum(n for k, n in statuses.items() if k.split(":")[0] in tests)),
        Figure("DbtTestFailures", count(tests, failed)),
        Figure("DbtTestWarnings", count(("test",), ("warn",))),
        Figure("DbtNodeErrors", count(("model", "seed", "snapshot"), failed)),
    ]
    return emit("build", figures, lake=lake, properties={"Scope": scope})


def emit_summary(lake: Path | None, summary: LakeSummary, *, target: str) -> list[Record]:
    """Rows per layer, per feed and disposition, rejections by reason, the rejection rate,
    the quarantine and the marts, as the summary counted them (either engine)."""
    raw = sum(summary.raw_rows(feed) for feed in summary.processed)
    accepted = sum(counts.get("accepted", 0) for counts in summary.processed.values())
    rejected = sum(n for _, _, n in summary.rejected)
    figures = [
        Figure("LayerRows", raw, {"Layer": "raw"}),
        Figure("LayerRows", accepted, {"Layer": "processed"}),
        Figure("LayerRows", sum(summary.curated.values()), {"Layer": "curated"}),
        Figure("RejectionRate", _percent(rejected, raw)),
        Figure(
            "NewestDayRejectionRate",
            _percent(summary.newest_day[2], summary.newest_day[1]) if summary.newest_day else None,
        ),
        Figure("LakeQuarantinedFiles", summary.quarantined_files),
    ]
    figures += [
        Figure("FeedRows", n, {"Feed": feed, "Disposition": disposition})
        for feed, counts in summary.processed.items()
        for disposition, n in counts.items()
    ]
    figures += [
        Figure("RejectedRows", n, {"Feed": feed, "Reason": reason})
        for feed, reason, n in summary.rejected
    ]
    figures += [Figure("CuratedRows", n, {"Table": t}) for t, n in summary.curated.items()]
    properties = {"Target": target}
    if summary.newest_day:
        properties["Day"] = summary.newest_day[0]
    return emit("summary", figures, lake=lake, properties=properties)


def emit_train(lake: Path, outcome: TrainOutcome) -> list[Record]:
    decision = outcome.decision
    figures = [
        Figure("ChallengerAveragePrecision", decision.challenger_ap),
        Figure("ChampionAveragePrecision", decision.champion_ap),
        Figure("ModelPromoted", int(decision.promote)),
        Figure("ModelThreshold", outcome.metadata["threshold"]["value"]),
    ]
    return emit("train", figures, lake=lake, properties={"ModelVersion": outcome.version})


def emit_score(lake: Path, result: ScoreResult, *, target: str = "duckdb") -> list[Record]:
    expected = result.expected_alert_rate
    rate = result.alerts / result.rows if result.rows else None
    figures = [
        Figure("ScoredRows", result.rows),
        Figure("Alerts", result.alerts),
        Figure("AlertRate", _ratio_percent(rate)),
        Figure("ExpectedAlertRate", _ratio_percent(expected)),
        Figure("AlertRateRatio", rate / expected if rate is not None and expected else None),
        Figure("ScorePsi", result.score_psi),
    ]
    properties = {"Day": result.day.isoformat(), "ModelVersion": result.model_version}
    return emit("score", figures, lake=lake, properties={**properties, "Target": target})


def emit_monitor(lake: Path, report: MonitorReport) -> list[Record]:
    mature = report.realized.get("mature", {})
    today = [
        d for d in report.realized.get("per_day", []) if d["score_date"] == report.day.isoformat()
    ]
    known = today[0]["frauds_known"] if today else None
    top = sorted(report.judged_psi().items(), key=lambda kv: -kv[1])[:TOP_FEATURES]
    figures = [
        Figure("ScoredRows", report.rows),
        Figure("Alerts", report.alerts),
        Figure("AlertRate", _ratio_percent(report.alert_rate)),
        Figure("ExpectedAlertRate", _ratio_percent(report.expected_alert_rate)),
        Figure(
            "AlertRateRatio",
            report.alert_rate / report.expected_alert_rate if report.expected_alert_rate else None,
        ),
        Figure("ScorePsi", report.score_psi),
        *(Figure("FeaturePsi", psi, {"Feature": name}) for name, psi in top),
        Figure("FeaturesWarmingUp", len(report.warming_up)),
        Figure("RealizedPrecision", _ratio_percent(mature.get("precision"))),
        Figure("RealizedRecall", _ratio_percent(mature.get("recall"))),
        Figure("KnownFraudRate", None if known is None else _percent(known, report.rows)),
        Figure("RetrainRecommended", int(report.verdict == RETRAIN)),
    ]
    properties = {
        "Day": report.day.isoformat(),
        "ModelVersion": report.model_version,
        "Verdict": report.verdict,
    }
    return emit("monitor", figures, lake=lake, properties=properties)


def latency_percentiles(latencies_seconds: Sequence[float]) -> tuple[float, float] | None:
    """p50 and p99 in milliseconds (nearest rank: a latency some request really had)."""
    if not latencies_seconds:
        return None
    ordered = sorted(latencies_seconds)

    def rank(q: float) -> float:
        return 1000.0 * ordered[max(0, math.ceil(len(ordered) * q) - 1)]

    return rank(0.50), rank(0.99)


def emit_serve(
    lake: Path,
    *,
    interval_seconds: float,
    requests: int,
    latencies_seconds: Sequence[float],
    decisions: Mapping[str, int],
    refusals: Mapping[str, int],
    alerts: int,
    alert_failures: int,
    flush_lag_seconds: float,
    flush_pending: int,
) -> list[Record]:
    """One interval of the running service (python_jobs/serve/service.py): counts are the
    interval's, latency percentiles over the requests it answered (`latencies_seconds`, all
    of them or a uniform sample), flush figures now."""
    percentiles = latency_percentiles(latencies_seconds)
    figures = [
        Figure("ApiRequests", requests),
        Figure("ApiLatencyP50", percentiles[0] if percentiles else None),
        Figure("ApiLatencyP99", percentiles[1] if percentiles else None),
        *(Figure("Decisions", n, {"Decision": d}) for d, n in decisions.items()),
        *(Figure("Refusals", n, {"Reason": r}) for r, n in refusals.items()),
        Figure("Alerts", alerts),
        Figure("AlertSinkFailures", alert_failures),
        Figure("FlushLag", flush_lag_seconds),
        Figure("FlushPendingRecords", flush_pending),
    ]
    properties = {"IntervalSeconds": round(interval_seconds, 3)}
    return emit("serve", figures, lake=lake, properties=properties)


def emit_consumer(
    records: int,
    accepted: int,
    refused: int,
    alerts: int,
    lag_ms: float | None,
    *,
    lake: Path | None = None,
    day: date | None = None,
) -> list[Record]:
    """The Kinesis consumer, once per batch it handled (python_jobs/aws/stream_consumer.py):
    records in the batch, decided, refused (dead-lettered), alerts raised, and the age of the
    batch's oldest record when read (ms; None when unknown). In Lambda the records go to the
    log, where CloudWatch extracts them; `lake` adds a local copy."""
    figures = [
        Figure("StreamRecords", records),
        Figure("StreamAccepted", accepted),
        Figure("StreamRefused", refused),
        Figure("Alerts", alerts),
        Figure("StreamLag", lag_ms),
    ]
    properties = {"Day": day.isoformat()} if day else None
    return emit("consumer", figures, lake=lake, properties=properties)
