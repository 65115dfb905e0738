"""Text for humans: the headline metrics table and the model card."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from ml.plots import PLOT_FILES

MODEL_LABELS = {
    "model": "XGBoost + forest (model)",
    "xgboost": "XGBoost alone",
    "random_forest": "random forest",
    "logistic_regression": "logistic regression",
    "rules": "rules",
}


def _num(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def metrics_table(metrics: Mapping[str, Mapping[str, Any]], *, markdown: bool = False) -> str:
    """One row per model: ROC-AUC, AP, precision/recall/F1 at the threshold, precision@k, and
    the cases (customers) and transactions alerted a day."""
    k = next(iter(metrics.values()))["k"] if metrics else 100
    header = [
        "model",
        "ROC-AUC",
        "AP",
        "precision",
        "recall",
        "F1",
        f"cust. prec@{k}",
        "cases/day",
        "alerts/day",
    ]
    rows = [
        [
            MODEL_LABELS.get(name, name),
            _num(m["roc_auc"]),
            _num(m["average_precision"]),
            _num(m["precision"]),
            _num(m["recall"]),
            _num(m["f1"]),
            _num(m["precision_at_k"]),
            f"{m.get('cases_per_day', 0.0):.0f}",
            f"{m['alerts_per_day']:.0f}",
        ]
        for name, m in metrics.items()
    ]
    return _table(header, rows, markdown)


def ceiling_note(metrics: Mapping[str, Mapping[str, Any]], *, known_labels: bool = True) -> str:
    """How far precision@k could go with these labels on the test days."""
    if not metrics:
        return ""
    m = next(iter(metrics.values()))
    why = " (frauds not reported yet count as non-fraud)" if known_labels else ""
    return (
        f"customer precision@{m['k']} of a perfect ranking on these test days: "
        f"{_num(m.get('precision_at_k_ceiling'))}{why}"
    )


def scenario_table(metrics: Mapping[str, Mapping[str, Any]], *, markdown: bool = False) -> str:
    """Recall at the threshold per fraud scenario (frauds known in the test period)."""
    scenarios = sorted({s for m in metrics.values() for s in m["recall_by_scenario"]})
    header = ["scenario", "frauds", *(MODEL_LABELS.get(n, n) for n in metrics)]
    rows = []
    for scenario in scenarios:
        first = next(iter(metrics.values()))["recall_by_scenario"].get(scenario, {})
        rows.append(
            [
                scenario,
                str(first.get("frauds", 0)),
                *(
                    _num(m["recall_by_scenario"].get(scenario, {}).get("recall"))
                    for m in metrics.values()
                ),
            ]
        )
    return _table(header, rows, markdown)


def scenario_ap_table(metrics: Mapping[str, Mapping[str, Any]], *, markdown: bool = False) -> str:
    """Average precision per fraud scenario: each scenario's frauds ranked against every
    legitimate row (the other scenarios' frauds left out)."""
    scenarios = sorted(
        {s for m in metrics.values() for s in m.get("average_precision_by_scenario", {})}
    )
    header = ["scenario", *(MODEL_LABELS.get(n, n) for n in metrics)]
    rows = [
        [
            scenario,
            *(
                _num(m.get("average_precision_by_scenario", {}).get(scenario))
                for m in metrics.values()
            ),
        ]
        for scenario in scenarios
    ]
    return _table(header, rows, markdown)


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])

    return "\n".join([line(header), *(line(r) for r in rows)])


def full_list_note(diagnostics: Mapping[str, Any]) -> str:
    """What a model that flags exactly every fraud scores on the known test labels (below
    the models on young labels: the average precision there rewards ranking quickly
    reported scenarios first, not catching fraud)."""
    value = diagnostics.get("full_list_known_label_ap")
    if value is None:
        return ""
    return (
        "average precision, on the labels known now, of a score that flags exactly the "
        f"generator's frauds: {_num(value)} (the share of them reported so far)"
    )


def label_maturity_note(windows: Mapping[str, Any], labels_as_of: str | None) -> str:
    """How mature the test's labels are: the reports known on the lake's last day, and the
    newest days left out of the test while their reports arrive (the label horizon)."""
    if labels_as_of is None:  # a model saved before the horizon existed
        return "test labels: the frauds reported so far"
    as_of = date.fromisoformat(labels_as_of)
    test_start = date.fromisoformat(str(windows["test_start"]))
    test_end = date.fromisoformat(str(windows["test_end"]))
    ages = f"{(as_of - test_end).days}-{(as_of - test_start).days} days old"
    left_out = (as_of - test_end).days
    if left_out <= 0:
        return (
            f"test labels: the frauds reported by {as_of} ({ages}); the test reaches the "
            "newest day, whose frauds are mostly not reported yet"
        )
    return (
        f"test labels: the frauds reported by {as_of} ({ages}); the {left_out} newest days "
        f"({test_end + timedelta(days=1)}..{as_of}) are left out of the test while their "
        "frauds are reported (--label-horizon-days)"
    )


