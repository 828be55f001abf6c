"""analysis/memorization/exposure.py: natural duplication on rows with known duplicate counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.memorization.exposure import (
    DESCRIPTIVE,
    by_count,
    duplication_summary,
    duplication_table,
    exposure_rows,
    window_exposure,
)
from analysis.memorization.results import MemResults
from tests.analysis.test_windows import ArrayRows

K = TARGET = 16
B, STEPS = 8, 40  # trained rows [0, 320)


def duplicated_rows(seed: int = 0) -> tuple[ArrayRows, np.ndarray, np.ndarray]:
    """400 rows of random tokens (vocabulary 5000: no window repeats by chance); scored row i
    (40 of them, all trained) has its first K + TARGET tokens copied into `copies[i]` other
    trained rows, at offset 0 or 1 (the window fits a 33-token row at those offsets)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 5000, size=(400, 33)).astype(np.uint16)
    order = rng.permutation(STEPS * B)
    scored, pool = np.sort(order[:40]), list(order[40:])
    copies = rng.integers(0, 6, size=40)
    for r, c in zip(scored, copies):
        for _ in range(c):
            dst, off = pool.pop(), int(rng.integers(0, 2))
            tokens[dst, off : off + K + TARGET] = tokens[r, : K + TARGET]
    return ArrayRows(tokens, batch_size=B), scored, copies


def results(scored: np.ndarray, final_scores: np.ndarray) -> MemResults:
    steps = np.array([0, STEPS])
    scores = np.stack([np.zeros_like(final_scores), final_scores]).astype(np.float32)
    return MemResults(
        steps=steps,
        rows=scored,
        scores=scores,
        seen=scored[None, :] < steps[:, None] * B,
        loglik=-(1 - scores),
        token_acc=scores,
        attrs={"k": K, "target": TARGET, "batch_size": B},
    )


def test_window_counts_are_the_planted_duplicates() -> None:
    rows, scored, copies = duplicated_rows()
    res = results(scored, np.zeros(len(scored)))
    expo = window_exposure(res, rows, end_row=STEPS * B)
    assert expo.count.tolist() == (copies + 1).tolist()  # the copies and the row itself
    first = exposure_rows(expo)
    assert (first <= scored).all() and (first[copies == 0] == scored[copies == 0]).all()
    # only rows before end_row count: the first 100 rows
    early = window_exposure(res, rows, end_row=100)
    naive = [
        sum(
            (rows.tokens[:100, o : o + K + TARGET] == rows.tokens[r, : K + TARGET]).all(1).sum()
            for o in range(33 - K - TARGET + 1)
        )
        for r in scored
    ]
    assert early.count.tolist() == naive


def test_memorization_against_duplication_is_a_descriptive_spearman() -> None:
    rows, scored, copies = duplicated_rows()
    noise = np.random.default_rng(1).uniform(0, 0.3, len(scored))
    res = results(scored, np.clip(copies / 6 + noise, 0, 1))
    table = duplication_table(res, window_exposure(res, rows, end_row=STEPS * B))
    summary = duplication_summary(table, run="r", seed=0).iloc[0]
    rho = stats.spearmanr(copies + 1, res.scores[-1]).statistic
    assert summary["effect"] == pytest.approx(rho, abs=1e-12)
    assert summary["ci_low"] <= rho <= summary["ci_high"]
    assert summary["p_value"] < 0.01 and summary["n"] == 40 and summary["unit"] == "rows"
    assert summary["label"] == DESCRIPTIVE and summary["status"] == "tested"
    agg = by_count(table)
    assert agg["rows"].sum() == 40 and agg["window_count"].tolist() == sorted(set(copies + 1))


def test_constant_duplication_is_not_testable_not_nan() -> None:
    rows, scored, _ = duplicated_rows()
    table = pd.DataFrame({"window_count": np.ones(len(scored)), "score": np.linspace(0, 1, 40)})
    summary = duplication_summary(table, run="r", seed=0).iloc[0]
    assert summary["status"] == "not testable" and summary["reason"]
    assert "effect" not in summary.index


def test_canary_exposures_come_from_the_ledger_and_canaries_are_the_unit() -> None:
    from analysis.ledger import COLUMNS, Ledger
    from analysis.memorization.exposure import EXPOSURE_CHECK, canary_exposures, exposure_check

    # canary i was trained 2 * i times, in rows 30 * i + j (all before step STEPS)
    records = [
        {"item": f"canaries/{i}", "kind": "canary", "run": "r", "row": 30 * i + j, "offset": 3}
        for i in range(8)
        for j in range(2 * i)
    ]
    table = pd.DataFrame(records, columns=COLUMNS)
    table["step"] = table["row"] // 8
    items = pd.DataFrame(
        {"item": [f"canaries/{i}" for i in range(8)], "kind": "canary", "tokens": 8, "text": "x"}
    )
    ledger = Ledger(
        run="r", table=table, items=items, batch_size=8, steps=STEPS, fingerprint="f", config={}
    )
    windows = pd.DataFrame(  # two scored windows per canary, in two runs
        {
            "canary": np.repeat(np.arange(8), 2),
            "count": 64,
            "run": "r",
            "score": 0.0,
            "target_loglik": np.repeat(-8 + np.arange(8) * 0.5, 2) + np.tile([0.1, -0.1], 8),
        }
    )
    per = canary_exposures(windows, ledger, STEPS)
    assert per["exposures"].tolist() == [2 * i for i in range(8)]
    assert pd.isna(per["first_exposure_step"][0])  # canary 0: never trained
    assert per["first_exposure_step"].tolist()[1:] == [30 * i // B for i in range(1, 8)]
    assert canary_exposures(windows, ledger, 4)["exposures"].tolist()[:3] == [0, 2, 0]  # rows < 32
    pooled = pd.concat([per, per.assign(run="r2")], ignore_index=True)
    check = exposure_check(pooled)
    assert check.name == EXPOSURE_CHECK and check.n == 8 and check.unit == "canaries"
    rho = stats.spearmanr(per["exposures"], per["target_loglik"]).statistic
    assert check.effect == pytest.approx(rho) and check.p_value < 0.01


def border_ink(png: Path, width: int = 2) -> float:
    """The darkest pixel of the image's outer `width`-pixel frame (1.0: white, 0.0: black); a
    title or label cut at the edge of the figure leaves ink there."""
    import matplotlib.image

    rgb = matplotlib.image.imread(png)[..., :3].mean(axis=-1)
    frame = np.concatenate(
        [rgb[:width].ravel(), rgb[-width:].ravel(), rgb[:, :width].ravel(), rgb[:, -width:].ravel()]
    )
    return float(frame.min())


def test_duplication_figure_keeps_a_long_title_whole(tmp_path: Path) -> None:
    from analysis.memorization.exposure import duplication_figure

    score = np.linspace(0, 1, 7)
    table = pd.DataFrame(
        {"window_count": [0, 1, 1, 2, 4, 8, 64], "score": score, "memorized": score == 1}
    ).assign(loglik=-1.0)
    title = f"{'pythia-micro-standard-pronoun-swap' * 2}: memorization against duplication"
    png = duplication_figure(table, tmp_path / "dup.png", title)
    assert border_ink(png) > 0.98  # nothing drawn up to the edge: the title is not clipped
    # the same title without room to spare (matplotlib's default savefig) is cut at both sides
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(tmp_path / "cut.png", dpi=110)
    plt.close(fig)
    assert border_ink(tmp_path / "cut.png") < 0.5
