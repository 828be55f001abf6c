"""Frequency-accuracy statistics (pure): rank correlation, top-minus-bottom gap, log bins."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN if either side is constant."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(spearmanr(x, y).statistic)


def top_minus_bottom(accuracy: np.ndarray, count: np.ndarray, *, k: int = 10) -> float:
    """Mean accuracy of the k most frequent terms minus that of the k least frequent, x100
    (Pythia's table); ties in count broken by the term's position, so the result is stable."""
    accuracy, count = np.asarray(accuracy, dtype=float), np.asarray(count)
    if len(count) < 2 * k:
        k = len(count) // 2
    if k == 0:
        return float("nan")
    order = np.argsort(count, kind="stable")
    return float(100 * (accuracy[order[-k:]].mean() - accuracy[order[:k]].mean()))


def gap_table(joined: pd.DataFrame, *, task: str, k: int = 10) -> pd.DataFrame:
    """Top-k minus bottom-k accuracy x100: rows = shot count, columns = checkpoint step."""
    import pandas as pd

    part = joined[joined["task"] == task]
    cells = {
        (shots, step): top_minus_bottom(g["accuracy"].to_numpy(), g["count"].to_numpy(), k=k)
        for (shots, step), g in part.groupby(["shots", "step"])
    }
    # an explicit MultiIndex: a task with no rows (the tiny preset has no facts) gives an empty
    # table, not pandas' "index must be a MultiIndex to unstack"
    index = pd.MultiIndex.from_tuples(list(cells), names=["shots", "step"])
    table = pd.Series(list(cells.values()), index=index, dtype=float).unstack()
    table.index.name, table.columns.name = "shots", "step"
    return table


def log_bins(counts: np.ndarray, n_bins: int = 6) -> np.ndarray:
    """Bin edges, log-spaced over the data's own range of positive counts (a zero count falls
    in the first bin)."""
    counts = np.asarray(counts, dtype=float)
    positive = counts[counts > 0]
    if positive.size == 0:
        return np.array([0.0, 1.0])
    lo, hi = positive.min(), positive.max()
    if lo == hi:
        return np.array([0.0, hi * 1.0001])
    edges = np.geomspace(lo, hi * 1.0001, n_bins + 1)
    edges[0] = 0.0
    return edges


def binned_accuracy(
    accuracy: np.ndarray, counts: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(geometric bin centres, mean accuracy per bin, terms per bin); empty bins are NaN."""
    accuracy, counts = np.asarray(accuracy, dtype=float), np.asarray(counts, dtype=float)
    which = np.clip(np.searchsorted(edges, counts, side="right") - 1, 0, len(edges) - 2)
    n = np.bincount(which, minlength=len(edges) - 1)
    total = np.bincount(which, weights=accuracy, minlength=len(edges) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    lower = np.maximum(edges[:-1], edges[1] / 2 if len(edges) > 1 else 1.0)
    centres = np.sqrt(lower * edges[1:])
    return centres, mean, n