def _diagnostics(metadata: Mapping[str, Any]) -> str:
    diagnostics = metadata.get("diagnostics")
    if not diagnostics:
        return ""
    truth = diagnostics["generator_truth"]
    return (
        "## Diagnostic: against the generator's truth\n\n"
        f"{diagnostics['note'][0].upper()}{diagnostics['note'][1:]}.\n\n"
        f"{metrics_table(truth, markdown=True)}\n\n"
        f"For scale, the {ceiling_note(truth, known_labels=False)}; the "
        f"{full_list_note(diagnostics) or 'known labels have a single class'}.\n\n"
        "Average precision per scenario:\n\n"
        f"{scenario_ap_table(truth, markdown=True)}\n\n"
        "Recall per scenario at the threshold:\n\n"
        f"{scenario_table(truth, markdown=True)}\n\n"
    )


def _fit_sample_note(booster: dict[str, Any], fit_frauds: int) -> str:
    """How many fit rows the trees saw, when negatives were sampled (ml/sampling.py)."""
    weight = float(booster.get("negative_weight", 1.0))
    if weight == 1.0 or booster.get("fit_rows") is None:
        return ""
    return (
        f"; fitted on {booster['fit_rows']:,} rows: every known fraud ({fit_frauds:,}) and a "
        f"uniform sample of the rest, each weighted {weight:.2f}"
    )


def _stopping_sample_note(booster: dict[str, Any], validation_rows: int) -> str:
    """How many validation rows early stopping evaluated, when it sampled them."""
    rows = booster.get("stopping_rows")
    if rows is None or rows >= validation_rows:
        return ""
    return (
        f", over {rows:,} of its {validation_rows:,} rows: every known fraud and a weighted "
        "sample of the rest"
    )


def _model_line(metadata: Mapping[str, Any]) -> str:
    model = metadata.get("model")
    if not model:  # versions trained before the forest joined
        return "The model is XGBoost alone."
    forest = metadata.get("forest", {})
    return (
        f"The model's score is the mean of two fraud probabilities (weights "
        f"{' / '.join(f'{w:g}' for w in model['weights'])}): XGBoost's and a random forest's "
        f"({forest.get('trees', '?')} fully grown trees on at most "
        f"{forest.get('max_fit_rows', 0):,} rows: every fraud and a weighted sample of the rest)."
    )


