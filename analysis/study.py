"""What every study hands to `pythia-suite run`'s report: runs in, figures, tables and checks out.

Each study package exposes `run_study(runs, *, truth, out_dir, ...) -> StudyReport`; the suite
renders the report's figures (PNG), tables (pandas, also written as CSV), the one-sentence notes
on what had no data (`omitted`), and the planted-truth checks without knowing anything else
about the study. Every check is a one-sided test (`analysis.stats`) at ALPHA with Holm's
correction across the checks of a report (`apply_holm`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.stats import NotTestable, TestResult, holm

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


ALPHA = 0.01  # declared significance level of every planted-truth check (one-sided, Holm)
RECOVERED, NOT_RECOVERED, NOT_TESTABLE = "recovered", "not recovered", "not testable"


@dataclass(frozen=True, kw_only=True)
class TruthCheck:
    """Whether the study recovered what the corpus planted, as a one-sided test.

    `p_adjusted` and `status` are those of a family of one until `apply_holm` adjusts them
    across every check of a report; a check that could not be tested keeps NaN statistics and
    says why in `reason`.
    """

    name: str  # e.g. "canaries: more repetitions, more memorized"
    effect: float  # natural units (Spearman rho, nats/token, accuracy points, pct difference)
    ci_low: float  # 95% bootstrap interval over the independent unit
    ci_high: float
    p_value: float  # one-sided in the planted direction, unadjusted
    p_adjusted: float  # Holm-adjusted across the report's checks
    n: int  # number of independent units
    unit: str  # what was resampled ("terms", "canaries", "clusters", "pairs", ...)
    test: str  # the test's name
    direction: str  # "greater" (planted effect > 0) or "less"
    status: str  # RECOVERED, NOT_RECOVERED or NOT_TESTABLE
    reason: str = ""  # why not testable (or empty)
    detail: str = ""  # extra context for the reader

    @classmethod
    def from_test(
        cls, name: str, result: TestResult, *, direction: str = "greater", detail: str = ""
    ) -> TruthCheck:
        """A tested check; its status is that of a family of one until `apply_holm`."""
        fields = {f: getattr(result, f) for f in ("effect", "ci_low", "ci_high", "p_value", "n")}
        base = cls(
            name=name,
            **fields,
            p_adjusted=result.p_value,
            unit=result.unit,
            test=result.test,
            direction=direction,
            status=NOT_TESTABLE,
            detail=detail,
        )
        return base.adjusted(result.p_value)

    @classmethod
    def not_testable(
        cls,
        name: str,
        reason: str,
        *,
        unit: str = "",
        direction: str = "greater",
        detail: str = "",
    ) -> TruthCheck:
        nan = math.nan
        return cls(
            name=name,
            effect=nan,
            ci_low=nan,
            ci_high=nan,
            p_value=nan,
            p_adjusted=nan,
            n=0,
            unit=unit,
            test="",
            direction=direction,
            status=NOT_TESTABLE,
            reason=reason,
            detail=detail,
        )

    @property
    def passed(self) -> bool:
        return self.status == RECOVERED

    def summary(self) -> str:
        """One line: status, effect [95% CI], adjusted p, n and unit, test (or the reason)."""
        if self.status == NOT_TESTABLE:
            return f"{self.name}: {self.status}: {self.reason}"
        return (
            f"{self.name}: {self.status}: {self.effect:.4g} [{self.ci_low:.4g}, {self.ci_high:.4g}]"
            f", p_adj {self.p_adjusted:.3g} (p {self.p_value:.3g}), n = {self.n} {self.unit}"
            f", {self.test}, one-sided {self.direction}"
        )

    def adjusted(self, p_adjusted: float, *, alpha: float = ALPHA) -> TruthCheck:
        """This check with `p_adjusted` and the status it implies at `alpha`."""
        if not all(math.isfinite(v) for v in (self.effect, self.p_value, p_adjusted)):
            reason = self.reason or "the statistic is NaN"
            return replace(self, p_adjusted=math.nan, status=NOT_TESTABLE, reason=reason)
        planted_sign = self.effect > 0 if self.direction == "greater" else self.effect < 0
        ok = p_adjusted < alpha and planted_sign
        return replace(self, p_adjusted=p_adjusted, status=RECOVERED if ok else NOT_RECOVERED)


def run_check(
    name: str,
    test: Callable[[], TestResult],
    *,
    direction: str = "greater",
    detail: str = "",
    unit: str = "",
) -> TruthCheck:
    """`test()` as a check; a sample it cannot test (`NotTestable`) becomes "not testable"."""
    try:
        result = test()
    except NotTestable as exc:
        return TruthCheck.not_testable(
            name, str(exc), unit=unit, direction=direction, detail=detail
        )
    return TruthCheck.from_test(name, result, direction=direction, detail=detail)


def apply_holm(checks: Sequence[TruthCheck], alpha: float = ALPHA) -> list[TruthCheck]:
    """Every check with its Holm-adjusted p across `checks` and its status at `alpha`."""
    adjusted = holm([c.p_value if c.status != NOT_TESTABLE else math.nan for c in checks])
    return [c.adjusted(p, alpha=alpha) for c, p in zip(checks, adjusted, strict=True)]


@dataclass(kw_only=True)
class StudyReport:
    study: str  # "memorization", "term_frequency", "bias"
    figures: list[Path] = field(default_factory=list)  # PNG files, in report order
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # name -> table
    checks: list[TruthCheck] = field(default_factory=list)
    results: list[Path] = field(default_factory=list)  # HDF5 / CSV files written
    # a figure or table left out for want of data -> one sentence: why, and what would produce it
    omitted: dict[str, str] = field(default_factory=dict)
