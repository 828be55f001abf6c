"""Exposures of the memorization study: how often, and since when, a model saw a text.

- Natural duplication (any corpus, nothing planted): each scored row's prompt + target window
  (its first k + target tokens) is counted in the trained rows, at any offset, by hashing every
  window in one pass (`analysis.windows.count_windows`); memorization at the final checkpoint
  is set against that count (Spearman, with interval and p from `analysis.stats`). Labelled
  descriptive: the duplication is the corpus's own, not an intervention.
- First exposure: the first trained row holding a scored row's window (itself, or an earlier
  duplicate); the memorization profiles' cohorts start there.
- Planted items: exposures of each canary from the run's ledger (`analysis.ledger`), i.e. how
  often the model actually saw it before the checkpoint, not the planted copy count.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.ledger import Ledger, ledger_for
from analysis.memorization.results import MemResults
from analysis.sources import Rows, open_rows
from analysis.stats import NotTestable, TestResult, spearman_test, stable_seed
from analysis.study import RunSpec, StudyReport, TruthCheck, run_check
from analysis.windows import find_patterns

log = logging.getLogger(__name__)

DESCRIPTIVE = "descriptive (natural duplication; nothing planted)"


@dataclass(frozen=True, kw_only=True)
class WindowExposure:
    """Per scored row: its window's occurrences in the trained rows and the first of them."""

    rows: np.ndarray  # int64 [R], the scored rows
    count: np.ndarray  # int64 [R], occurrences of the row's window in trained rows
    first_row: np.ndarray  # int64 [R], first trained row holding it (-1: never trained)


def scored_windows(rows: Rows, scored: np.ndarray, width: int) -> np.ndarray:
    """The first `width` tokens of each scored row [R, width] (as the model saw them)."""
    if len(scored) == 0:
        return np.zeros((0, width), dtype=np.int64)
    return np.concatenate([rows.rows(int(r), int(r) + 1)[:, :width] for r in scored]).astype(
        np.int64
    )


def window_exposure(res: MemResults, rows: Rows, *, end_row: int) -> WindowExposure:
    """Count every scored row's k + target window in rows [0, end_row), in one pass."""
    width = int(res.attrs["k"]) + int(res.attrs["target"])
    windows = scored_windows(rows, res.rows, width)
    matches = find_patterns(rows, list(windows), end_row=end_row)
    return WindowExposure(
        rows=np.asarray(res.rows, dtype=np.int64),
        count=matches.counts(len(windows)),
        first_row=matches.first_row(len(windows)),
    )


def duplication_table(res: MemResults, expo: WindowExposure) -> pd.DataFrame:
    """Per scored row at the final checkpoint: window count, score, log-likelihood, memorized."""
    final = len(res.steps) - 1
    return pd.DataFrame(
        {
            "row": expo.rows,
            "window_count": expo.count,
            "first_row": expo.first_row,
            "score": res.scores[final].astype(np.float64),
            "loglik": res.loglik[final].astype(np.float64),
            "memorized": res.scores[final] >= 1.0,
            "step": int(res.steps[final]),
        }
    )


def duplication_summary(table: pd.DataFrame, *, run: str, seed: int) -> pd.DataFrame:
    """Spearman(window count, score) over the scored rows, or why it cannot be tested."""
    base = {"run": run, "measure": "memorization score vs window count", "label": DESCRIPTIVE}
    try:
        t: TestResult = spearman_test(
            table["window_count"].to_numpy(float), table["score"].to_numpy(), unit="rows", seed=seed
        )
    except NotTestable as exc:
        return pd.DataFrame([{**base, "status": "not testable", "reason": str(exc)}])
    return pd.DataFrame(
        [
            {
                **base,
                "effect": t.effect,
                "ci_low": t.ci_low,
                "ci_high": t.ci_high,
                "p_value": t.p_value,
                "n": t.n,
                "unit": t.unit,
                "test": t.test,
                "status": "tested",
                "reason": "",
            }
        ]
    )


def by_count(table: pd.DataFrame) -> pd.DataFrame:
    """Scored rows grouped by window count: n, mean score, memorized fractions."""
    g = table.groupby("window_count")
    return pd.DataFrame(
        {
            "rows": g.size(),
            "mean_score": g["score"].mean(),
            "memorized_exact": g["memorized"].mean(),
            "score_ge_0.5": g["score"].apply(lambda s: float((s >= 0.5).mean())),
            "mean_loglik": g["loglik"].mean(),
        }
    ).reset_index()


