"""`--steps`: one grammar for every analyze subcommand (analysis.steps), and one range check
(TrainData.check_step)."""

from __future__ import annotations

import argparse

import pytest

from analysis.steps import needs_checkpoints, parse_steps
from pythia_suite.cli import analyze
from suite_core import ConfigError, DataError

CKPTS = [0, 1, 2, 4, 8, 16, 32, 64, 100]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (None, CKPTS),
        ("all", CKPTS),
        ("checkpoints", CKPTS),
        (" checkpoints ", CKPTS),
        ("64,0,8,8", [0, 8, 64]),
        ("4:32", [4, 8, 16, 32]),  # the checkpoints from 4 to 32, both included
        ("3:7", [4]),
        ("0,16:64,100", [0, 16, 32, 64, 100]),
    ],
)
def test_grammar(text: str | None, want: list[int]) -> None:
    assert parse_steps(text, CKPTS) == want


@pytest.mark.parametrize(
    ("text", "error", "needle"),
    [
        ("", ConfigError, "empty step"),
        ("1,,2", ConfigError, "empty step"),
        ("-1", ConfigError, "must be >= 0"),
        ("ten", ConfigError, "is not all | checkpoints"),
        ("5:3", ConfigError, "names no step"),
        ("3", DataError, "no checkpoint at step 3 \\(available: 0, 1, 2, 4"),
    ],
)
def test_bad_steps_name_the_flag(text: str, error: type, needle: str) -> None:
    with pytest.raises(error, match=f"^--steps: .*{needle}"):
        parse_steps(text, CKPTS)


def test_any_step_without_a_checkpoint_list() -> None:
    """Counting in a bare data directory: any step; words and ranges need checkpoints."""
    assert parse_steps("20, 0,10,10", None, checkpoints_only=False) == [0, 10, 20]
    assert parse_steps("3", CKPTS, checkpoints_only=False) == [3]
    for text in ("all", "checkpoints", "0:10"):
        assert needs_checkpoints(text)
        with pytest.raises(ConfigError, match="needs a run with checkpoints"):
            parse_steps(text, None, checkpoints_only=False)
    assert not needs_checkpoints("1,2")


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser()
    analyze.register(parser.add_subparsers())
    top = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    studies = next(
        a for a in top.choices["analyze"]._actions if isinstance(a, argparse._SubParsersAction)
    )
    return dict(studies.choices)


def test_every_analyze_subcommand_speaks_one_grammar() -> None:
    subcommands = _subcommands()
    assert {"memorization", "count", "fewshot", "bias", "lm-eval"} <= set(subcommands)
    for name, sub in subcommands.items():
        flags = {o for a in sub._actions for o in a.option_strings}
        assert "--steps" in flags, name
        assert "--force" not in flags, name
        steps = next(a for a in sub._actions if "--steps" in a.option_strings)
        assert steps.metavar == "STEPS" and "A:B" in (steps.help or ""), name
        if "--out" in flags and name != "fewshot":
            assert "--overwrite" in flags, name
