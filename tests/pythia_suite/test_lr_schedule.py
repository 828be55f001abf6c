"""The Pythia recipe's LR schedule: GPT-NeoX v1.0's `AnnealingLR` (cosine), pinned at chosen steps.

`v1_reference` is a direct transcription of v1.0's `megatron/learning_rates.py` `get_lr` for
`decay_style == "cosine"` (written here independently of `pythia_suite.training.optim`).
"""

from __future__ import annotations

import math

import pytest

from pythia_suite.training.optim import OptimConfig, lr_for_update

PEAK, MIN = 1e-3, 1e-4
STEPS = 143_000
WARMUP = 0.01 * STEPS  # GPT-NeoX: warmup_iter = warmup * train_iters (a float: 1430.0)
PYTHIA = OptimConfig(lr=PEAK)  # the default schedule is the Pythia recipe's


def v1_reference(
    num_iters: int, start_lr: float, warmup_iter: float, end_iter: int, min_lr: float
) -> float:
    num_iters_ = min(num_iters, end_iter - warmup_iter)
    if warmup_iter > 0 and num_iters <= warmup_iter:
        return float(start_lr) * num_iters_ / warmup_iter
    num_iters_ = num_iters_ - warmup_iter
    lr = start_lr / 2.0 * (math.cos(math.pi * num_iters_ / end_iter) + 1)
    return max(lr, min_lr)


def ours(num_iters: int) -> float:
    return lr_for_update(num_iters + 1, PYTHIA, STEPS)  # update n runs after n - 1 iterations


def test_default_schedule_is_neox_v1() -> None:
    assert PYTHIA.lr_schedule == "neox-v1.0"
    assert PYTHIA.to_dict()["lr_schedule"] == "neox-v1.0"


@pytest.mark.parametrize(
    "num_iters, expected",
    [
        (0, 0.0),  # warmup start: update 1 has lr 0
        (715, PEAK * 715 / 1430),  # mid-warmup
        (1430, PEAK),  # end of warmup: the peak, exactly
        (1431, PEAK / 2 * (math.cos(math.pi * 1 / STEPS) + 1)),
        (1430 + 71_500, PEAK / 2),  # the cosine at half its period T: half the peak
        (115_138, None),  # just before the clamp
        (115_139, MIN),  # the clamp point: min_lr from here on
        (141_570, MIN),  # T - W: num_iters stops counting
        (142_999, MIN),  # the last update (143,000)
        (143_000, MIN),
    ],
)
def test_matches_v1_transcription(num_iters: int, expected: float | None) -> None:
    ref = v1_reference(num_iters, PEAK, WARMUP, STEPS, MIN)
    assert ours(num_iters) == ref  # same operations, same float
    if expected is not None:
        assert ref == pytest.approx(expected, rel=1e-12, abs=0)


def test_clamp_point() -> None:
    # cos(pi * (n - W) / T) = 2 * min / peak - 1 = -0.8 at n = W + T * acos(-0.8) / pi
    exact = WARMUP + STEPS * math.acos(2 * MIN / PEAK - 1) / math.pi
    assert 115_138 < exact < 115_139
    assert ours(115_138) > MIN * (1 + 1e-9)
    assert ours(115_139) == MIN
    assert all(ours(n) == MIN for n in range(115_139, STEPS + 1, 997))


def test_every_step_of_a_short_run() -> None:
    steps = 250  # warmup 2.5 iterations, clamps at about 80% of the run
    cfg = OptimConfig(lr=PEAK)
    for n in range(1, steps + 1):
        assert lr_for_update(n, cfg, steps) == v1_reference(n - 1, PEAK, 2.5, steps, MIN)


def test_differs_from_the_later_cosine() -> None:
    later = OptimConfig(lr=PEAK, lr_schedule="cosine")
    a = [lr_for_update(n, PYTHIA, STEPS) for n in range(1, STEPS + 1)]
    b = [lr_for_update(n, later, STEPS) for n in range(1, STEPS + 1)]
    assert a[:1431] == b[:1431]  # same warmup
    worst = max((y - x) / x for x, y in zip(a, b) if x)
    assert 0.82 < worst < 0.84  # the later cosine is up to 83% higher...
    assert 1.05 < sum(b) / sum(a) < 1.07  # ...and applies about 6% more learning rate in total


def test_unknown_schedule() -> None:
    with pytest.raises(ValueError, match=r"^--lr-schedule: unknown schedule 'linear' \(known: "):
        OptimConfig(lr=PEAK, lr_schedule="linear")