def duplication_figure(table: pd.DataFrame, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    jitter = np.random.default_rng(0).uniform(-0.08, 0.08, len(table))
    ax.scatter(table["window_count"] * np.exp(jitter), table["score"], s=8, alpha=0.4)
    agg = by_count(table)
    ax.plot(agg["window_count"], agg["mean_score"], "o-", color="tab:red", label="mean per count")
    ax.set_xscale("log")
    ax.set_xlabel("occurrences of the row's window in the trained rows")
    ax.set_ylabel("memorization score (final checkpoint)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # a long run name in the title stays whole
    plt.close(fig)
    return path


def add_natural_duplication(
    report: StudyReport, res: MemResults, run: RunSpec, out_dir: Path, *, seed: int
) -> WindowExposure:
    """Tables `natural_duplication` (+ `_by_count`, `_test`) and a figure into `report`."""
    rows = open_rows(run.path)
    expo = window_exposure(res, rows, end_row=int(res.steps[-1]) * res.batch_size)
    table = duplication_table(res, expo)
    report.tables["natural_duplication_test"] = duplication_summary(table, run=run.name, seed=seed)
    report.tables["natural_duplication_by_count"] = by_count(table).assign(run=run.name)
    report.tables["natural_duplication"] = table.assign(run=run.name)
    title = f"{run.name}: memorization against natural duplication\n{DESCRIPTIVE}"
    report.figures.append(
        duplication_figure(table, out_dir / "memorization_natural_dup.png", title)
    )
    return expo


def exposure_rows(expo: WindowExposure) -> np.ndarray:
    """The row whose training first exposed each scored row's window: the first trained row
    holding it, else the row itself (never trained: the profiles' control group)."""
    return np.where(expo.first_row >= 0, expo.first_row, expo.rows)


def canary_exposures(table: pd.DataFrame, ledger: Ledger, step: int) -> pd.DataFrame:
    """Per canary (mean over its scored windows): planted count, ledger exposures before
    checkpoint `step`, first exposure step, score and log-likelihood."""
    per = table.groupby("canary").agg(
        count=("count", "first"), score=("score", "mean"), target_loglik=("target_loglik", "mean")
    )
    ids = [f"canaries/{int(c)}" for c in per.index]
    per["exposures"] = ledger.exposures(ids, step).to_numpy()
    per["first_exposure_step"] = ledger.first_exposure(ids).to_numpy()
    return per.reset_index().assign(run=ledger.run, step=step)


EXPOSURE_CHECK = "canaries: memorization rises with ledger exposures"


def exposure_check(per: pd.DataFrame) -> TruthCheck:
    """Canary log-likelihood rises with the exposures the ledger counts (Spearman over
    canaries: a canary's runs share its text, so its runs are averaged into one unit)."""
    unit = per.groupby("canary")[["exposures", "target_loglik"]].mean()
    return run_check(
        EXPOSURE_CHECK,
        lambda: spearman_test(
            unit["exposures"].to_numpy(float),
            unit["target_loglik"].to_numpy(float),
            unit="canaries",
            seed=stable_seed("memorization", EXPOSURE_CHECK),
            labels=("ledger exposures", "canary log-likelihood"),
        ),
        detail=f"{len(unit)} canaries ({per['run'].nunique()} run(s) averaged); exposures in the "
        "trained rows (ledger), not planted copies",
        unit="canaries",
    )


def add_canary_exposures(
    report: StudyReport,
    table: pd.DataFrame,
    runs: list[RunSpec],
    truth: dict[str, Any],
) -> None:
    """Table `canary_exposures` (every run's canaries) and its check, from the runs' ledgers."""
    parts = []
    for run in runs:
        ledger = ledger_for(run.path, truth)
        parts.append(canary_exposures(table[table["run"] == run.name], ledger, int(ledger.steps)))
    if not parts or table.empty:
        return
    per = pd.concat(parts, ignore_index=True)
    report.tables["canary_exposures"] = per
    report.checks.append(exposure_check(per))
