"""`run_study`: the memorization study over a suite's runs, for `pythia-suite run`'s report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.memorization import figures as F
from analysis.memorization.boilerplate import boilerplate_study, timing_check
from analysis.memorization.metrics import (
    memorized_fraction,
    poisson_spread,
    predictability_over_steps,
)
from analysis.memorization.planted import Windows, canary_windows, cluster_windows
from analysis.memorization.profiles import profiles
from analysis.memorization.results import MemResults, read_results
from analysis.memorization.runner import MemConfig, score_memorization
from analysis.memorization.score import score_windows
from analysis.sources import open_checkpoints, open_rows
from analysis.study import RunSpec, StudyReport, TruthCheck

log = logging.getLogger(__name__)
SPREAD_SCORE = 0.5  # rows at least half reproduced count for the spread over training order


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
        raise ValueError("runs: no run to study (only branch runs given)")
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
    fractions = {n: memorized_fraction(r) for n, r in results.items()}
    report.tables["memorized_fraction"] = pd.concat(
        [f.assign(run=n) for n, f in fractions.items()], ignore_index=True
    )
    report.figures.append(F.fraction_figure(fractions, out_dir / "memorization_fraction.png"))
    largest = max(base, key=lambda r: (r.variant == "standard", r.n_params))
    res = results[largest.name]
    pred = predictability_over_steps(res)
    report.tables["predictability"] = pred.assign(run=largest.name)
    report.figures.append(F.predictability_figure(pred, out_dir / "memorization_predict.png"))
    final = res.at(int(res.steps[-1]))
    seen = final.seen[0]
    spread = poisson_spread(
        final.rows[seen],
        final.scores[0, seen] >= SPREAD_SCORE,
        int(final.steps[0]) * res.batch_size,
        blocks=20,
    )
    report.tables["poisson_spread"] = spread.qq.assign(ks=spread.ks, p_value=spread.p_value)
    report.figures.append(F.poisson_figure(spread, out_dir / "memorization_poisson.png"))
    _profiles(res, largest.name, out_dir, report)
    if truth is not None:
        _planted(base, truth, out_dir, report, dtype=dtype)
    return report


def _profiles(res: MemResults, name: str, out_dir: Path, report: StudyReport) -> None:
    try:
        prof = profiles(res)
    except ValueError as exc:
        log.warning("memorization profiles skipped: %s", exc)
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
        report.tables["canaries"] = table
        report.figures.append(F.canary_figure(table, out_dir / "memorization_canaries.png"))
        per = table.groupby(["run", "canary", "count"])["target_loglik"].mean().reset_index()
        rho = float(stats.spearmanr(per["count"], per["target_loglik"]).statistic)
        report.checks.append(
            TruthCheck(
                name="canaries: more repetitions, more memorized",
                passed=bool(rho > 0),
                value=rho,
                expected="Spearman(count, canary log-likelihood) > 0",
                detail=f"{len(per)} canary x run means; mean extraction score "
                f"{table['score'].mean():.3f}",
            )
        )
    pairs = [
        (s, d) for s in standard for d in base if d.variant == "deduped" and d.model == s.model
    ]
    dup = []
    for std, ded in pairs:
        win = cluster_windows(_data_dir(std), truth)
        win = _fit(win, open_rows(std.path).seq_length)
        dup += [_score_final(std, win, dtype), _score_final(ded, win, dtype)]
    if dup:
        table = pd.concat(dup, ignore_index=True)
        report.tables["near_duplicates"] = table
        report.figures.append(F.duplicates_figure(table, out_dir / "memorization_dups.png"))
        means = table.groupby("variant")["target_loglik"].mean()
        gap = float(means.get("standard", np.nan) - means.get("deduped", np.nan))
        report.checks.append(
            TruthCheck(
                name="near-duplicates: standard above deduped on duplicated text",
                passed=bool(gap > 0),
                value=gap,
                expected="mean log-likelihood gap (standard - deduped) > 0",
                detail=f"{table['cluster'].nunique()} clusters, {len(pairs)} model pair(s)",
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
