"""Few-shot accuracy across checkpoints, joined with each term's count at the checkpoint.

`evaluate` decodes every item at every (checkpoint, shot count) and returns the long table
(step, shots, task, term, item, correct, completion); `join_counts` aggregates it to accuracy
per term and adds the term's count in the rows the checkpoint has trained on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.term_frequency.decode import DecodeConfig, encode_prompts, greedy_complete
from analysis.term_frequency.prompts import Item, build_prompt, is_correct, sample_shots
from analysis.term_frequency.scan import CountResult
from suite_core import DataError

if TYPE_CHECKING:
    import pandas as pd

    from analysis.sources import Checkpoints

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class FewShotConfig:
    shots: tuple[int, ...] = (0, 2, 4, 8, 16)
    seed: int = 1234
    dtype: str = "float32"
    decode: DecodeConfig = field(default_factory=DecodeConfig)


def prompts_for(items: Sequence[Item], k: int, seed: int) -> list[str]:
    """Every item's prompt with k shots (deterministic in seed)."""
    return [build_prompt(items, i, sample_shots(items, i, k, seed=seed)) for i in range(len(items))]


def evaluate(
    ckpts: Checkpoints,
    steps: Sequence[int],
    tokenizer: Any,
    items: Sequence[Item],
    config: FewShotConfig = FewShotConfig(),
) -> pd.DataFrame:
    """The long table of completions: one row per step, shot count and item."""
    import pandas as pd

    prompts = {k: prompts_for(items, k, config.seed) for k in config.shots}
    records: list[dict[str, Any]] = []
    for step in steps:
        model = ckpts.load(step, dtype=config.dtype)
        limit = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        for k in config.shots:
            longest = max(
                len(e)
                for e in encode_prompts(tokenizer, prompts[k], prefix_eod=config.decode.prefix_eod)
            )
            if limit and longest + config.decode.max_new_tokens > limit:
                log.warning(
                    "%d-shot prompts (%d tokens) do not fit the context of %d: skipped",
                    k,
                    longest,
                    limit,
                )
                continue
            completions = greedy_complete(
                model, tokenizer, prompts[k], config.decode, desc=f"step {step}, {k}-shot"
            )
            for i, (item, text) in enumerate(zip(items, completions)):
                records.append(
                    {
                        "step": step,
                        "shots": k,
                        "task": item.task,
                        "term": item.term,
                        "item": i,
                        "correct": is_correct(item, text),
                        "completion": text,
                    }
                )
        del model
    return pd.DataFrame.from_records(
        records, columns=["step", "shots", "task", "term", "item", "correct", "completion"]
    )


def term_count_table(counts: CountResult, variants: dict[str, list[str]]) -> pd.DataFrame:
    """Long table (term, step, count): a term's count is the sum over its variants' counts."""
    import pandas as pd

    column = {term.name: t for t, term in enumerate(counts.terms)}
    rows = []
    for term, names in variants.items():
        for s, step in enumerate(counts.steps):
            rows.append(
                {
                    "term": term,
                    "step": step,
                    "count": int(sum(counts.counts[s, column[n]] for n in names)),
                }
            )
    return pd.DataFrame.from_records(rows, columns=["term", "step", "count"])


def join_counts(completions: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per (task, term, shots, step) with n items and the term's count at the step."""
    acc = completions.groupby(["task", "term", "shots", "step"], as_index=False).agg(
        accuracy=("correct", "mean"), n=("correct", "size")
    )
    out = acc.merge(counts, on=["term", "step"], how="left")
    if out["count"].isna().any():
        missing = sorted(out.loc[out["count"].isna(), "term"].unique())[:5]
        raise DataError(f"counts: no count for terms {missing}")
    out["count"] = out["count"].astype(np.int64)
    return out.sort_values(["task", "shots", "step", "term"], ignore_index=True)
