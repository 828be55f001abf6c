"""Planted boilerplate passages and timing canaries of `truth.json`, scored and tested.

- Boilerplate (`truth["boilerplate"]`): passages (licence headers, file headers, code
  preambles) each prepended to `count` documents (1, 2, 4, ... 256). Windows are taken from the
  passage's own tokens (prompt `k`, target `target`, every `stride` tokens while they fit), the
  text every copy shares. Per passage: the mean memorization score and the fraction of windows
  memorized exactly (score 1). Checks (unit: passages): the score rises with the number of
  copies (Spearman), from an earlier checkpoint to the final one, and from the smaller standard
  model to the larger one (paired by passage).
- Timing canaries (`truth["canaries"]` with `timing` first_quarter / last_quarter): placed so
  that every occurrence is in the first (last) quarter of the training order, one per host.
  The check (unit: canaries, at equal exposure counts): at the last checkpoint the early
  canaries' target log-likelihood is below the late ones' (forgetting).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.memorization.planted import Windows
from analysis.memorization.score import score_windows
from analysis.sources import open_checkpoints
from analysis.stats import difference_test, paired_test, spearman_test, stable_seed
from analysis.study import RunSpec, TruthCheck, run_check
from dataloader_replay.tokenizer import read_tokenizer

STRIDE = 16


def boilerplate_windows(
    tokenizer: Path, truth: dict[str, Any], *, k: int = 32, target: int = 32
) -> Windows:
    """Windows of every passage's tokens: [N, k + target], one table line per window."""
    tok = read_tokenizer(Path(tokenizer))
    lines, wins = [], []
    for b in truth.get("boilerplate", []):
        ids = np.asarray(tok.encode(b["text"]).ids, dtype=np.int64)
        for start in range(0, ids.size - (k + target) + 1, STRIDE):
            wins.append(ids[start : start + k + target])
            lines.append({"passage": int(b["passage"]), "copies": int(b["count"]), "start": start})
    table = pd.DataFrame(lines, columns=["passage", "copies", "start"])
    arr = np.stack(wins) if wins else np.zeros((0, k + target), dtype=np.int64)
    return Windows(tokens=arr, k=k, target=target, table=table)


def score_at(run: RunSpec, step: int, win: Windows, dtype: str) -> pd.DataFrame:
    """The windows scored by `run`'s checkpoint `step`: score, memorized, target log-lik."""
    model = open_checkpoints(run.path).load(step, dtype=dtype)
    score, loglik = score_windows(model, win.tokens, win.k, win.target)
    return win.table.assign(
        run=run.name, model=run.model, step=step, score=score, memorized=score >= 1.0,
        target_loglik=loglik,
    )  # fmt: skip


def per_passage(scored: pd.DataFrame) -> pd.DataFrame:
    """Mean score and exact memorized fraction per (run, step, passage)."""
    keys = ["run", "model", "step", "passage", "copies"]
    return scored.groupby(keys, as_index=False).agg(
        score=("score", "mean"), memorized=("memorized", "mean"), windows=("score", "size")
    )


def earlier_step(steps: list[int]) -> int:
    """The checkpoint nearest a quarter of the final step (the steps check's earlier one)."""
    final = steps[-1]
    return min((s for s in steps if 0 < s < final), key=lambda s: abs(s - final / 4))


def boilerplate_study(
    standard: list[RunSpec], truth: dict[str, Any], tokenizer: Path, dtype: str
) -> tuple[pd.DataFrame, list[TruthCheck]]:
    """Per-passage scores of every standard run (final and an earlier checkpoint) and checks."""
    win = boilerplate_windows(tokenizer, truth)
    if not len(win.tokens) or not standard:
        return pd.DataFrame(), [
            TruthCheck.not_testable(
                "boilerplate: memorization rises with duplication",
                "no boilerplate passage in truth.json (or none long enough for a window)",
                unit="passages",
            )
        ]
    frames = []
    for run in standard:
        steps = open_checkpoints(run.path).steps
        for step in sorted({earlier_step(steps), steps[-1]}):
            frames.append(score_at(run, step, win, dtype))
    table = per_passage(pd.concat(frames, ignore_index=True))
    return table, boilerplate_checks(table, standard)


