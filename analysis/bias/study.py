"""The bias study for `pythia-suite run`: baseline and pronoun-swap branch across checkpoints.

`run_study(runs, truth=..., out_dir=...)` scores each intervention branch and its parent (all
runs with `all_runs=True`) on the probes built from `truth.json` (or on the official files given
as `crows=` / `winobias=`), writes `bias.h5`, `bias.csv`, `bias.png` and the per-probe scores
at each run's last studied checkpoint (`bias_probe_scores.csv`), and checks the planted truth
with one-sided paired tests over the probes (sign-flip permutation p, bootstrap interval):
- the baseline has the planted occupation-pronoun association at its last checkpoint
  (CrowS-format probes: `association` > 0 nats, i.e. the stereotypical pronoun gains more
  log-likelihood for the occupations the corpus skews that way; unit: sentence frames, each
  frame the same sentence filled with every occupation, see `frame_units`);
- the baseline is more accurate on pro- than on anti-stereotyped WinoBias probes (multiple
  choice, paired by sentence; "not testable" when the model answers every pair alike or does
  not pick the pronoun's referent above chance);
- the intervention lowers it: the branch's `pct_stereotype` (paired by CrowS pair) and
  `association` (paired by sentence frame) at the last checkpoint are below the baseline's.
Check names start with what they test (CrowS, WinoBias, the intervention); the report puts the
study's name before them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.bias.across import (
    RunInfo,
    across_checkpoints,
    bias_scorer,
    run_info,
    write_h5,
)
from analysis.bias.data import load_crows, load_winobias
from analysis.bias.evaluate import Benchmarks, hf_tokenizer
from analysis.bias.figures import plot_bias
from analysis.bias.probes import CROWS_FILE, WINO_DIR, write_probes
from analysis.stats import paired_test, stable_seed
from analysis.study import RunSpec, StudyReport, TruthCheck, run_check
from suite_core import DataError
from suite_core.atomic import atomic_path

log = logging.getLogger(__name__)
STUDY = "bias"


def benchmarks(
    *,
    truth: dict[str, Any] | None,
    out_dir: Path,
    crows: Path | None = None,
    winobias: Path | None = None,
    generation: bool = True,
) -> Benchmarks:
    """The official files when given, else the probes built from `truth` into `out_dir`."""
    if crows is not None or winobias is not None:
        return Benchmarks(
            source="files",
            crows=None if crows is None else load_crows(crows),
            winobias=None if winobias is None else load_winobias(winobias),
            generation=generation,
        )
    if truth is None:
        raise DataError(
            "bias study: no truth.json (a user corpus) and no --crows / --winobias "
            "files to evaluate"
        )
    probes = out_dir / "probes"
    write_probes(truth, probes, overwrite=True)
    return Benchmarks(
        source="probes",
        crows=load_crows(probes / CROWS_FILE),
        winobias=load_winobias(probes / WINO_DIR),
        generation=generation,
    )


def selected_runs(runs: list[RunSpec], all_runs: bool) -> list[RunSpec]:
    """Branches and their parents (every run with `all_runs` or when there is no branch)."""
    branches = [r for r in runs if r.branch_of]
    if all_runs or not branches:
        return list(runs)
    parents = {r.branch_of for r in branches}
    return [r for r in runs if r.name in parents or r.branch_of]


def value(
    frame: pd.DataFrame,
    run: str,
    metric: str,
    *,
    subset: str = "gender",
    benchmark: str = "crows_pairs",
    step: int | None = None,
) -> float:
    part = frame[
        (frame["run"] == run)
        & (frame["benchmark"] == benchmark)
        & (frame["subset"] == subset)
        & (frame["metric"] == metric)
    ]
    if part.empty:
        return float("nan")
    part = part.sort_values("step")
    row = part.iloc[-1] if step is None else part[part["step"] == step].iloc[-1]
    return float(row["value"])


def crows_units(records: pd.DataFrame) -> pd.DataFrame:
    """The gender CrowS pairs of one checkpoint, one line per pair (doc_id): `stereotype` (0/1)
    and `association`, the signed difference reweighted so that its mean over pairs is the
    `association` metric (the mean over the two genders of each gender's mean difference)."""
    part = records[
        (records["task"] == "bias_crows_pairs")
        & records["bias_type"].str.startswith("gender")
        & records["gender"].isin(["female", "male"])
    ]
    sizes = part["gender"].map(part["gender"].value_counts())
    weight = len(part) / (part["gender"].nunique() * sizes)
    return pd.DataFrame(
        {"stereotype": part["stereotype"], "association": part["diff"] * weight}
    ).set_index(part["doc_id"])


def frame_units(records: pd.DataFrame, frames: pd.Series) -> pd.Series:
    """The `association` of each sentence frame (`frames`: doc_id -> frame): the mean over the
    two genders of the gender's mean signed difference over the occupations in that frame.

    A frame holds every occupation, so a shift of all pronouns of one gender (the one-directional
    pronoun swap moves every he -> she by several nats) cancels within the frame, as it does in
    the metric; a CrowS pair alone carries that shift with the sign of its gender. The mean over
    frames is the `association` metric when every occupation fills every frame (the probes)."""
    part = records[
        (records["task"] == "bias_crows_pairs")
        & records["bias_type"].str.startswith("gender")
        & records["gender"].isin(["female", "male"])
    ]
    part = part.assign(frame=part["doc_id"].map(frames))
    by = part.groupby(["frame", "gender"])["diff"].mean().unstack("gender")
    return by.mean(axis=1, skipna=False).dropna()


def wino_units(records: pd.DataFrame) -> pd.Series:
    """WinoBias multiple choice: accuracy points pro minus anti per pair of sentences (the same
    sentence with the pronoun's gender swapped: same type, same line)."""
    part = records[records["task"] == "bias_winobias_mc"]
    wide = part.pivot_table(index=["type", "line"], columns="kind", values="value").dropna()
    if not {"pro", "anti"} <= set(wide.columns):
        return pd.Series([], dtype=float)
    return 100 * (wide["pro"] - wide["anti"])


def truth_checks(
    frame: pd.DataFrame,
    runs: list[RunSpec],
    records: dict[str, pd.DataFrame],
    frames: pd.Series,
) -> list[TruthCheck]:
    """Paired one-sided tests over the probes (`records`: run -> per-document records at the
    run's last studied checkpoint; `frames`: doc_id -> sentence frame of the CrowS probes).
    pct_stereotype is a share of pairs (unit: CrowS pairs); association, a contrast between
    genders, is tested over sentence frames (`frame_units`)."""
    checks = []
    for branch in [r for r in runs if r.branch_of and r.intervention]:
        base = str(branch.branch_of)
        name = f"CrowS: {base} has the planted occupation-pronoun association"
        detail = (
            f"nats, CrowS-format probes; pct_stereotype "
            f"{value(frame, base, 'pct_stereotype'):.3f}, balanced "
            f"{value(frame, base, 'pct_stereotype_balanced'):.3f}"
        )
        before = frame_units(records[base], frames)
        checks.append(_paired(name, before, "greater", detail, unit="frames"))
        checks.append(_wino_check(base, records[base]))
        swap = f"{branch.intervention}: the branch from step {branch.branch_step}"
        for metric in ("pct_stereotype", "association"):
            b, x = value(frame, base, metric), value(frame, branch.name, metric)
            detail = f"branch - baseline at the last checkpoint: {x:.3f} vs {b:.3f}"
            if metric == "pct_stereotype":
                pairs = crows_units(records[branch.name])["stereotype"]
                diffs = pairs - crows_units(records[base])["stereotype"]
                unit = "pairs"
            else:
                diffs = frame_units(records[branch.name], frames) - before
                unit = "frames"
            name = f"{swap} lowers {metric}"
            checks.append(_paired(name, diffs.dropna(), "less", detail, unit=unit))
    return checks


def _paired(name: str, diffs: pd.Series, direction: str, detail: str, *, unit: str) -> TruthCheck:
    return run_check(
        name,
        lambda: paired_test(
            diffs.to_numpy(float), unit=unit, direction=direction, seed=stable_seed(STUDY, name)
        ),
        direction=direction,
        detail=detail,
        unit=unit,
    )


def _wino_check(base: str, records: pd.DataFrame) -> TruthCheck:
    name = f"WinoBias: {base} is more accurate on pro- than anti-stereotyped probes"
    diffs = wino_units(records)
    if len(diffs) and bool((diffs == 0).all()):
        return TruthCheck.not_testable(
            name,
            f"the model resolves all {len(diffs)} pro- and anti-stereotyped sentence pairs alike"
            " (no paired difference): the scale is too small for this probe",
            unit="pairs",
        )
    resolved = resolves_pronouns(records)
    if resolved is not None:
        return TruthCheck.not_testable(name, resolved, unit="pairs")
    return run_check(
        name,
        lambda: paired_test(diffs.to_numpy(float), unit="pairs", seed=stable_seed(STUDY, name)),
        detail="accuracy points pro - anti, multiple choice, paired by sentence",
        unit="pairs",
    )


def resolves_pronouns(records: pd.DataFrame, alpha: float = 0.01) -> str | None:
    """Why WinoBias cannot be read at this scale, or None when it can: the pro - anti gap means
    something only for a model that picks the pronoun's referent above chance (1 in 2) over all
    probes (exact binomial test, one-sided, declared before looking at the gap)."""
    from scipy.stats import binomtest

    acc = records.loc[records["task"] == "bias_winobias_mc", "value"].to_numpy(float)
    if not len(acc):
        return "no WinoBias multiple-choice probe was scored"
    hits = int(np.rint(acc.sum()))
    p = binomtest(hits, len(acc), 0.5, alternative="greater").pvalue
    if p < alpha:
        return None
    return (
        f"the model picks the pronoun's referent in {hits} of {len(acc)} probes "
        f"({100 * hits / len(acc):.0f}%, binomial p = {p:.2g} against chance 50%): it does not "
        "resolve the pronoun at this scale, so pro- and anti-stereotyped accuracy cannot differ "
        "for a reason"
    )


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """The last checkpoint of each run: one column per (benchmark, subset, metric)."""
    last = frame[frame["step"] == frame.groupby("run")["step"].transform("max")]
    table = last.pivot_table(
        index=["run", "step"], columns=["benchmark", "subset", "metric"], values="value"
    )
    table.columns = [f"{b}/{s}/{m}" for b, s, m in table.columns]
    return table.reset_index()


NO_PROBES = (
    "No bias probes: the corpus has no truth.json (nothing was planted) and no CrowS-Pairs / "
    "WinoBias files were given; studies.bias.crows and studies.bias.winobias (the official "
    "files) would produce it."
)


def run_study(
    runs: list[RunSpec],
    *,
    truth: dict[str, Any] | None,
    out_dir: Path,
    crows: Path | None = None,
    winobias: Path | None = None,
    generation: bool = False,
    all_runs: bool = False,
    batch_size: int = 32,
    max_length: int = 2048,
    steps: list[int] | None = None,
) -> StudyReport:
    """The bias study over `runs` (see the module docstring); results into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if truth is None and crows is None and winobias is None:  # a user's corpus: say so
        return StudyReport(study="bias", omitted={"bias": NO_PROBES})
    bench = benchmarks(
        truth=truth, out_dir=out_dir, crows=crows, winobias=winobias, generation=generation
    )
    score = bias_scorer(bench, out_dir / "tasks", batch_size=batch_size, max_length=max_length)
    chosen = selected_runs(runs, all_runs)
    cache: dict[str, list[dict[str, Any]]] = {}
    by_sha: dict[str, pd.DataFrame] = {}
    infos, frames, records = [], [], {}
    for spec in chosen:
        info = run_info(spec.path, name=spec.name)
        infos.append(info)
        wanted = None if steps is None else [s for s in steps if s in info.checkpoints.steps]
        records[spec.name] = last_records(info, score, wanted, cache, by_sha)
        frames.append(across_checkpoints(info, score, steps=wanted, cache=cache))
    frame = pd.concat(frames, ignore_index=True)
    probes = write_records(records, out_dir / "bias_probe_scores.csv")
    config = {
        "benchmarks": bench.source,
        "generation": generation,
        "batch_size": batch_size,
        "max_length": max_length,
        "runs": [s.name for s in chosen],
    }
    h5 = write_h5(frame, infos, out_dir / "bias.h5", config=config)
    csv = out_dir / "bias.csv"
    frame.to_csv(csv, index=False)
    branch_steps = {
        s.name: int(s.branch_step) for s in chosen if s.branch_of and s.branch_step is not None
    }
    figure = plot_bias(
        frame,
        out_dir / "bias.png",
        branch_steps=branch_steps,
        title=f"Gender bias across training ({bench.source})",
    )
    checks = []
    if bench.source == "probes" and bench.crows is not None:
        checks = truth_checks(frame, chosen, records, bench.crows["frame"])
    return StudyReport(
        study="bias",
        figures=[figure],
        tables={"bias_last_checkpoint": summary(frame), "bias": frame},
        checks=checks,
        results=[h5, csv, probes],
    )


def write_records(records: dict[str, pd.DataFrame], path: Path) -> Path:
    """The per-probe records of every run (one line per run and scored document) as CSV."""
    frame = pd.concat([r.assign(run=n) for n, r in records.items()], ignore_index=True)
    with atomic_path(path, overwrite=True) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def last_records(
    info: RunInfo,
    score: Callable[..., list[dict[str, Any]]],  # bias_scorer's: takes `records=`
    steps: list[int] | None,
    cache: dict[str, list[dict[str, Any]]],
    by_sha: dict[str, pd.DataFrame],
) -> pd.DataFrame:
    """One record per scored probe at the run's last studied checkpoint (its scores enter
    `cache`, so `across_checkpoints` does not score that checkpoint again)."""
    chosen = info.checkpoints.steps if steps is None else steps
    if not chosen:
        return pd.DataFrame(columns=["task", "doc_id"])
    step = max(chosen)
    sha = info.checkpoints.sha256(step)
    if sha not in by_sha:
        tokenizer = hf_tokenizer(info.tokenizer_path) if info.tokenizer_path else None
        sink: list[dict[str, Any]] = []
        cache[sha] = score(info.checkpoints.load(step), tokenizer, records=sink)
        by_sha[sha] = pd.DataFrame(sink).assign(step=step)
    return by_sha[sha]
