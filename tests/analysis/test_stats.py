"""analysis.stats against scipy / statsmodels on known cases, and by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from analysis.stats import (
    NotTestable,
    cluster_bootstrap_ci,
    difference_test,
    holm,
    paired_test,
    spearman_test,
    stable_seed,
)
from analysis.study import (
    NOT_RECOVERED,
    NOT_TESTABLE,
    RECOVERED,
    TruthCheck,
    apply_holm,
    run_check,
)


def _mean_diff(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def _spearman_vectorized(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    ranks_a, ranks_b = sps.rankdata(a, axis=axis), sps.rankdata(b, axis=axis)
    return sps.pearsonr(ranks_a, ranks_b, axis=axis).statistic


def _mc_tolerance(p: float, draws: int) -> float:
    """Five standard errors of the difference of two Monte-Carlo p estimates."""
    return 5 * math.sqrt(2 * max(p * (1 - p), 1e-4) / draws)


# ---- scipy as the oracle ----------------------------------------------------------------


def test_spearman_effect_is_scipy_spearmanr_with_ties() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 8, size=60).astype(float)  # many ties
    y = x + rng.normal(size=60)
    result = spearman_test(x, y, unit="terms", seed=1, n_permutations=200, n_bootstrap=200)
    assert result.effect == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)
    assert (result.n, result.unit) == (60, "terms")


def test_exact_p_values_equal_scipy_permutation_test() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=5), rng.normal(size=5)
    ours = spearman_test(x, y, unit="terms", seed=2, direction="less")
    # scipy permutes both samples ((5!)**2 arrangements, each pairing 120 times): same p
    ref = sps.permutation_test(
        (x, y),
        _spearman_vectorized,
        permutation_type="pairings",
        alternative="less",
        n_resamples=np.inf,
    )
    assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-12)
    assert "exact, 120" in ours.test

    d = rng.normal(0.3, 1, size=10)
    ours = paired_test(d, unit="pairs", seed=3)
    ref = sps.permutation_test((d,), np.mean, permutation_type="samples", alternative="greater")
    assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-12)
    assert "exact, 1,024" in ours.test

    a, b = rng.normal(1, 1, size=5), rng.normal(size=6)
    ours = difference_test(a, b, unit="canaries", seed=4)
    ref = sps.permutation_test((a, b), _mean_diff, alternative="greater")
    assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-12)
    assert "exact, 462" in ours.test


def test_randomized_p_values_agree_with_scipy_within_monte_carlo_error() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=40)
    y = 0.25 * x + rng.normal(size=40)
    ours = spearman_test(x, y, unit="terms", seed=6, n_bootstrap=100)
    ref = sps.permutation_test(
        (x, y),
        _spearman_vectorized,
        permutation_type="pairings",
        alternative="greater",
        n_resamples=10_000,
        rng=7,
    )
    assert 0.005 < ref.pvalue < 0.5  # a case where the p-value is neither 0 nor 1
    assert ours.p_value == pytest.approx(ref.pvalue, abs=_mc_tolerance(ref.pvalue, 10_000))

    d = rng.normal(0.35, 1, size=30)
    ours = paired_test(d, unit="pairs", seed=8, n_bootstrap=100)
    ref = sps.permutation_test(
        (d,), np.mean, permutation_type="samples", alternative="greater", n_resamples=10_000, rng=9
    )
    assert 0.005 < ref.pvalue < 0.5
    assert ours.p_value == pytest.approx(ref.pvalue, abs=_mc_tolerance(ref.pvalue, 10_000))

    a, b = rng.normal(0.5, 1, size=20), rng.normal(size=25)
    ours = difference_test(a, b, unit="canaries", seed=10, n_bootstrap=100)
    ref = sps.permutation_test(
        (a, b), _mean_diff, alternative="greater", n_resamples=10_000, rng=11
    )
    assert 0.001 < ref.pvalue < 0.5
    assert ours.p_value == pytest.approx(ref.pvalue, abs=_mc_tolerance(ref.pvalue, 10_000))


def _assert_close_ci(ours: tuple[float, float], ref: object, width_share: float = 0.08) -> None:
    low, high = ref.confidence_interval  # type: ignore[attr-defined]
    tol = width_share * (high - low)
    assert ours[0] == pytest.approx(low, abs=tol)
    assert ours[1] == pytest.approx(high, abs=tol)


def test_bootstrap_intervals_agree_with_scipy_bootstrap() -> None:
    rng = np.random.default_rng(12)
    d = rng.exponential(1.0, size=50)
    ours = paired_test(d, unit="pairs", seed=13, n_permutations=100)
    ref = sps.bootstrap((d,), np.mean, method="percentile", n_resamples=20_000, rng=14)
    _assert_close_ci((ours.ci_low, ours.ci_high), ref)

    a, b = rng.normal(1, 2, size=30), rng.normal(0, 1, size=40)
    ours = difference_test(a, b, unit="canaries", seed=15, n_permutations=100)
    ref = sps.bootstrap((a, b), _mean_diff, method="percentile", n_resamples=20_000, rng=16)
    _assert_close_ci((ours.ci_low, ours.ci_high), ref)

    x = rng.normal(size=60)
    y = 0.5 * x + rng.normal(size=60)
    ours = spearman_test(x, y, unit="terms", seed=17, n_permutations=100)
    ref = sps.bootstrap(
        (x, y),
        _spearman_vectorized,
        paired=True,
        method="percentile",
        n_resamples=20_000,
        rng=18,
    )
    _assert_close_ci((ours.ci_low, ours.ci_high), ref)


def test_cluster_bootstrap_resamples_whole_clusters() -> None:
    rng = np.random.default_rng(19)
    cluster_effect = rng.normal(size=40)
    clusters = np.repeat(np.arange(40), 5)
    values = cluster_effect[clusters] + 0.1 * rng.normal(size=200)
    ours = cluster_bootstrap_ci(values, clusters, seed=20)
    # equal cluster sizes: the mean over rows is the mean of cluster means
    means = values.reshape(40, 5).mean(axis=1)
    ref = sps.bootstrap((means,), np.mean, method="percentile", n_resamples=20_000, rng=21)
    _assert_close_ci(ours, ref)
    # treating the 200 correlated rows as independent would give a far narrower interval
    naive = sps.bootstrap((values,), np.mean, method="percentile", n_resamples=2_000, rng=22)
    naive_low, naive_high = naive.confidence_interval
    assert ours[1] - ours[0] > 1.8 * (naive_high - naive_low)

    result = paired_test(values + 0.5, unit="clusters", clusters=clusters, seed=23)
    assert result.n == 40
    assert result.effect == pytest.approx(values.mean() + 0.5)
    ref = sps.permutation_test(
        (means + 0.5,),
        np.mean,
        permutation_type="samples",
        alternative="greater",
        n_resamples=10_000,
        rng=24,
    )
    assert result.p_value == pytest.approx(ref.pvalue, abs=_mc_tolerance(ref.pvalue, 10_000))


def test_holm_equals_statsmodels_and_skips_nan() -> None:
    p = [0.01, 0.04, 0.03, 0.2, 0.0001, 0.011, 0.5]
    ref = multipletests(p, method="holm")[1]
    np.testing.assert_allclose(holm(p), ref, rtol=0, atol=1e-15)
    with_nan = holm([0.01, math.nan, 0.04, 0.03])
    np.testing.assert_allclose(
        [with_nan[0], with_nan[2], with_nan[3]], multipletests([0.01, 0.04, 0.03], method="holm")[1]
    )
    assert math.isnan(with_nan[1])
    assert holm([]) == []


# ---- simulations ------------------------------------------------------------------------


def test_interval_covers_the_true_value_at_about_95_percent() -> None:
    rng = np.random.default_rng(25)
    covered_mean = covered_rho = 0
    reps = 300
    true_rho = 6 / math.pi * math.asin(0.5 / 2)  # Spearman's rho of a normal pair with r = 0.5
    cov = [[1.0, 0.5], [0.5, 1.0]]
    for rep in range(reps):
        d = rng.normal(0.2, 1.0, size=40)
        r = paired_test(d, unit="pairs", seed=rep, n_permutations=16, n_bootstrap=1_000)
        covered_mean += r.ci_low <= 0.2 <= r.ci_high
        xy = rng.multivariate_normal([0, 0], cov, size=80)
        s = spearman_test(
            xy[:, 0], xy[:, 1], unit="terms", seed=rep, n_permutations=16, n_bootstrap=500
        )
        covered_rho += s.ci_low <= true_rho <= s.ci_high
    assert 0.91 <= covered_mean / reps <= 0.98
    assert 0.91 <= covered_rho / reps <= 0.98


def test_p_values_are_uniform_under_the_null() -> None:
    rng = np.random.default_rng(26)
    paired, spear, diff = [], [], []
    for rep in range(300):
        paired.append(
            paired_test(
                rng.normal(size=25), unit="pairs", seed=rep, n_permutations=1_000, n_bootstrap=10
            ).p_value
        )
        spear.append(
            spearman_test(
                rng.normal(size=25),
                rng.normal(size=25),
                unit="terms",
                seed=rep,
                n_permutations=1_000,
                n_bootstrap=10,
            ).p_value
        )
        diff.append(
            difference_test(
                rng.normal(size=12),
                rng.normal(size=13),
                unit="canaries",
                seed=rep,
                n_permutations=1_000,
                n_bootstrap=10,
            ).p_value
        )
    for p in (paired, spear, diff):
        assert sps.kstest(p, "uniform").pvalue > 0.001
        assert 0.03 < np.mean(np.asarray(p) < 0.1) < 0.17  # about 10% below 0.1


# ---- what cannot be tested, and statuses -------------------------------------------------


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: spearman_test([1, 2, math.nan, 4], [1, 2, 3, 4], unit="terms", seed=0), "NaN"),
        (lambda: spearman_test([], [], unit="terms", seed=0), "x: 0 terms, at least 3"),
        (lambda: spearman_test([1, 1, 1, 1], [1, 2, 3, 4], unit="terms", seed=0), "constant"),
        (lambda: paired_test([0.0, 0.0, 0.0], unit="pairs", seed=0), "are zero"),
        (lambda: paired_test([1.0], unit="pairs", seed=0), "differences: 1 pairs, at least 2"),
        (lambda: difference_test([1.0, 1.0], [1.0], unit="canaries", seed=0), "same value"),
        (lambda: difference_test([], [1.0, 2.0], unit="canaries", seed=0), "a: 0 canaries"),
        (lambda: cluster_bootstrap_ci([1.0, 2.0], [0, 0], seed=0), "1 clusters"),
    ],
)
def test_untestable_samples_raise_with_a_reason(call: object, fragment: str) -> None:
    with pytest.raises(NotTestable, match=fragment):
        call()  # type: ignore[operator]


def test_nan_is_never_recovered() -> None:
    nan = run_check("x", lambda: spearman_test([1, math.nan, 3], [1, 2, 3], unit="terms", seed=0))
    assert nan.status == NOT_TESTABLE and "NaN" in nan.reason and math.isnan(nan.effect)
    assert not nan.passed
    strong = run_check(
        "y", lambda: paired_test(np.full(20, 1.0) + np.arange(20) * 1e-3, unit="pairs", seed=1)
    )
    checks = apply_holm([nan, strong, TruthCheck.not_testable("z", "no canaries")])
    assert [c.status for c in checks] == [NOT_TESTABLE, RECOVERED, NOT_TESTABLE]
    assert checks[1].p_adjusted == checks[1].p_value  # two untested checks do not count
    assert all(math.isnan(c.p_adjusted) for c in (checks[0], checks[2]))


def test_holm_and_the_planted_sign_decide_the_status() -> None:
    result = paired_test(np.linspace(0.5, 1.5, 12), unit="pairs", seed=2)  # exact p = 1/4096
    one = TruthCheck.from_test("a", result)
    assert one.status == RECOVERED and one.p_value == pytest.approx(1 / 4096)
    # the same p in a family of 40: 40/4096 < 0.01 still; in a family of 50 it is not
    assert apply_holm([one] * 40)[0].status == RECOVERED
    assert apply_holm([one] * 50)[0].status == NOT_RECOVERED
    # a p-value below alpha with the effect against the planted sign is not recovered
    wrong = TruthCheck.from_test("b", result, direction="less")
    assert wrong.status == NOT_RECOVERED


def test_results_are_seeded() -> None:
    rng = np.random.default_rng(27)
    x, y = rng.normal(size=50), rng.normal(size=50)
    first = spearman_test(x, y, unit="terms", seed=stable_seed("facts", "run"))
    again = spearman_test(x, y, unit="terms", seed=stable_seed("facts", "run"))
    other = spearman_test(x, y, unit="terms", seed=stable_seed("facts", "other"))
    assert first == again
    assert (first.ci_low, first.p_value) != (other.ci_low, other.p_value)
    assert stable_seed("a", "b") != stable_seed("ab")
