"""Memorization profiles (Lesci et al. 2024, "Causal Estimation of Memorisation Profiles").

A panel of rows x checkpoints: a row's cohort g is the first checkpoint at or after the update
that trains on it (row r is trained by update r // B + 1); rows that training never reaches
(past the last checkpoint, e.g. the held-out rows past steps x B) are the never-treated
control. Outcome = the row's mean token log-likelihood at each checkpoint. ATT(g, t) comes from
the `differences` package (`ATTgt`, never-treated control, varying base period), aggregated by
event time e = t - g (instantaneous memorization at e = 0, persistent for e > 0) and by cohort,
with pointwise confidence bands. Time is the checkpoint's index (0, 1, ...), reported with its
step.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.memorization.results import MemResults
from suite_core import DataError

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Profiles:
    att_gt: pd.DataFrame  # cohort, time, cohort_step, step, att, std_error, lower, upper
    event: pd.DataFrame  # event (t - g in checkpoints), att, std_error, lower, upper
    cohort: pd.DataFrame  # cohort, cohort_step, att, std_error, lower, upper
    treated_rows: int
    control_rows: int


def cohorts(rows: np.ndarray, steps: np.ndarray, batch_size: int) -> np.ndarray:
    """Index of the first checkpoint at or after each row's training update; NaN if none."""
    update = np.asarray(rows) // batch_size + 1
    steps = np.asarray(steps)
    idx = np.searchsorted(steps, update, side="left").astype(float)
    idx[idx >= len(steps)] = np.nan
    return idx


def panel(
    outcome: np.ndarray,
    rows: np.ndarray,
    steps: np.ndarray,
    batch_size: int,
    exposure_rows: np.ndarray | None = None,
) -> pd.DataFrame:
    """Long panel (entity=row, time=checkpoint index) with `cohort` and outcome `y`; the cohort
    starts at `exposure_rows` (the first trained row holding each row's text, from
    `analysis.memorization.exposure`) when given, else at the row itself."""
    s, r = outcome.shape
    g = cohorts(rows if exposure_rows is None else exposure_rows, steps, batch_size)
    return pd.DataFrame(
        {
            "entity": np.tile(np.asarray(rows), s),
            "time": np.repeat(np.arange(s), r),
            "cohort": np.tile(g, s),
            "y": np.asarray(outcome, dtype=np.float64).ravel(),
        }
    ).set_index(["entity", "time"])


def estimate(data: pd.DataFrame, steps: np.ndarray, *, alpha: float = 0.05) -> Profiles:
    """ATT(g, t) with never-treated controls, and its event-time and cohort aggregations."""
    from differences import ATTgt

    g = data["cohort"]
    if g.isna().all() or g.notna().all():
        raise DataError(
            "profiles: field 'rows': need both treated rows and never-treated "
            "rows (held-out rows past the last step; prepare --num-samples)"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        att = ATTgt(data=data, cohort_column="cohort")
        att.fit(formula="y", control_group="never_treated", alpha=alpha, progress_bar=False)
        gt = _flat(att.results())
        ev = _flat(att.aggregate("event", alpha=alpha))
        co = _flat(att.aggregate("cohort", alpha=alpha))
    steps = np.asarray(steps)
    gt = gt.rename(columns={"base_period": "base"})
    gt["cohort_step"] = steps[gt["cohort"].astype(int)]
    gt["step"] = steps[gt["time"].astype(int)]
    ev = ev.rename(columns={"relative_period": "event"})
    co["cohort_step"] = steps[co["cohort"].astype(int)]
    ent = data.groupby(level="entity")["cohort"].first()
    return Profiles(
        att_gt=gt,
        event=ev,
        cohort=co,
        treated_rows=int(ent.notna().sum()),
        control_rows=int(ent.isna().sum()),
    )


def profiles(
    res: MemResults, *, alpha: float = 0.05, exposure_rows: np.ndarray | None = None
) -> Profiles:
    """Memorization profiles of a results file's rows (outcome: mean log-likelihood), cohorts
    by first exposure when `exposure_rows` is given."""
    data = panel(res.loglik, res.rows, res.steps, res.batch_size, exposure_rows)
    return estimate(data, res.steps, alpha=alpha)


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """`differences`' MultiIndex columns -> att, std_error, lower, upper; index -> columns."""
    out = frame.copy()
    out.columns = [c[-1] if isinstance(c, tuple) else c for c in out.columns]
    out = out.rename(columns={"ATT": "att"}).reset_index()
    keep = [c for c in out.columns if c not in ("zero_not_in_cband", "index")]
    return out[keep]
