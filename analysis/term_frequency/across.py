"""The few-shot study end to end on one run: items -> counts of their terms -> decoding at each
checkpoint -> accuracy joined with counts (pandas), optionally saved as HDF5."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.sources import open_checkpoints, open_rows
from analysis.term_frequency.fewshot import FewShotConfig, evaluate, join_counts, term_count_table
from analysis.term_frequency.prompts import Item, arithmetic_items, fact_items, get_format
from analysis.term_frequency.results import check_output, write_fewshot
from analysis.term_frequency.scan import CountConfig, CountResult, count_terms
from analysis.term_frequency.terms import text_term, unique_terms
from dataloader_replay.tokenizer import read_tokenizer
from suite_core import DataError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

TASKS = ("facts", "arithmetic")
TOKENIZER = "tokenizer.json"


@dataclass(frozen=True, kw_only=True)
class ItemsConfig:
    """Which questions: fact recall (needs truth.json) and arithmetic x1 op x2."""

    tasks: tuple[str, ...] = TASKS
    format: str = "corpus"  # "pythia" for Pythia's own prompts
    ops: tuple[str, ...] = ("plus",)
    x1: tuple[int, ...] = tuple(range(100))
    x2: tuple[int, ...] = tuple(range(1, 51))
    max_answer: int | None = 99  # the embedded corpus's answers stay in 0..99; None: no limit


@dataclass(kw_only=True)
class FewShotResult:
    joined: pd.DataFrame  # task, term, shots, step, accuracy, n, count
    completions: pd.DataFrame
    counts: CountResult
    path: Path | None = None
    sha256: dict[int, str] = field(default_factory=dict)


def make_items(config: ItemsConfig, truth: dict[str, Any] | None) -> list[Item]:
    items: list[Item] = []
    for task in config.tasks:
        if task == "facts":
            if truth is None:
                raise DataError("--tasks: 'facts' needs the corpus's truth.json (--truth)")
            items += fact_items(truth)
        elif task == "arithmetic":
            fmt = get_format(config.format)
            for op in config.ops:
                items += arithmetic_items(
                    config.x1, config.x2, op=op, fmt=fmt, max_answer=config.max_answer
                )
        else:
            raise DataError(f"--tasks: unknown task {task!r} (choose from {', '.join(TASKS)})")
    if not items:
        raise DataError("--tasks: no items to evaluate")
    return items


def term_variants(items: Sequence[Item]) -> dict[str, list[str]]:
    """Texts counted for each term: numbers after a space (` 42`, as questions write them);
    entity names after a space and bare (at the start of a document or line)."""
    out: dict[str, list[str]] = {}
    for item in items:
        if item.term not in out:
            bare = item.term.isdigit() or item.task.startswith("arithmetic")
            out[item.term] = [" " + item.term] if bare else [" " + item.term, item.term]
    return out


def find_tokenizer(run: Path, given: Path | None) -> Path:
    if given is not None:
        return given
    for candidate in (run / TOKENIZER, _data_dir(run) / TOKENIZER):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{run}: no {TOKENIZER} in the run's data directory (give --tokenizer FILE)"
    )


def _data_dir(run: Path) -> Path:
    rows = open_rows(run)
    data = getattr(rows, "data", rows)
    return Path(getattr(data, "directory", None) or run)


def run_fewshot(
    run: Path,
    *,
    truth: dict[str, Any] | None,
    steps: Sequence[int] | None,
    items_config: ItemsConfig | None = None,
    fewshot: FewShotConfig | None = None,
    data: Path | None = None,
    tokenizer: Path | None = None,
    out: Path | None = None,
    processes: int = 1,
) -> FewShotResult:
    """Accuracy per term, shot count and checkpoint of `run`, joined with counts in `data`
    (default: the run's own rows)."""
    run = Path(run)
    items_config = items_config or ItemsConfig()
    fewshot = fewshot or FewShotConfig()
    check_output(out)
    ckpts = open_checkpoints(run)
    steps = sorted(set(ckpts.steps if steps is None else steps))
    for s in steps:
        ckpts.folder(s)
    tok = read_tokenizer(find_tokenizer(run, tokenizer))
    items = make_items(items_config, truth)
    variants = term_variants(items)
    terms = unique_terms(
        text_term(v, tok, where=f"term {t!r}") for t, vs in variants.items() for v in vs
    )
    counts = count_terms(data or run, terms, CountConfig(steps=tuple(steps), processes=processes))
    completions = evaluate(ckpts, steps, tok, items, fewshot)
    joined = join_counts(completions, term_count_table(counts, variants))
    sha = {s: ckpts.sha256(s) for s in steps}
    result = FewShotResult(joined=joined, completions=completions, counts=counts, sha256=sha)
    if out is not None:
        config = {
            "run": str(run),
            "steps": steps,
            "items": asdict(items_config),
            "fewshot": asdict(fewshot),
        }
        result.path = write_fewshot(joined, completions, counts, out, config=config, sha256=sha)
    return result
