"""The checkpoint schedule: Pythia's 154 steps, scaled-down rules, and rule errors."""

from __future__ import annotations

import pytest

from checkpoints_index.schedule import checkpoint_steps, listed_steps, log_every_steps


def test_pythia_schedule_exactly() -> None:
    steps = checkpoint_steps("pythia", 143000)
    assert len(steps) == 154
    assert steps[:13] == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000]
    assert steps[-3:] == [141000, 142000, 143000]
    assert steps == [0] + [2**i for i in range(10)] + list(range(1000, 143001, 1000))
    assert checkpoint_steps("log+every:1000", 143000) == steps
    assert log_every_steps(143000, 1000) == steps


def test_small_rules() -> None:
    assert checkpoint_steps("log+every:16", 64) == [0, 1, 2, 4, 8, 16, 32, 48, 64]
    # the last step is always included, even off the grid
    assert checkpoint_steps("log+every:16", 50) == [0, 1, 2, 4, 8, 16, 32, 48, 50]
    # powers of two past the last step are dropped
    assert checkpoint_steps("log+every:1000", 5) == [0, 1, 2, 4, 5]
    assert checkpoint_steps("pythia", 0) == [0]
    assert checkpoint_steps("log+every:1", 3) == [0, 1, 2, 3]
    assert checkpoint_steps(" log+every:3 ", 7) == [0, 1, 2, 3, 6, 7]


def test_listed_steps() -> None:
    assert checkpoint_steps("steps:0,5,10", 10) == [0, 5, 10]
    assert checkpoint_steps("steps:10,5,5,0", 20) == [0, 5, 10, 20]
    assert checkpoint_steps("steps:3,50", 20) == [3, 20]  # past-the-end dropped, last added
    assert listed_steps([7], 7) == [7]


@pytest.mark.parametrize(
    "rule",
    [
        "",
        "bogus",
        "pythia:3",
        "log+every",
        "log+every:",
        "log+every:0",
        "log+every:-4",
        "log+every:x",
        "steps:",
        "steps:1,,2",
        "steps:1,a",
        "steps:-1",
        "every:10",
    ],
)
def test_malformed_rules_name_the_rule(rule: str) -> None:
    with pytest.raises(ValueError, match="checkpoint rule") as info:
        checkpoint_steps(rule, 100)
    assert repr(rule) in str(info.value)


def test_negative_last_step() -> None:
    with pytest.raises(ValueError, match="steps"):
        checkpoint_steps("pythia", -1)
