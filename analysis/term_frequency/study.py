"""`run_study` for `pythia-suite run`: the term-frequency study on the largest standard run.

At a few checkpoints of the largest standard (not deduplicated, not branched) run it counts
the evaluation terms in the rows each checkpoint trained on, decodes the fact-recall and
arithmetic questions few-shot, and checks the planted truth at the final checkpoint:
- the counts recover the Zipf ranks planted in the corpus (Spearman of count vs truth count);
- fact-recall accuracy rises with the entity's frequency (Spearman > 0, top-10 minus
  bottom-10 > 0);
- the same for arithmetic against the frequency of the first operand.
Every check is a one-sided test over terms (the independent unit): Spearman with a permutation
p-value, the top-minus-bottom gap with a label-permutation p-value, 95% bootstrap intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.sources import open_checkpoints
from analysis.stats import difference_test, spearman_test, stable_seed
from analysis.study import RunSpec, StudyReport, TruthCheck, run_check
from analysis.term_frequency.across import FewShotResult, ItemsConfig, run_fewshot
from analysis.term_frequency.fewshot import FewShotConfig
from analysis.term_frequency.figures import accuracy_vs_frequency
from analysis.term_frequency.metrics import gap_table
from suite_core import DataError

STUDY = "term_frequency"
TOP_K = 10  # the top-k and bottom-k most frequent terms of the gap (Pythia's table)


def pick_run(runs: Sequence[RunSpec]) -> RunSpec:
    """The largest standard run that is not an intervention branch (else the largest run)."""
    if not runs:
        raise DataError("runs: the term-frequency study needs at least one run")
    plain = [r for r in runs if r.variant == "standard" and r.branch_of is None] or list(runs)
    return max(plain, key=lambda r: r.n_params)


def spread_steps(steps: Sequence[int], n: int) -> list[int]:
    """Up to n checkpoints nearest to n evenly spaced steps, the first and the final included."""
    steps = sorted(steps)
    if len(steps) <= n:
        return steps
    targets = np.linspace(steps[0], steps[-1], n)
    return sorted({min(steps, key=lambda s: abs(s - t)) for t in targets})


def run_study(
    runs: list[RunSpec],
    *,
    truth: dict[str, Any] | None,
    out_dir: Path,
    checkpoints: int = 3,
    shots: Sequence[int] = (0, 2),
    x2: Sequence[int] = tuple(range(1, 6)),
    processes: int = 1,
) -> StudyReport:
    """Counts, few-shot accuracy, figures, the top-minus-bottom table and the truth checks."""
    run = pick_run(runs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = spread_steps(open_checkpoints(run.path).steps, checkpoints)
    tasks = ("facts", "arithmetic") if truth is not None else ("arithmetic",)
    result = run_fewshot(
        run.path,
        truth=truth,
        steps=steps,
        items_config=ItemsConfig(tasks=tasks, x2=tuple(x2)),
        fewshot=FewShotConfig(shots=tuple(shots)),
        out=out_dir / f"{run.name}.fewshot.h5",
        processes=processes,
    )
    report = StudyReport(study=STUDY, results=[p for p in [result.path] if p is not None])
    joined = result.joined
    for task in tasks:
        for k in sorted(joined.loc[joined["task"].str.startswith(task), "shots"].unique()):
            name = "arithmetic-plus" if task == "arithmetic" else task
            png = out_dir / f"{run.name}.{name}.{k}shot.png"
            report.figures.append(
                accuracy_vs_frequency(joined, task=name, shots=int(k), out=png, overwrite=True)
            )
        name = "arithmetic-plus" if task == "arithmetic" else task
        table = gap_table(joined, task=name)
        report.tables[f"{name}_top10_minus_bottom10_accuracy_x100"] = table
        table.to_csv(out_dir / f"{run.name}.{name}.gap.csv")
        report.checks += accuracy_checks(joined, task=name, run=run.name)
    if truth is not None:
        report.checks.append(count_check(result, truth))
    return report


def final_slice(joined: Any, *, task: str) -> Any:
    """The task's rows at the final step, at the shot count with the highest mean accuracy."""
    part = joined[(joined["task"] == task) & (joined["step"] == joined["step"].max())]
    best = part.groupby("shots")["accuracy"].mean().idxmax()
    return part[part["shots"] == best], int(best)


def accuracy_checks(joined: Any, *, task: str, run: str) -> list[TruthCheck]:
    """Accuracy against count over the task's terms at the final checkpoint, as two tests."""
    if not (joined["task"] == task).any():  # no prompt fit the context (fewshot logged why)
        return []
    part, k = final_slice(joined, task=task)
    acc, count = part["accuracy"].to_numpy(float), part["count"].to_numpy(float)
    step = int(joined["step"].max())
    detail = f"{run}, step {step}, {k}-shot, {len(part)} terms; mean accuracy {acc.mean():.3f}"
    rho_name = f"{task}: accuracy rises with term frequency (Spearman)"
    gap_name = f"{task}: top-{TOP_K} minus bottom-{TOP_K} frequent terms (accuracy points)"
    top = min(TOP_K, len(count) // 2)
    order = np.argsort(count, kind="stable")  # ties broken by the term's position
    high, low = 100 * acc[order[len(order) - top :]], 100 * acc[order[:top]]
    return [
        run_check(
            rho_name,
            lambda: spearman_test(
                count,
                acc,
                unit="terms",
                seed=stable_seed(STUDY, rho_name),
                labels=("count", "accuracy"),
            ),
            detail=detail,
            unit="terms",
        ),
        run_check(
            gap_name,
            lambda: difference_test(
                high,
                low,
                unit="terms",
                seed=stable_seed(STUDY, gap_name),
                labels=(f"top-{top}", f"bottom-{top}"),
            ),
            detail=detail,
            unit="terms",
        ),
    ]


def count_check(result: FewShotResult, truth: dict[str, Any]) -> TruthCheck:
    """The exact counts in the trained rows follow the planted Zipf counts of the numbers."""
    planted = {t["term"]: t["count"] for t in truth["terms"]["numbers"]}
    final = result.counts.steps[-1]
    col = {t.name: i for i, t in enumerate(result.counts.terms)}
    terms = [t for t in planted if " " + t in col]
    mine = [float(result.counts.counts[-1, col[" " + t]]) for t in terms]
    name = "counts: token counts in the trained rows follow the planted Zipf counts"
    return run_check(
        name,
        lambda: spearman_test(
            mine,
            [float(planted[t]) for t in terms],
            unit="terms",
            seed=stable_seed(STUDY, name),
            labels=("count", "planted count"),
        ),
        detail=f"{len(terms)} numbers, counts at step {final} vs truth.json terms.numbers",
        unit="terms",
    )
