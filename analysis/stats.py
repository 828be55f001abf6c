"""The statistics behind every planted-truth check: bootstrap intervals, permutation tests, Holm.

Pure numpy (scipy for ranks). Every test resamples the *independent unit* (terms, canaries,
passages, clusters, probe pairs ...), never the rows inside a unit:

- the 95% interval is a percentile bootstrap over units (a cluster bootstrap when a unit holds
  several rows: whole clusters are drawn with replacement);
- the p-value is a one-sided permutation test in the planted direction: labels are permuted
  (Spearman, two groups) or signs flipped (paired differences), exactly over every arrangement
  when there are at most `n_permutations` of them, else by `n_permutations` random draws with
  the +1 correction p = (1 + #{null >= observed}) / (1 + draws), as scipy.stats.permutation_test;
- `holm` adjusts a report's p-values for the number of checks (Holm 1979, step-down).

Everything is seeded from an explicit integer (a numpy Generator per test), so a re-run gives
the same numbers to the bit. A sample that cannot be tested (empty, NaN, constant) raises
`NotTestable` with a one-line reason; the caller turns it into a "not testable" check.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "N_BOOTSTRAP",
    "N_PERMUTATIONS",
    "NotTestable",
    "TestResult",
    "cluster_bootstrap_ci",
    "difference_test",
    "holm",
    "paired_test",
    "spearman_test",
    "stable_seed",
]

N_PERMUTATIONS = 10_000  # permutation / sign-flip draws when exact enumeration is larger
N_BOOTSTRAP = 4_000  # bootstrap resamples for a 95% percentile interval
_CHUNK = 1_000  # resamples per vectorized block (bounds memory to CHUNK x n floats)

Array = np.ndarray
Statistic = Callable[[Array], Array]  # (draws, n) -> (draws,)


class NotTestable(Exception):
    """A sample that admits no test (empty, NaN, constant); the message says why."""


@dataclass(frozen=True, kw_only=True)
class TestResult:
    """One test's outcome, in the units of the effect it measures."""

    __test__ = False  # not a pytest class

    effect: float  # natural units (Spearman rho, nats/token, accuracy points, pct difference)
    ci_low: float  # 95% bootstrap interval over the independent unit
    ci_high: float
    p_value: float  # one-sided, in the planted direction (unadjusted)
    n: int  # number of independent units
    unit: str  # what was resampled: "terms", "canaries", "passages", "clusters", "pairs", ...
    test: str  # e.g. "Spearman, permutation (10,000)"


