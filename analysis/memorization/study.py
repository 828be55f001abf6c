"""`run_study`: the memorization study over a suite's runs, for `pythia-suite run`'s report.

Memorized fraction, predictability and the spread over training order at Pythia's exact
definition (score 1, the headline) and at the labelled thresholds score >= 0.75 and >= 0.5,
with the score distribution per checkpoint; what has no data is left out with one sentence
(`StudyReport.omitted`). Planted-truth checks, one-sided tests over the independent unit:
canary log-likelihood against repetitions (Spearman over canaries, permutation p) and standard
above deduped on the near-duplicate clusters' text (paired by cluster, sign-flip p).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.memorization import figures as F
from analysis.memorization.across import MemConfig, score_memorization
from analysis.memorization.boilerplate import boilerplate_study, timing_check
from analysis.memorization.exposure import (
    add_canary_exposures,
    add_natural_duplication,
    exposure_rows,
)
from analysis.memorization.metrics import (
    THRESHOLDS,
    memorized_fraction,
    poisson_spread,
    predictability_over_steps,
    score_distribution,
)
from analysis.memorization.planted import Windows, canary_windows, cluster_windows
from analysis.memorization.profiles import profiles
from analysis.memorization.results import MemResults, read_results
from analysis.memorization.score import score_windows
from analysis.sources import open_checkpoints, open_rows
from analysis.stats import paired_test, spearman_test, stable_seed
from analysis.study import RunSpec, StudyReport, TruthCheck, run_check
from suite_core import DataError

log = logging.getLogger(__name__)
STUDY = "memorization"
MIN_SPREAD_ROWS = 5  # memorized rows below which a spread over training order is not drawn


def run_study(
    runs: list[RunSpec],
    *,
    truth: dict[str, Any] | None,
    out_dir: Path,
    rows: int | None = 256,
    k: int | None = None,
    target: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    dtype: str = "float32",
) -> StudyReport:
    """Score every run, then figures, tables and the planted-truth checks into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = StudyReport(study="memorization")
    base = [r for r in runs if r.branch_of is None]
    if not base:
        raise DataError("runs: no run to study (only branch runs given)")
    results: dict[str, MemResults] = {}
    for run in base:
        seq = open_rows(run.path).seq_length
        kk = k or min(32, (seq + 1) // 2)
        tt = target or min(32, seq + 1 - kk)
        path = out_dir / f"memorization_{run.name}.h5"
        if not path.exists():
            score_memorization(
                MemConfig(
                    out=path,
                    run=run.path,
                    rows=rows,
                    seed=seed,
                    k=kk,
                    target=tt,
                    batch_size=batch_size,
                    dtype=dtype,
                )
            )
        results[run.name] = read_results(path)
        report.results.append(path)
    _fractions(results, out_dir, report)
    largest = max(base, key=lambda r: (r.variant == "standard", r.n_params))
    res = results[largest.name]
    _distribution(res, largest.name, out_dir, report)
    _predictability(res, largest.name, out_dir, report)
    _spread(res, largest.name, out_dir, report)
    expo = add_natural_duplication(report, res, largest, out_dir, seed=seed)
    _profiles(res, largest.name, out_dir, report, exposure_rows(expo))
    if truth is not None:
        _planted(base, truth, out_dir, report, dtype=dtype)
    return report


def _fractions(results: dict[str, MemResults], out_dir: Path, report: StudyReport) -> None:
    """Memorized fraction per run and step, exact and at the labelled thresholds."""
    table = pd.concat(
        [
            memorized_fraction(r, t).assign(label=label, run=n)
            for label, t in THRESHOLDS.items()
            for n, r in results.items()
        ],
        ignore_index=True,
    )
    report.tables["memorized_fraction"] = table
    exact = {n: f for n, f in table[table["label"] == "exact"].groupby("run", sort=False)}
    report.figures.append(F.fraction_figure(exact, out_dir / "memorization_fraction.png"))
    report.figures.append(F.threshold_figure(table, out_dir / "memorization_thresholds.png"))


def _distribution(res: MemResults, name: str, out_dir: Path, report: StudyReport) -> None:
    """The seen rows' score distribution at each checkpoint (table and box plot)."""
    table = score_distribution(res).assign(run=name)
    scores = {int(s): res.scores[i, res.seen[i]] for i, s in enumerate(res.steps)}
    scores = {s: v for s, v in scores.items() if v.size}
    if not scores:
        report.omitted["score_distribution"] = (
            f"No checkpoint of {name} has trained on any of the scored rows yet; scoring rows "
            "trained before a later checkpoint (more steps) would produce it."
        )
        return
    report.tables["score_distribution"] = table
    title = f"Memorization scores of seen rows per checkpoint ({name})"
    path = out_dir / "memorization_distribution.png"
    report.figures.append(F.distribution_figure(scores, path, title))


def _predictability(res: MemResults, name: str, out_dir: Path, report: StudyReport) -> None:
    """Earlier checkpoints as predictors of the final one, at every threshold with data."""
    parts = [
        predictability_over_steps(res, t).assign(label=label, run=name)
        for label, t in THRESHOLDS.items()
    ]
    has_data = [not p.empty and p[["precision", "recall"]].notna().any(axis=None) for p in parts]
    kept = [p for p, ok in zip(parts, has_data, strict=True) if ok]
    for label, ok in zip(THRESHOLDS, has_data, strict=True):
        if not ok:
            report.omitted[f"predictability ({label})"] = (
                f"No scored row of {name} is memorized ({label}) at the final checkpoint or at "
                "an earlier one, so precision and recall are undefined; more training steps or "
                "more scored rows (studies.memorization.rows) would produce it."
            )
    if kept:
        table = pd.concat(kept, ignore_index=True)
        report.tables["predictability"] = table
        path = out_dir / "memorization_predict.png"
        report.figures.append(F.predictability_figure(table, path))


def _spread(res: MemResults, name: str, out_dir: Path, report: StudyReport) -> None:
    """Memorized rows (final checkpoint) over blocks of training order against a Poisson."""
    final = res.at(int(res.steps[-1]))
    seen = final.seen[0]
    tables = []
    for label, t in THRESHOLDS.items():
        memorized = final.scores[0, seen] >= t
        if int(memorized.sum()) < MIN_SPREAD_ROWS:
            report.omitted[f"poisson_spread ({label})"] = (
                f"Only {int(memorized.sum())} of {int(seen.sum())} scored rows of {name} are "
                f"memorized ({label}) at step {int(res.steps[-1])}, fewer than "
                f"{MIN_SPREAD_ROWS}; more training steps or more scored rows would produce it."
            )
            continue
        spread = poisson_spread(
            final.rows[seen], memorized, int(final.steps[0]) * res.batch_size, blocks=20
        )
        tables.append(spread.qq.assign(label=label, ks=spread.ks, p_value=spread.p_value))
        path = out_dir / f"memorization_poisson_{_slug(label)}.png"
        report.figures.append(F.poisson_figure(spread, path, label))
    if tables:
        report.tables["poisson_spread"] = pd.concat(tables, ignore_index=True).assign(run=name)


def _slug(label: str) -> str:
    return label.replace("score>=", "ge").replace(".", "")


def _profiles(
    res: MemResults, name: str, out_dir: Path, report: StudyReport, first: np.ndarray
) -> None:
    """Cohorts from each row's first exposure (`first`: the first trained row with its text)."""
    try:
        prof = profiles(res, exposure_rows=first)
    except ValueError as exc:
        report.omitted["profiles"] = (
            f"The memorization profiles of {name} could not be estimated ({exc}); more "
            "checkpoints and more scored rows would produce them."
        )
        return
    report.tables["profiles_event"] = prof.event.assign(run=name)
    report.tables["profiles_cohort"] = prof.cohort.assign(run=name)
    report.tables["profiles_att_gt"] = prof.att_gt.assign(run=name)
    path = out_dir / "memorization_profiles.csv"
    prof.att_gt.assign(run=name).to_csv(path, index=False)
    report.results.append(path)
    report.figures.append(F.profiles_figure(prof, out_dir / "memorization_profiles.png"))


def _score_final(run: RunSpec, win: Windows, dtype: str) -> pd.DataFrame:
    ck = open_checkpoints(run.path)
    model = ck.load(ck.steps[-1], dtype=dtype)
    score, loglik = score_windows(model, win.tokens, win.k, win.target)
    return win.table.assign(
        run=run.name, model=run.model, variant=run.variant, score=score, target_loglik=loglik
    )


def _planted(
    base: list[RunSpec], truth: dict[str, Any], out_dir: Path, report: StudyReport, *, dtype: str
) -> None:
    standard = [r for r in base if r.variant == "standard"]
    if standard and truth.get("boilerplate"):
        table, checks = boilerplate_study(
            standard, truth, _data_dir(standard[0]) / "tokenizer.json", dtype
        )
        report.tables["boilerplate"] = table
        report.checks += checks
    canaries = []
    for run in standard:
        data = open_rows(run.path)
        span = min(16, (data.seq_length + 1) // 4)  # context and canary tokens per window
        win = canary_windows(data, truth, context=span, target=span)
        canaries.append(_score_final(run, win, dtype))
    if canaries:
        table = pd.concat(canaries, ignore_index=True)
        if truth.get("timing"):
            largest = max(standard, key=lambda r: r.n_params).name
            report.checks.append(timing_check(table, truth, largest))
            report.tables["timing_canaries"] = table[table["canary"].map(_is_timed(truth))]
            table = table[~table["canary"].map(_is_timed(truth))]
        _canaries(table, out_dir, report)
        add_canary_exposures(report, table, standard, truth)
    pairs = [
        (s, d) for s in standard for d in base if d.variant == "deduped" and d.model == s.model
    ]
    dup = []
    for std, ded in pairs:
        win = cluster_windows(_data_dir(std), truth)
        win = _fit(win, open_rows(std.path).seq_length)
        dup += [_score_final(std, win, dtype), _score_final(ded, win, dtype)]
    if dup:
        _duplicates(pd.concat(dup, ignore_index=True), len(pairs), out_dir, report)


CANARY_CHECK = "canaries: more repetitions, more memorized"
DUP_CHECK = "near-duplicates: standard above deduped on duplicated text"


def _canaries(table: pd.DataFrame, out_dir: Path, report: StudyReport) -> None:
    """Canary log-likelihood against repetitions: Spearman over canaries (the unit)."""
    if table.empty:
        report.omitted["canaries"] = (
            "No canary occurrence lies in the trained rows with room for its context; more "
            "training steps (rows) or longer rows would produce it."
        )
        report.checks.append(
            TruthCheck.not_testable(
                CANARY_CHECK, "no canary occurrence in the trained rows", unit="canaries"
            )
        )
        return
    report.tables["canaries"] = table
    report.figures.append(F.canary_figure(table, out_dir / "memorization_canaries.png"))
    # a canary's occurrences and runs share its text: one mean per canary is one unit
    per = table.groupby("canary").agg(count=("count", "first"), loglik=("target_loglik", "mean"))
    detail = (
        f"{len(table)} occurrences in {table['run'].nunique()} run(s), averaged per canary; "
        f"mean extraction score {table['score'].mean():.3f}"
    )
    report.checks.append(
        run_check(
            CANARY_CHECK,
            lambda: spearman_test(
                per["count"],
                per["loglik"],
                unit="canaries",
                seed=stable_seed(STUDY, CANARY_CHECK),
                labels=("repetitions", "canary log-likelihood"),
            ),
            detail=detail,
            unit="canaries",
        )
    )


def _duplicates(table: pd.DataFrame, n_pairs: int, out_dir: Path, report: StudyReport) -> None:
    """Standard minus deduped log-likelihood of each cluster's text, paired by cluster."""
    if table.empty:
        report.omitted["near_duplicates"] = (
            "No near-duplicate cluster's base document is long enough for a scoring window; "
            "longer cluster documents in the corpus would produce it."
        )
        report.checks.append(
            TruthCheck.not_testable(DUP_CHECK, "no cluster window to score", unit="clusters")
        )
        return
    report.tables["near_duplicates"] = table
    report.figures.append(F.duplicates_figure(table, out_dir / "memorization_dups.png"))
    wide = table.pivot_table(
        index=["model", "cluster"], columns="variant", values="target_loglik", aggfunc="mean"
    ).dropna()
    diffs = (wide["standard"] - wide["deduped"]) if len(wide.columns) == 2 else pd.Series([])
    clusters = wide.index.get_level_values("cluster").to_numpy() if len(diffs) else []
    report.checks.append(
        run_check(
            DUP_CHECK,
            lambda: paired_test(
                diffs.to_numpy(float),
                clusters=clusters,
                unit="clusters",
                seed=stable_seed(STUDY, DUP_CHECK),
            ),
            detail=f"log-likelihood / token, standard - deduped, {table['cluster'].nunique()} "
            f"clusters x {n_pairs} model pair(s)",
            unit="clusters",
        )
    )


def _is_timed(truth: dict[str, Any]) -> dict[int, bool]:
    return {i: bool(c.get("timing")) for i, c in enumerate(truth["canaries"])}


def _fit(win: Windows, seq_length: int) -> Windows:
    """Cluster windows no longer than the models' context."""
    k = min(win.k, (seq_length + 1) // 2)
    t = min(win.target, seq_length + 1 - k)
    return Windows(tokens=win.tokens[:, : k + t], k=k, target=t, table=win.table)


def _data_dir(run: RunSpec) -> Path:
    data = open_rows(run.path)
    inner: Any = getattr(data, "data", data)
    return Path(inner.directory)
