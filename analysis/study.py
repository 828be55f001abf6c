"""What every study hands to `pythia-suite run`'s report: runs in, figures, tables and checks out.

Each study package exposes `run_study(runs, *, truth, out_dir, ...) -> StudyReport`; the suite
renders the report's figures (PNG), tables (pandas, also written as CSV) and planted-truth
checks without knowing anything else about the study.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """One trained run of a suite, as the studies see it."""

    name: str  # e.g. "pythia-nano-standard"
    path: Path  # the RUN directory (run.json, checkpoints/, catalog.sqlite)
    model: str  # family row, e.g. "pythia-nano"
    n_params: int  # total parameters (for ordering sizes)
    variant: str  # "standard" or "deduped"
    branch_of: str | None = None  # name of the parent run for an intervention branch
    branch_step: int | None = None  # the step the branch starts from
    intervention: str | None = None  # e.g. "pronoun-swap"


@dataclass(frozen=True, kw_only=True)
class TruthCheck:
    """Whether the study recovered what the embedded corpus planted."""

    name: str  # e.g. "canaries: more repetitions, more memorized"
    passed: bool
    value: float  # the measured number (a correlation, a gap, a bias ...)
    expected: str  # what counts as recovered, e.g. "Spearman > 0"
    detail: str = ""


@dataclass(kw_only=True)
class StudyReport:
    study: str  # "memorization", "term_frequency", "bias"
    figures: list[Path] = field(default_factory=list)  # PNG files, in report order
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # name -> table
    checks: list[TruthCheck] = field(default_factory=list)
    results: list[Path] = field(default_factory=list)  # HDF5 / CSV files written