def stable_seed(*parts: str) -> int:
    """A seed that depends only on the given strings (unlike `hash`, the same in every process)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    boot, perm = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(boot), np.random.default_rng(perm)


def _sample(
    values: Sequence[float] | Array, what: str, *, minimum: int, unit: str = "values"
) -> Array:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size < minimum:
        raise NotTestable(f"{what}: {arr.size} {unit}, at least {minimum} needed")
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise NotTestable(f"{what}: {bad} of {arr.size} values are NaN or infinite")
    return arr


def _check_direction(direction: str) -> float:
    if direction not in ("greater", "less"):
        raise ValueError(f"direction must be 'greater' or 'less', not {direction!r}")
    return 1.0 if direction == "greater" else -1.0


def _p_value(null: Array, observed: float, sign: float, *, exact: bool) -> float:
    """One-sided p from a null distribution (scipy's tolerance for float ties)."""
    gamma = abs(observed) * 100 * np.finfo(np.float64).eps
    hits = int(np.count_nonzero(sign * null >= sign * observed - gamma))
    if exact:
        return hits / null.size
    return (hits + 1) / (null.size + 1)


def _percentile_ci(boot: Array) -> tuple[float, float]:
    finite = boot[np.isfinite(boot)]
    if finite.size == 0:
        return math.nan, math.nan
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def _bootstrap(
    data: Array, statistic: Statistic, rng: np.random.Generator, n_boot: int
) -> tuple[float, float]:
    """Percentile interval of `statistic` over resamples of the rows of `data` (units)."""
    out = np.empty(n_boot)
    for start in range(0, n_boot, _CHUNK):
        size = min(_CHUNK, n_boot - start)
        idx = rng.integers(0, data.shape[0], size=(size, data.shape[0]))
        out[start : start + size] = statistic(data[idx])
    return _percentile_ci(out)


def _draw_count(n_perm: int, total: int) -> str:
    return f"exact, {total:,}" if total <= n_perm else f"{n_perm:,}"


# ---- Spearman -----------------------------------------------------------------------------


def _pearson_rows(a: Array, b: Array) -> Array:
    """Pearson correlation of each row of a with the same row of b; NaN for a constant row."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(axis=-1) / np.where(denom > 0, denom, 1), np.nan)


def _spearman_rows(pairs: Array) -> Array:
    """pairs: (draws, n, 2) -> Spearman rho per draw (average ranks for ties)."""
    return _pearson_rows(rankdata(pairs[..., 0], axis=-1), rankdata(pairs[..., 1], axis=-1))


def spearman_test(
    x: Sequence[float] | Array,
    y: Sequence[float] | Array,
    *,
    unit: str,
    seed: int,
    direction: str = "greater",
    labels: tuple[str, str] = ("x", "y"),
    n_permutations: int = N_PERMUTATIONS,
    n_bootstrap: int = N_BOOTSTRAP,
) -> TestResult:
    """Spearman's rho of paired observations (one pair per unit), permutation p, bootstrap CI.

    `labels` name x and y in the reason of a `NotTestable` ("accuracy is constant ...").
    """
    sign = _check_direction(direction)
    xs = _sample(x, labels[0], minimum=3, unit=unit)
    ys = _sample(y, labels[1], minimum=3, unit=unit)
    if xs.size != ys.size:
        raise ValueError(f"x and y differ in length ({xs.size} != {ys.size})")
    for name, arr in zip(labels, (xs, ys), strict=True):
        if np.all(arr == arr[0]):
            raise NotTestable(f"{name} is constant ({arr[0]:g}) over all {arr.size} {unit}")
    rx, ry = rankdata(xs), rankdata(ys)
    effect = float(_pearson_rows(rx, ry))
    boot_rng, perm_rng = _rngs(seed)
    total = math.factorial(xs.size) if xs.size <= 12 else n_permutations + 1
    if total <= n_permutations:
        perms = np.array(list(itertools.permutations(range(xs.size))))
        null = _pearson_rows(rx, ry[perms])
    else:
        null = _chunked(
            lambda k: _pearson_rows(rx, perm_rng.permuted(np.tile(ry, (k, 1)), axis=1)),
            n_permutations,
        )
    p = _p_value(null, effect, sign, exact=total <= n_permutations)
    low, high = _bootstrap(np.stack([xs, ys], axis=1), _spearman_rows, boot_rng, n_bootstrap)
    return TestResult(
        effect=effect,
        ci_low=low,
        ci_high=high,
        p_value=p,
        n=int(xs.size),
        unit=unit,
        test=f"Spearman, permutation ({_draw_count(n_permutations, total)})",
    )


def _chunked(draw: Callable[[int], Array], total: int) -> Array:
    return np.concatenate([draw(min(_CHUNK, total - s)) for s in range(0, total, _CHUNK)])


# ---- paired differences (sign flip) -------------------------------------------------------


def _sign_null(sums: Array, n_perm: int, rng: np.random.Generator) -> tuple[Array, bool]:
    """sum(sign * sums) over every sign vector (exact) when 2**k <= n_perm, else n_perm draws."""
    k = sums.size
    if k <= 30 and 2**k <= n_perm:
        bits = (np.arange(2**k)[:, None] >> np.arange(k)) & 1
        return (1.0 - 2.0 * bits) @ sums, True
    signs = np.array([-1.0, 1.0])
    return _chunked(lambda m: rng.choice(signs, size=(m, k)) @ sums, n_perm), False


def _cluster_sums(
    d: Array, clusters: Sequence[object] | Array | None, unit: str
) -> tuple[Array, Array]:
    """Per-unit sums and sizes: one unit per value, or one per cluster label."""
    if clusters is None:
        return d, np.ones_like(d)
    labels = np.asarray(clusters)
    if labels.shape != d.shape:
        raise ValueError(f"clusters has {labels.size} labels for {d.size} values")
    _, inverse = np.unique(labels, return_inverse=True)
    sums = np.bincount(inverse, weights=d)
    sizes = np.bincount(inverse).astype(np.float64)
    if sums.size < 2:
        raise NotTestable(f"{sums.size} {unit}, at least 2 needed")
    return sums, sizes


def _ratio_rows(data: Array) -> Array:
    """(draws, k, 2) of (sum, size) per drawn cluster -> mean over the drawn rows."""
    return data[..., 0].sum(axis=-1) / data[..., 1].sum(axis=-1)


def paired_test(
    diffs: Sequence[float] | Array,
    *,
    unit: str,
    seed: int,
    direction: str = "greater",
    clusters: Sequence[object] | Array | None = None,
    n_permutations: int = N_PERMUTATIONS,
    n_bootstrap: int = N_BOOTSTRAP,
) -> TestResult:
    """Mean of paired differences (treatment - control, one per unit), sign-flip p, bootstrap CI.

    With `clusters` (one label per difference), the differences of one cluster are one unit:
    signs are flipped per cluster, the interval is a cluster bootstrap, `n` counts clusters and
    the effect is the mean over all differences.
    """
    sign = _check_direction(direction)
    d = _sample(diffs, "paired differences", minimum=2, unit=unit)
    if np.all(d == 0):
        raise NotTestable(f"all {d.size} paired differences over {unit} are zero")
    boot_rng, perm_rng = _rngs(seed)
    sums, sizes = _cluster_sums(d, clusters, unit)
    null, exact = _sign_null(sums, n_permutations, perm_rng)
    null /= d.size
    effect = float(d.mean())
    p = _p_value(null, effect, sign, exact=exact)
    low, high = _bootstrap(np.stack([sums, sizes], axis=1), _ratio_rows, boot_rng, n_bootstrap)
    draws = f"exact, {null.size:,}" if exact else f"{n_permutations:,}"
    kind = "cluster sign-flip" if clusters is not None else "paired sign-flip"
    return TestResult(
        effect=effect,
        ci_low=low,
        ci_high=high,
        p_value=p,
        n=int(sums.size),
        unit=unit,
        test=f"mean difference, {kind} permutation ({draws})",
    )


def cluster_bootstrap_ci(
    values: Sequence[float] | Array,
    clusters: Sequence[object] | Array,
    *,
    seed: int,
    n_bootstrap: int = N_BOOTSTRAP,
) -> tuple[float, float]:
    """95% percentile interval of the mean of `values`, drawing whole clusters with replacement."""
    v = _sample(values, "values", minimum=2)
    sums, sizes = _cluster_sums(v, clusters, "clusters")
    rng, _ = _rngs(seed)
    return _bootstrap(np.stack([sums, sizes], axis=1), _ratio_rows, rng, n_bootstrap)


# ---- two independent groups ---------------------------------------------------------------


def _label_null(
    pooled: Array, n_a: int, n_perm: int, rng: np.random.Generator
) -> tuple[Array, bool]:
    """mean(first n_a) - mean(rest) over every split (exact) or n_perm random permutations."""
    n = pooled.size
    total = math.comb(n, n_a)
    if total <= n_perm:
        in_a = np.zeros((total, n), dtype=bool)
        for i, combo in enumerate(itertools.combinations(range(n), n_a)):
            in_a[i, list(combo)] = True
        return _split_means(in_a, pooled, n_a), True

    def draw(m: int) -> Array:
        order = rng.permuted(np.tile(np.arange(n), (m, 1)), axis=1)
        return _split_means(order < n_a, pooled, n_a)

    return _chunked(draw, n_perm), False


def _split_means(in_a: Array, pooled: Array, n_a: int) -> Array:
    sum_a = in_a.astype(np.float64) @ pooled
    return sum_a / n_a - (pooled.sum() - sum_a) / (pooled.size - n_a)


def difference_test(
    a: Sequence[float] | Array,
    b: Sequence[float] | Array,
    *,
    unit: str,
    seed: int,
    direction: str = "greater",
    labels: tuple[str, str] = ("a", "b"),
    n_permutations: int = N_PERMUTATIONS,
    n_bootstrap: int = N_BOOTSTRAP,
) -> TestResult:
    """mean(a) - mean(b) over independent units: label-permutation p, two-sample bootstrap CI."""
    sign = _check_direction(direction)
    xa = _sample(a, labels[0], minimum=1, unit=unit)
    xb = _sample(b, labels[1], minimum=1, unit=unit)
    pooled = np.concatenate([xa, xb])
    if pooled.size < 3:
        raise NotTestable(f"{pooled.size} {unit} in both groups, at least 3 needed")
    if np.all(pooled == pooled[0]):
        raise NotTestable(f"all {pooled.size} {unit} have the same value ({pooled[0]:g})")
    boot_rng, perm_rng = _rngs(seed)
    effect = float(xa.mean() - xb.mean())
    null, exact = _label_null(pooled, xa.size, n_permutations, perm_rng)
    p = _p_value(null, effect, sign, exact=exact)
    boot = np.empty(n_bootstrap)
    for start in range(0, n_bootstrap, _CHUNK):
        m = min(_CHUNK, n_bootstrap - start)
        mean_a = xa[boot_rng.integers(0, xa.size, size=(m, xa.size))].mean(axis=1)
        mean_b = xb[boot_rng.integers(0, xb.size, size=(m, xb.size))].mean(axis=1)
        boot[start : start + m] = mean_a - mean_b
    low, high = _percentile_ci(boot)
    draws = f"exact, {null.size:,}" if exact else f"{n_permutations:,}"
    return TestResult(
        effect=effect,
        ci_low=low,
        ci_high=high,
        p_value=p,
        n=int(pooled.size),
        unit=unit,
        test=f"difference of means, label permutation ({draws})",
    )


# ---- multiple testing ---------------------------------------------------------------------


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values; NaN entries (untested) stay NaN and are not counted."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(np.isfinite(p))
    m = tested.size
    order = tested[np.argsort(p[tested], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p[i])))
        out[i] = running
    return [float(v) for v in out]