def model_card(metadata: Mapping[str, Any]) -> str:
    """The model card: what the model is for, what it saw, how it was tested, how it did."""
    w = metadata["windows"]
    t = metadata["threshold"]
    data = metadata["data"]
    metrics = metadata["metrics"]
    decision = metadata.get("champion_decision", {})
    folds = metadata.get("folds", [])
    fold_lines = ""
    if len(folds) > 1:
        fold_lines = "\n\n### Prequential folds (oldest first)\n\n" + "\n".join(
            f"- test {f['windows']['test_start']}..{f['windows']['test_end']}: AP "
            + ", ".join(
                f"{MODEL_LABELS.get(n, n)} {_num(m['average_precision'])}"
                for n, m in f["metrics"].items()
            )
            for f in folds
        )
    booster = metadata["booster"]
    monotone = ", ".join(booster["params"]["monotone_increasing"]) or "nothing"
    sampled = _fit_sample_note(booster, data["frauds"]["fit"])
    stopping = _stopping_sample_note(booster, data["rows"]["validation"])
    plots = "\n".join(f"- `{name}`" for name in PLOT_FILES)
    return f"""# Model card: fraud_xgb {metadata["version"]}

## Intended use

Scores each card, PIX, TED and boleto transaction of the bank's retail customers for fraud,
once a day over the previous day's transactions (`banklake score`), to fill the fraud
team's alert queue: transactions scoring at or above the threshold
({t["value"]:.6f}) are alerts, in about {t["alert_budget_per_day"]:g} cases (customers) a
day. Each score comes
with its three largest reasons (feature contributions, in score points). It is a decision aid for
analysts, not an automatic block, and it is not a credit or customer-risk score.

## Data

`curated.ml_features` (one row per transaction, features computed in dbt from each
transaction's past only; see ml/features.py). Labels come only from fraud reports
(chargebacks, PIX MED claims, customer contacts).

- training rows: {data["rows"]["fit"]:,} fit + {data["rows"]["validation"]:,} validation;
  frauds known at the cut-off: {data["frauds"]["fit"]:,} + {data["frauds"]["validation"]:,}
  ({data["frauds"]["training_reported_after_cutoff"]:,} more training-period frauds were
  reported only after the cut-off and counted as non-fraud, as in production)
- test rows: {data["rows"]["test"]:,}, frauds known now: {data["frauds"]["test"]:,}
- fingerprint of the training keys (sha256): `{data["training_keys_sha256"]}`

## Protocol

- training {w["train_start"]} to {w["train_end"]}; the last {w["validation_days"]} days
  (from {w["validation_start"]}) are the validation slice for early stopping and the
  threshold
- gap of {w["gap_days"]} days, unused
- labels known at the cut-off {w["cutoff"]} for training; for the test,
  {label_maturity_note(w, data.get("labels_as_of")).removeprefix("test labels: ")}
- test {w["test_start"]} to {w["test_end"]}
- threshold rule: {t["rule"]}

{_model_line(metadata)}

XGBoost (hist, depth {booster["params"]["max_depth"]}, learning rate
{booster["params"]["learning_rate"]}), {booster["best_iteration"] + 1} trees (early stopping on
the validation {booster["stopping_metric"]}{stopping}), frauds weighted
{booster["scale_pos_weight"]:.1f}, monotone increasing in
{monotone}{sampled}; the random forest (scikit-learn, fully grown trees, seeded) is the
model's other half and, alone, the strong baseline; the other baselines are
a logistic regression (median-imputed, signed-log, standardized, balanced class weights)
and a points-based rule set, each with its own threshold from the same alert-budget rule.
It replaces a champion only if its average precision is at least the random forest's.

## Metrics on the test period

{metrics_table(metrics, markdown=True)}

Customer precision@k: each day, the k customers with the highest score (max over their
transactions that day), and the share of them that had a known fraud that day; mean over
the test days. For scale, the {ceiling_note(metrics)}.

### Per scenario (the known frauds' scenarios)

Average precision:

{scenario_ap_table(metrics, markdown=True)}

Recall at the threshold:

{scenario_table(metrics, markdown=True)}{fold_lines}

{_diagnostics(metadata)}## Champion decision

{decision.get("reason", "n/a")} -> {"promoted" if decision.get("promote") else "not promoted"}.

## Limitations

- Test labels are the ones known now: frauds with long report delays (card testing and
  compromised terminals are reported after ~2 weeks) are still unlabelled in the last test
  days, so precision and recall above are underestimates of the real ones, unevenly by
  scenario.
- Scenarios reported late (compromised terminals: ~18 days) have few or no labelled
  examples in the training period of a young lake, and the trees cannot extrapolate to
  them: check their recall above; rules on the counterparty's reported frauds may catch
  more of them until the lake holds more history.
- Counterparty risk is measured over windows that end `label_delay_days` (a dbt var) before
  the transaction; where reports take longer, the newest of those windows is not labelled
  yet: set the var to the bank's usual delay, rebuild ml_features and retrain.
- On data it was not designed for (`banklake mechanisms`), XGBoost alone loses narrowly to
  the random forest where fraud is a hard boundary (the forest splits halfway between the
  examples, XGBoost at an example's value) and where reports take longer than the gap (the
  validation slice then holds unlabelled frauds and early stopping stops early); that is
  why the model averages the two. Where every transaction at a compromised counterparty is
  fraud, the rule on the counterparty's reported frauds still ranks better than the model on
  several of those lakes. Results: bench/results/mechanisms-*.md.
- The forest half's reasons are path attributions (each split's change of the fraud share),
  not TreeSHAP: exact TreeSHAP over fully grown trees is too slow to explain every row.
- The model only sees what ml_features offers: no merchant category, no distance from the
  customer's usual places, no declined-authorization counts, no counterparty age.
- Features with 30-day windows are incomplete for the first 30 days of the lake; a model
  trained on a young lake sees smaller histories than it will meet later (watch PSI).
- Trained on synthetic data: the numbers say the pipeline works, not how the model will
  do on a real bank's traffic.

## Files

- `model.json` (XGBoost JSON), `forest.json` (the forest in the same format, when the
  model has one), `metadata.json` (sha256 of model.json: `{metadata["model_sha256"]}`)
{plots}
"""
