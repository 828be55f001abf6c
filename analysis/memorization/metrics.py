"""Pure summaries of memorization scores: fraction, predictability, spread over training order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis.memorization.results import MemResults
from suite_core import DataError

# Pythia's definition (score 1, the headline) and the labelled thresholds of CPU-scale runs
THRESHOLDS: dict[str, float] = {"exact": 1.0, "score>=0.75": 0.75, "score>=0.5": 0.5}
SCORE_BINS = (0.0, 0.25, 0.5, 0.75, 1.0)  # the score distribution's bins ([a, b), last = 1)


def memorized_fraction(res: MemResults, threshold: float = 1.0) -> pd.DataFrame:
    """Per step: the fraction of seen rows (and of not-yet-seen rows, the baseline) with score
    >= `threshold` (1.0: memorized in Pythia's sense)."""
    mem = res.scores >= threshold
    out = []
    for i, step in enumerate(res.steps):
        seen = res.seen[i]
        out.append(
            {
                "step": int(step),
                "threshold": threshold,
                "seen_rows": int(seen.sum()),
                "unseen_rows": int((~seen).sum()),
                "memorized_seen": float(mem[i, seen].mean()) if seen.any() else np.nan,
                "memorized_unseen": float(mem[i, ~seen].mean()) if (~seen).any() else np.nan,
                "mean_score_seen": float(res.scores[i, seen].mean()) if seen.any() else np.nan,
            }
        )
    return pd.DataFrame(out)


@dataclass(frozen=True, kw_only=True)
class Predictability:
    both: int  # rows memorized by predictor and target
    predictor: int  # rows memorized by the predictor
    target: int  # rows memorized by the target
    rows: int

    @property
    def precision(self) -> float:
        """|both| / |predictor memorized| (nan when the predictor memorizes nothing)."""
        return self.both / self.predictor if self.predictor else float("nan")

    @property
    def recall(self) -> float:
        """|both| / |target memorized| (nan when the target memorizes nothing)."""
        return self.both / self.target if self.target else float("nan")


def predictability(predictor: np.ndarray, target: np.ndarray) -> Predictability:
    """Biderman et al.'s precision and recall of `predictor` memorized for `target` memorized
    (boolean arrays over the same rows)."""
    p, t = np.asarray(predictor, dtype=bool), np.asarray(target, dtype=bool)
    if p.shape != t.shape:
        raise DataError(f"predictability: predictor {p.shape} and target {t.shape} differ")
    return Predictability(
        both=int((p & t).sum()), predictor=int(p.sum()), target=int(t.sum()), rows=int(p.size)
    )


def predictability_over_steps(res: MemResults, threshold: float = 1.0) -> pd.DataFrame:
    """Each earlier checkpoint as predictor of the final one, on rows both have seen
    (memorized: score >= `threshold`)."""
    final = len(res.steps) - 1
    lines = []
    for i, step in enumerate(res.steps[:-1]):
        rows = res.seen[i] & res.seen[final]
        pr = predictability(res.scores[i, rows] >= threshold, res.scores[final, rows] >= threshold)
        lines.append(
            {
                "threshold": threshold,
                "predictor_step": int(step),
                "target_step": int(res.steps[final]),
                "rows": pr.rows,
                "both": pr.both,
                "predictor_memorized": pr.predictor,
                "target_memorized": pr.target,
                "precision": pr.precision,
                "recall": pr.recall,
            }
        )
    return pd.DataFrame(lines)


def score_distribution(res: MemResults) -> pd.DataFrame:
    """Per step: the seen rows' score quantiles and their counts in SCORE_BINS."""
    lines = []
    for i, step in enumerate(res.steps):
        scores = res.scores[i, res.seen[i]].astype(np.float64)
        line: dict[str, float | int] = {"step": int(step), "seen_rows": int(scores.size)}
        for name, q in (("median", 0.5), ("p90", 0.9), ("max", 1.0)):
            line[name] = float(np.quantile(scores, q)) if scores.size else np.nan
        for lo, hi in zip(SCORE_BINS[:-1], SCORE_BINS[1:], strict=True):
            line[f"[{lo:g},{hi:g})"] = int(np.count_nonzero((scores >= lo) & (scores < hi)))
        line["=1"] = int(np.count_nonzero(scores == 1.0))
        lines.append(line)
    return pd.DataFrame(lines)


@dataclass(frozen=True, kw_only=True)
class PoissonSpread:
    counts: np.ndarray  # memorized rows per block of training order
    mean: float
    qq: pd.DataFrame  # observed count quantile vs Poisson quantile
    ks: float  # sup |ECDF - Poisson CDF| over the integers
    p_value: float  # Monte Carlo p-value of ks under the Poisson


def poisson_spread(
    rows: np.ndarray,
    memorized: np.ndarray,
    num_rows: int,
    *,
    blocks: int = 50,
    seed: int = 0,
    draws: int = 2000,
) -> PoissonSpread:
    """Counts of memorized rows in `blocks` equal blocks of training order against a Poisson of
    the same mean (as Pythia's eda.ipynb), with Q-Q data and a KS statistic."""
    if blocks < 1:
        raise DataError(f"blocks: must be positive, got {blocks}")
    edges = np.linspace(0, num_rows, blocks + 1)
    counts = np.histogram(np.asarray(rows)[np.asarray(memorized, dtype=bool)], bins=edges)[0]
    mean = float(counts.mean())
    probs = (np.arange(blocks) + 0.5) / blocks
    qq = pd.DataFrame(
        {
            "probability": probs,
            "observed": np.sort(counts),
            "poisson": stats.poisson.ppf(probs, mean) if mean > 0 else 0.0,
        }
    )
    ks = _ks_poisson(counts, mean)
    rng = np.random.default_rng(seed)
    sims = rng.poisson(mean, size=(draws, blocks))
    null = np.array([_ks_poisson(s, s.mean()) for s in sims])
    return PoissonSpread(counts=counts, mean=mean, qq=qq, ks=ks, p_value=float((null >= ks).mean()))


def _ks_poisson(counts: np.ndarray, mean: float) -> float:
    grid = np.arange(0, int(counts.max(initial=0)) + 2)
    ecdf = np.searchsorted(np.sort(counts), grid, side="right") / max(counts.size, 1)
    cdf = stats.poisson.cdf(grid, mean) if mean > 0 else np.ones_like(grid, dtype=float)
    return float(np.abs(ecdf - cdf).max())
