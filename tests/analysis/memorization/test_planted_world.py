"""The boilerplate and timing checks of the memorization study, on tables with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.memorization.boilerplate import (
    boilerplate_checks,
    earlier_step,
    per_passage,
    timing_check,
)
from analysis.study import RunSpec

TRUTH = {
    "canaries": [{"timing": None}] * 2
    + [{"timing": "first_quarter"}] * 8
    + [{"timing": "last_quarter"}] * 8,
    "timing": {"trained_rows": 1000},
}


def spec(name: str, n_params: int) -> RunSpec:
    return RunSpec(name=name, path=Path(name), model=name, n_params=n_params, variant="standard")


def canary_table(late_gain: float) -> pd.DataFrame:
    """Two trained occurrences per timing canary (+ one untrained, + graded canaries)."""
    rng = np.random.default_rng(0)
    lines = []
    for c in range(18):
        phase = TRUTH["canaries"][c]["timing"]
        for row in (10 * c, 10 * c + 1, 5000):  # row 5000 is past the trained rows
            gain = late_gain if phase == "last_quarter" else 0.0
            lines.append({"run": "m", "canary": c, "row": row, "target_loglik": -3 + gain})
    table = pd.DataFrame(lines)
    table["target_loglik"] += rng.normal(0, 0.05, len(table))
    return table


def test_timing_check_recovers_forgetting_and_counts_trained_exposures() -> None:
    check = timing_check(canary_table(1.0), TRUTH, "m")
    assert check.n == 16 and check.unit == "canaries" and check.direction == "greater"
    assert 0.9 < check.effect < 1.1 and check.ci_low > 0.8
    assert check.p_value < 1e-3 and check.status == "recovered"
    assert "8 late and 8 early canaries with 2 trained occurrences each" in check.detail
    null = timing_check(canary_table(0.0), TRUTH, "m")
    assert null.status == "not recovered" and null.p_value > 0.01


def test_timing_check_without_timing_is_not_testable() -> None:
    check = timing_check(canary_table(1.0), {"canaries": TRUTH["canaries"]}, "m")
    assert check.status == "not testable" and "no timing canaries" in check.reason


def passages(step: int, run: str, slope: float) -> pd.DataFrame:
    copies = np.repeat([1, 4, 16, 64, 256], 4)
    score = np.clip(slope * np.log2(copies) / 8 + 0.01 * np.arange(copies.size), 0, 1)
    return pd.DataFrame(
        {
            "run": run,
            "model": run,
            "step": step,
            "passage": np.arange(copies.size),
            "copies": copies,
            "score": score,
            "memorized": score >= 1.0,
            "target_loglik": -score,
        }
    )


def test_boilerplate_checks_duplication_steps_and_size() -> None:
    table = pd.concat(
        [
            passages(128, "small", 0.2),
            passages(512, "small", 0.5),
            passages(128, "large", 0.4),
            passages(512, "large", 1.0),
        ]
    )
    checks = boilerplate_checks(table, [spec("large", 10), spec("small", 1)])
    assert [c.name.split(":")[1].split("(")[0].strip() for c in checks] == [
        "memorization rises with duplication",
        "memorization rises with steps",
        "memorization rises with model size",
    ]
    assert all(c.status == "recovered" and c.n == 20 for c in checks)
    assert checks[0].effect > 0.9  # Spearman of copies and score
    assert "step 128 to 512" in checks[1].name
    large, small = passages(512, "large", 1.0)["score"], passages(512, "small", 0.5)["score"]
    assert np.isclose(checks[2].effect, (large - small).mean())


def test_per_passage_means_windows_and_earlier_step() -> None:
    scored = pd.DataFrame(
        {
            "run": "r",
            "model": "m",
            "step": 8,
            "passage": [0, 0, 1],
            "copies": [2, 2, 4],
            "score": [1.0, 0.5, 0.25],
            "memorized": [True, False, False],
        }
    )
    per = per_passage(scored)
    assert per["score"].tolist() == [0.75, 0.25] and per["memorized"].tolist() == [0.5, 0.0]
    assert per["windows"].tolist() == [2, 1]
    assert earlier_step([0, 1, 2, 4, 64, 128, 192, 256, 512]) == 128