def _final(table: pd.DataFrame, run: str) -> pd.DataFrame:
    part = table[table["run"] == run]
    return part[part["step"] == part["step"].max()].sort_values("passage")


def boilerplate_checks(table: pd.DataFrame, standard: list[RunSpec]) -> list[TruthCheck]:
    by_size = sorted(standard, key=lambda r: r.n_params)
    large = by_size[-1]
    fin = _final(table, large.name)
    part = table[table["run"] == large.name]
    early = part[part["step"] == part["step"].min()].sort_values("passage")
    seed = stable_seed("memorization", "boilerplate")
    detail = (
        f"{large.name}, step {int(fin['step'].max())}: {len(fin)} passages, "
        f"exactly memorized windows {fin['memorized'].mean():.2f}"
    )
    checks = [
        run_check(
            "boilerplate: memorization rises with duplication (Spearman of copies, score)",
            lambda: spearman_test(
                fin["copies"],
                fin["score"],
                unit="passages",
                seed=seed,
                labels=("copies", "memorization score"),
            ),
            unit="passages",
            detail=detail,
        ),
        run_check(
            f"boilerplate: memorization rises with steps (step {int(early['step'].max())} "
            f"to {int(fin['step'].max())}, score)",
            lambda: paired_test(
                fin["score"].to_numpy() - early["score"].to_numpy(), unit="passages", seed=seed
            ),
            unit="passages",
            detail=f"{large.name}; mean score {early['score'].mean():.3f} -> "
            f"{fin['score'].mean():.3f}",
        ),
    ]
    if len(by_size) > 1:
        small = _final(table, by_size[0].name)
        checks.append(
            run_check(
                f"boilerplate: memorization rises with model size ({by_size[0].model} to "
                f"{large.model}, score)",
                lambda: paired_test(
                    fin["score"].to_numpy() - small["score"].to_numpy(),
                    unit="passages",
                    seed=seed,
                ),
                unit="passages",
                detail=f"final checkpoints; mean score {small['score'].mean():.3f} -> "
                f"{fin['score'].mean():.3f}",
            )
        )
    return checks


def timing_check(canaries: pd.DataFrame, truth: dict[str, Any], run: str) -> TruthCheck:
    """Forgetting: late canaries above early ones at the last checkpoint, equal exposures.

    `canaries` has one line per scored occurrence (`canary` index, `row`, `target_loglik`) of
    `run`; exposures are the occurrences in trained rows (`truth["timing"]["trained_rows"]`)."""
    name = "timing: early canaries forgotten below late ones (equal exposures, log-lik)"
    timing = truth.get("timing")
    if not timing:
        return TruthCheck.not_testable(name, "no timing canaries in truth.json", unit="canaries")
    phase = {i: c.get("timing") for i, c in enumerate(truth["canaries"])}
    part = canaries[(canaries["run"] == run) & (canaries["row"] < timing["trained_rows"])]
    part = part[part["canary"].map(phase).notna()]
    per = part.groupby("canary").agg(loglik=("target_loglik", "mean"), exposures=("row", "size"))
    per["phase"] = per.index.map(phase)
    modal = int(per["exposures"].mode().iloc[0]) if len(per) else 0
    per = per[per["exposures"] == modal]
    late = per.loc[per["phase"] == "last_quarter", "loglik"]
    early = per.loc[per["phase"] == "first_quarter", "loglik"]
    test: Callable[[], Any] = lambda: difference_test(
        late,
        early,
        unit="canaries",
        seed=stable_seed("memorization", "timing"),
        labels=("last-quarter canaries", "first-quarter canaries"),
    )
    return run_check(
        name,
        test,
        unit="canaries",
        detail=f"{run}: {len(late)} late and {len(early)} early canaries with {modal} "
        f"trained occurrences each; late minus early target log-likelihood (nats/token)",
    )
