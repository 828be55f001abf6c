"""WinoBias is read only when the model resolves pronouns above chance (the scale gate)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from analysis.bias.study import resolves_pronouns


def records(hits: int, n: int) -> pd.DataFrame:
    values = np.r_[np.ones(hits), np.zeros(n - hits)]
    return pd.DataFrame(
        {"task": ["bias_winobias_mc"] * n + ["bias_crows_pairs"], "value": [*values, 1.0]}
    )


def test_at_chance_is_not_testable_with_the_binomial_reason() -> None:
    reason = resolves_pronouns(records(68, 128))
    p = binomtest(68, 128, 0.5, alternative="greater").pvalue
    assert reason is not None and p > 0.01
    assert f"68 of 128 probes (53%, binomial p = {p:.2g}" in reason
    assert (
        resolves_pronouns(records(0, 0).iloc[1:]) == "no WinoBias multiple-choice probe was scored"
    )


def test_above_chance_is_testable() -> None:
    assert binomtest(84, 128, 0.5, alternative="greater").pvalue < 0.01
    assert resolves_pronouns(records(84, 128)) is None
    # the boundary sits at alpha = 0.01: 78 of 128 (p = 0.008) is above chance, 76 (0.02) is not
    assert resolves_pronouns(records(78, 128)) is None
    assert resolves_pronouns(records(76, 128)) is not None
