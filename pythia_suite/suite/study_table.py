"""The studies a suite config may name: an explicit table, study name -> its `run_study`.

Each entry imports its package only when called (a suite without studies never loads them).
A new study is one line here and one name in `config.STUDIES`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

StudyFunction = Callable[..., Any]  # run_study(runs, *, truth, out_dir, **options) -> StudyReport


def _memorization() -> StudyFunction:
    from analysis.memorization import run_study

    return run_study


def _term_frequency() -> StudyFunction:
    from analysis.term_frequency import run_study

    return run_study


def _bias() -> StudyFunction:
    from analysis.bias import run_study

    return run_study


STUDY_TABLE: dict[str, Callable[[], StudyFunction]] = {
    "memorization": _memorization,
    "term_frequency": _term_frequency,
    "bias": _bias,
}
