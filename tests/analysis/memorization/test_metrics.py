"""Definitions on hand-made cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.memorization.metrics import (
    memorized_fraction,
    poisson_spread,
    predictability,
    predictability_over_steps,
)
from analysis.memorization.profiles import cohorts, estimate, panel
from analysis.memorization.results import MemResults
from analysis.memorization.sample import parse_rows, shard, stratified_rows


def test_predictability_definitions() -> None:
    # predictor memorizes rows 0-3, target memorizes rows 2-7: both = {2, 3}
    predictor = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=bool)
    target = np.array([0, 0, 1, 1, 1, 1, 1, 1, 0, 0], dtype=bool)
    p = predictability(predictor, target)
    assert (p.both, p.predictor, p.target, p.rows) == (2, 4, 6, 10)
    assert p.precision == 2 / 4  # |both| / |predictor memorized|
    assert p.recall == 2 / 6  # |both| / |target memorized| (not swapped as in mem_graph.py)
    assert np.isnan(predictability(np.zeros(3, bool), np.ones(3, bool)).precision)
    with pytest.raises(ValueError, match="differ"):
        predictability(np.zeros(2, bool), np.zeros(3, bool))


def _results(scores: np.ndarray, steps: list[int], rows: np.ndarray, b: int) -> MemResults:
    seen = np.stack([rows < s * b for s in steps])
    z = np.zeros_like(scores, dtype=np.float32)
    return MemResults(
        steps=np.array(steps),
        rows=rows,
        scores=scores.astype(np.float32),
        seen=seen,
        loglik=z,
        token_acc=z,
        attrs={"batch_size": b},
    )


def test_fraction_and_predictability_over_steps() -> None:
    rows = np.arange(8)
    scores = np.array(
        [[0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0], [1, 0, 1, 1, 0.5, 0, 0, 0]],
        dtype=float,
    )
    res = _results(scores, [0, 1, 3], rows, b=2)
    frac = memorized_fraction(res)
    assert frac["seen_rows"].tolist() == [0, 2, 6]
    assert frac["memorized_seen"].tolist()[1:] == [1.0, 3 / 6]
    assert frac["memorized_unseen"].tolist() == [0.0, 0.0, 0.0]
    pred = predictability_over_steps(res)
    row = pred[pred["predictor_step"] == 1].iloc[0]  # rows 0-1 seen by both
    assert (row["both"], row["precision"], row["recall"]) == (1, 0.5, 1.0)


def test_poisson_spread_on_uniform_and_clustered() -> None:
    rng = np.random.default_rng(1)
    rows = np.arange(10_000)
    uniform = rng.random(rows.size) < 0.05
    clustered = np.zeros(rows.size, dtype=bool)
    clustered[:500] = True
    u = poisson_spread(rows, uniform, rows.size, blocks=50, draws=500)
    c = poisson_spread(rows, clustered, rows.size, blocks=50, draws=500)
    assert u.counts.sum() == uniform.sum() and u.mean == uniform.sum() / 50
    assert u.ks < 0.2 and u.p_value > 0.05
    assert c.ks > 0.8 and c.p_value < 0.01
    assert list(u.qq.columns) == ["probability", "observed", "poisson"]


def test_stratified_rows_one_per_block() -> None:
    r = stratified_rows(1000, 10, seed=3)
    assert len(r) == 10 and (np.diff(r) > 0).all()
    assert ((r // 100) == np.arange(10)).all()
    assert np.array_equal(r, stratified_rows(1000, 10, seed=3))
    assert np.array_equal(stratified_rows(5, None), np.arange(5))
    with pytest.raises(ValueError, match="--rows"):
        parse_rows("0")
    assert parse_rows("all") is None


def test_shard() -> None:
    parts = [shard(10, r, 3) for r in range(3)]
    assert [(s.start, s.stop) for s in parts] == [(0, 4), (4, 7), (7, 10)]


def test_cohorts_first_checkpoint_at_or_after_training() -> None:
    # B = 4: row r is trained by update r // 4 + 1; checkpoints at steps 0, 2, 4
    g = cohorts(np.array([0, 3, 4, 7, 8, 15, 16]), np.array([0, 2, 4]), 4)
    assert g[:6].tolist() == [1, 1, 1, 1, 2, 2] and np.isnan(g[6])


def test_profiles_recover_a_planted_effect() -> None:
    """Outcome = row effect + common trend + 0.5 when first trained + 0.2 afterwards."""
    rng = np.random.default_rng(0)
    steps, b = np.array([0, 2, 4, 6, 8]), 4
    rows = np.arange(0, 60)  # rows 32.. are never trained within 8 steps: controls
    g = cohorts(rows, steps, b)
    y = rng.normal(size=(1, rows.size)) + 0.3 * np.arange(5)[:, None]
    y = y + rng.normal(scale=0.05, size=(5, rows.size))
    t = np.arange(5)[:, None]
    treated = ~np.isnan(g)[None, :]
    y += np.where(treated & (t == g), 0.5, 0) + np.where(treated & (t > g), 0.2, 0)
    prof = estimate(panel(y, rows, steps, b), steps)
    ev = prof.event.set_index("event")
    assert abs(ev.loc[0, "att"] - 0.5) < 0.06
    assert all(abs(ev.loc[e, "att"] - 0.2) < 0.08 for e in (1, 2, 3))
    assert all(abs(ev.loc[e, "att"]) < 0.08 for e in (-1, -2))
    assert (ev["lower"] <= ev["att"]).all() and (ev["att"] <= ev["upper"]).all()
    assert ev.loc[0, "lower"] > 0.3
    assert (prof.treated_rows, prof.control_rows) == (32, 28)
    assert set(prof.cohort["cohort_step"]) == {2, 4, 6, 8}
    with pytest.raises(ValueError, match="never-treated"):
        estimate(panel(y[:, :32], rows[:32], steps, b), steps)
