"""The bias study for `pythia-suite run`: baseline and pronoun-swap branch across checkpoints.

`run_study(runs, truth=..., out_dir=...)` scores each intervention branch and its parent (all
runs with `all_runs=True`) on the probes built from `truth.json` (or on the official files given
as `crows=` / `winobias=`), writes `bias.h5`, `bias.csv` and `bias.png`, and checks the planted
truth:
- the baseline has the planted occupation-pronoun association at its last checkpoint
  (CrowS-format probes: `association` > 0 nats, i.e. the stereotypical pronoun gains more
  log-likelihood for the occupations the corpus skews that way);
- the intervention lowers it: after the branch step the branch's `pct_stereotype` and
  `association` at the last checkpoint are below the baseline's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.bias.across import across_checkpoints, bias_scorer, run_info, write_h5
from analysis.bias.data import load_crows, load_winobias
from analysis.bias.evaluate import Benchmarks
from analysis.bias.figures import plot_bias
from analysis.bias.probes import CROWS_FILE, WINO_DIR, write_probes
from analysis.study import RunSpec, StudyReport, TruthCheck
from suite_core import DataError

log = logging.getLogger(__name__)


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


def truth_checks(frame: pd.DataFrame, runs: list[RunSpec]) -> list[TruthCheck]:
    checks = []
    for branch in [r for r in runs if r.branch_of and r.intervention]:
        base = str(branch.branch_of)
        assoc = value(frame, base, "association")
        checks.append(
            TruthCheck(
                name=f"bias: {base} has the planted occupation-pronoun association",
                passed=assoc > 0,
                value=assoc,
                expected="association > 0 (nats, probes)",
                detail=f"pct_stereotype_balanced {value(frame, base, 'pct_stereotype_balanced'):.3f}"
                f", pct_stereotype {value(frame, base, 'pct_stereotype'):.3f}",
            )
        )
        for metric in ("pct_stereotype", "association"):
            b, x = value(frame, base, metric), value(frame, branch.name, metric)
            checks.append(
                TruthCheck(
                    name=f"bias: {branch.intervention} from step {branch.branch_step} lowers "
                    f"{metric}",
                    passed=x < b,
                    value=x - b,
                    expected="branch - baseline < 0 at the last checkpoint",
                    detail=f"{branch.name} {x:.3f} vs {base} {b:.3f}",
                )
            )
    return checks


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """The last checkpoint of each run: one column per (benchmark, subset, metric)."""
    last = frame[frame["step"] == frame.groupby("run")["step"].transform("max")]
    table = last.pivot_table(
        index=["run", "step"], columns=["benchmark", "subset", "metric"], values="value"
    )
    table.columns = [f"{b}/{s}/{m}" for b, s, m in table.columns]
    return table.reset_index()


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
    bench = benchmarks(
        truth=truth, out_dir=out_dir, crows=crows, winobias=winobias, generation=generation
    )
    score = bias_scorer(bench, out_dir / "tasks", batch_size=batch_size, max_length=max_length)
    chosen = selected_runs(runs, all_runs)
    cache: dict[str, list[dict[str, Any]]] = {}
    infos, frames = [], []
    for spec in chosen:
        info = run_info(spec.path, name=spec.name)
        infos.append(info)
        wanted = None if steps is None else [s for s in steps if s in info.checkpoints.steps]
        frames.append(across_checkpoints(info, score, steps=wanted, cache=cache))
    frame = pd.concat(frames, ignore_index=True)
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
    checks = truth_checks(frame, chosen) if bench.source == "probes" else []
    return StudyReport(
        study="bias",
        figures=[figure],
        tables={"bias_last_checkpoint": summary(frame), "bias": frame},
        checks=checks,
        results=[h5, csv],
    )
