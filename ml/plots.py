"""PNG plots for the model folder, drawn with matplotlib's Agg canvas (no display, no pyplot
global state, so it is safe in tests and on servers)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ml.ranking import Ranking, plot_points

PLOT_FILES = ("pr_curve.png", "roc_curve.png", "feature_importance.png", "score_distribution.png")


def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def write_plots(
    directory: Path,
    labels: np.ndarray,
    scores: Mapping[str, np.ndarray],
    importance: Mapping[str, float],
    model_name: str = "model",
) -> list[Path]:
    """PR and ROC curves on the test period for every model, the booster's feature
    importance (total gain) and its score distribution by class."""
    y = np.asarray(labels, dtype=bool)
    paths = [directory / name for name in PLOT_FILES]
    both_classes = bool(y.any() and not y.all())

    pr, roc = Figure(figsize=(6, 4.5)), Figure(figsize=(6, 4.5))
    ax_pr, ax_roc = pr.subplots(), roc.subplots()
    for name, s in scores.items():
        if both_classes:
            ranking = Ranking.of(y, s)
            recall, precision = ranking.pr_curve()
            shown = plot_points(recall.size)
            ax_pr.plot(recall[shown], precision[shown], label=name)
            fpr, tpr = ranking.roc_curve()
            shown = plot_points(fpr.size)
            ax_roc.plot(fpr[shown], tpr[shown], label=name)
    ax_pr.set(xlabel="recall", ylabel="precision", title="Precision-recall, test period")
    ax_roc.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, test period")
    for ax in (ax_pr, ax_roc):
        ax.legend(loc="best") if both_classes else ax.text(0.5, 0.5, "one class only")
    _save(pr, paths[0])
    _save(roc, paths[1])

    ranked = sorted(importance.items(), key=lambda kv: kv[1])[-20:]
    fig = Figure(figsize=(7, 6))
    ax = fig.subplots()
    total = sum(importance.values()) or 1.0
    ax.barh([k for k, _ in ranked], [v / total for _, v in ranked])
    ax.set(xlabel="share of total gain", title="Feature importance (top 20)")
    _save(fig, paths[2])

    fig = Figure(figsize=(6, 4.5))
    ax = fig.subplots()
    s = np.asarray(scores[model_name])
    bins = np.linspace(0.0, 1.0, 51).tolist()
    ax.hist(s[~y], bins=bins, alpha=0.6, density=True, label="not fraud", log=True)
    if y.any():
        ax.hist(s[y], bins=bins, alpha=0.6, density=True, label="fraud", log=True)
    ax.set(xlabel="score", ylabel="density (log)", title=f"{model_name} score by class, test")
    ax.legend(loc="best")
    _save(fig, paths[3])
    return paths
