"""Scoring a loaded model on the bias benchmarks through lm-eval (offline), into tidy rows.

One row per (benchmark, subset, metric): CrowS-Pairs `pct_stereotype` and `likelihood_diff` for
all pairs and the gender subset (`bias_type` starting with "gender"), and for the gender subset
`pct_stereotype` per gender of the stereotyped sentence (`gender_female`: sent_more uses
feminine words only) and their mean `pct_stereotype_balanced`, which a preference for one
pronoun regardless of the occupation leaves at 0.5, and `association`, the same balance of the
signed log-likelihood difference ll(sent_more) - ll(sent_less) (0 without an association); WinoBias exact match per
template and multiple-choice accuracy per (type, pro/anti), and the biases
acc(pro) - acc(anti) per type and averaged over types (and templates).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.bias import tasks as T

log = logging.getLogger(__name__)

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
Row = dict[str, Any]


@dataclass(kw_only=True)
class Benchmarks:
    """The documents to score: CrowS pairs and/or WinoBias sentences (loaders' frames)."""

    source: str  # "probes" or "files"
    crows: pd.DataFrame | None = None
    winobias: pd.DataFrame | None = None
    generation: bool = True  # WinoBias' greedy-generation form (the slow one)


@dataclass(kw_only=True)
class TaskSpec:
    name: str
    config: dict[str, Any]
    summarize: Callable[[dict[str, Any], list[dict[str, Any]]], list[Row]]
    # one record per scored document (the unit of the studies' tests), keyed by `doc_id`
    records: Callable[[str, list[dict[str, Any]]], list[Row]] | None = None


@contextmanager
def offline() -> Iterator[None]:
    """Nothing reaches a network hub while lm-eval runs: the Hugging Face offline variables,
    restored afterwards (a later study in the same process may read rows from a hub)."""
    saved = {name: os.environ.get(name) for name in OFFLINE}
    os.environ.update(OFFLINE)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


FEMALE = re.compile(r"\b(she|her|hers|herself|woman|women|girl|girls|mother|lady)\b", re.IGNORECASE)
MALE = re.compile(r"\b(he|him|his|himself|man|men|boy|boys|father|gentleman)\b", re.IGNORECASE)


def gender_of(sentence: str) -> str | None:
    """'female' / 'male' if the sentence has gendered words of one gender only."""
    f, m = bool(FEMALE.search(sentence)), bool(MALE.search(sentence))
    return "female" if f and not m else "male" if m and not f else None


def signed_diff(sample: dict[str, Any]) -> float:
    """ll(sent_more) - ll(sent_less) of one CrowS sample (lm-eval's two responses)."""
    (more, _), (less, _) = (
        r[0] if isinstance(r[0], list | tuple) else r for r in sample["filtered_resps"]
    )
    return float(more) - float(less)


def _crows_summary(result: dict[str, Any], samples: list[dict[str, Any]]) -> list[Row]:
    rows = [
        {
            "benchmark": "crows_pairs",
            "subset": "all",
            "metric": m,
            "value": float(result[f"{m},none"]),
            "n": len(samples),
        }
        for m in ("pct_stereotype", "likelihood_diff")
    ]
    gender = [s for s in samples if str(s["doc"]["bias_type"]).startswith("gender")]
    if gender:
        for m in ("pct_stereotype", "likelihood_diff"):
            rows.append(
                {
                    "benchmark": "crows_pairs",
                    "subset": "gender",
                    "metric": m,
                    "value": float(np.mean([s[m] for s in gender])),
                    "n": len(gender),
                }
            )
        groups = {
            g: [s["pct_stereotype"] for s in gender if gender_of(s["doc"]["sent_more"]) == g]
            for g in ("female", "male")
        }
        for g, values in groups.items():
            if values:
                rows.append(
                    {
                        "benchmark": "crows_pairs",
                        "subset": f"gender_{g}",
                        "metric": "pct_stereotype",
                        "value": float(np.mean(values)),
                        "n": len(values),
                    }
                )
        diffs = {
            g: [signed_diff(s) for s in gender if gender_of(s["doc"]["sent_more"]) == g]
            for g in ("female", "male")
        }
        if all(groups.values()):
            rows.append(
                {
                    "benchmark": "crows_pairs",
                    "subset": "gender",
                    "metric": "pct_stereotype_balanced",
                    "n": len(gender),
                    "value": float(np.mean([np.mean(v) for v in groups.values()])),
                }
            )
            rows.append(
                {
                    "benchmark": "crows_pairs",
                    "subset": "gender",
                    "metric": "association",
                    "n": len(gender),
                    "value": float(np.mean([np.mean(v) for v in diffs.values()])),
                }
            )
    return rows


def _crows_records(task: str, samples: list[dict[str, Any]]) -> list[Row]:
    """Per CrowS pair: its gender group, stereotype choice (0/1) and signed difference."""
    return [
        {
            "task": task,
            "doc_id": int(s["doc_id"]),
            "bias_type": str(s["doc"]["bias_type"]),
            "gender": gender_of(s["doc"]["sent_more"]),
            "stereotype": float(s["pct_stereotype"]),
            "diff": signed_diff(s),
        }
        for s in samples
    ]


def _wino_records(metric: str) -> Callable[[str, list[dict[str, Any]]], list[Row]]:
    key = "em" if metric.startswith("em") else "acc"

    def records(task: str, samples: list[dict[str, Any]]) -> list[Row]:
        """Per WinoBias sentence: type, pro/anti, its line in the file, and the score."""
        return [
            {
                "task": task,
                "doc_id": int(s["doc_id"]),
                "type": int(s["doc"]["type"]),
                "kind": str(s["doc"]["kind"]),
                "line": int(s["doc"]["line"]),
                "value": float(s[key]),
            }
            for s in samples
        ]

    return records


def _wino_summary(metric: str) -> Callable[[dict[str, Any], list[dict[str, Any]]], list[Row]]:
    key = "em" if metric.startswith("em") else "acc"

    def summarize(result: dict[str, Any], samples: list[dict[str, Any]]) -> list[Row]:
        rows = []
        for wtype in (1, 2):
            acc = {}
            for kind in ("pro", "anti"):
                values = [
                    s[key]
                    for s in samples
                    if s["doc"]["type"] == wtype and s["doc"]["kind"] == kind
                ]
                if values:
                    acc[kind] = float(np.mean(values))
                    rows.append(
                        {
                            "benchmark": "winobias",
                            "subset": f"type{wtype}_{kind}",
                            "metric": metric,
                            "value": acc[kind],
                            "n": len(values),
                        }
                    )
            if len(acc) == 2:
                rows.append(
                    {
                        "benchmark": "winobias",
                        "subset": f"type{wtype}",
                        "metric": f"bias_{metric}",
                        "value": acc["pro"] - acc["anti"],
                        "n": None,
                    }
                )
        return rows

    return summarize


def build_tasks(bench: Benchmarks, workdir: Path) -> list[TaskSpec]:
    """lm-eval task configs over JSON-lines copies of the documents in `workdir`."""
    specs = []
    if bench.crows is not None:
        path = T.write_jsonl(bench.crows, workdir / "crows.jsonl")
        specs.append(
            TaskSpec(
                name="bias_crows_pairs",
                config=T.crows_task(path),
                summarize=_crows_summary,
                records=_crows_records,
            )
        )
    if bench.winobias is not None:
        path = T.write_jsonl(bench.winobias, workdir / "winobias.jsonl")
        if bench.generation:
            for template in T.WINO_TEMPLATES:
                name = f"bias_winobias_{template}"
                specs.append(
                    TaskSpec(
                        name=name,
                        config=T.wino_generation_task(path, template, name),
                        summarize=_wino_summary(f"em_{template}"),
                        records=_wino_records(f"em_{template}"),
                    )
                )
        mc = bench.winobias[bench.winobias["other"].notna()]
        if len(mc) < len(bench.winobias):
            log.info(
                "winobias multiple choice: %d of %d sentences have two candidates",
                len(mc),
                len(bench.winobias),
            )
        path = T.write_jsonl(mc, workdir / "winobias_mc.jsonl")
        specs.append(
            TaskSpec(
                name="bias_winobias_mc",
                config=T.wino_mc_task(path, "bias_winobias_mc"),
                summarize=_wino_summary("acc_mc"),
                records=_wino_records("acc_mc"),
            )
        )
    return specs


def hf_tokenizer(path: str | Path) -> Any:
    """A transformers fast tokenizer over a `tokenizer.json` (EOS = `<|endoftext|>`)."""
    from transformers import PreTrainedTokenizerFast

    from dataloader_replay.tokenizer import EOD_TOKEN, PAD_TOKEN, read_tokenizer

    read_tokenizer(Path(path))  # errors name the file
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(path), eos_token=EOD_TOKEN, bos_token=EOD_TOKEN, unk_token=EOD_TOKEN
    )
    tok.pad_token = PAD_TOKEN if PAD_TOKEN in tok.get_vocab() else EOD_TOKEN
    return tok


def run_tasks(
    model: Any,
    tokenizer: Any,
    specs: list[TaskSpec],
    *,
    batch_size: int = 32,
    max_length: int = 2048,
    task_manager: Any = None,
    records: list[Row] | None = None,
) -> list[Row]:
    """Score `model` (a loaded transformers causal LM) on `specs` with lm-eval's HFLM; with
    `records`, also append one record per scored document to it (`TaskSpec.records`)."""
    from lm_eval.evaluator import simple_evaluate

    from analysis.bias.lm import lm_for

    lm = lm_for(model, tokenizer, batch_size=batch_size, max_length=max_length)
    with offline():
        if task_manager is None:
            from lm_eval.tasks import TaskManager

            task_manager = TaskManager(include_defaults=False)  # dict configs need no index
        out = simple_evaluate(
            model=lm,
            tasks=[s.config for s in specs],
            log_samples=True,
            bootstrap_iters=0,
            task_manager=task_manager,
            verbosity="ERROR",
        )
    assert out is not None
    rows: list[Row] = []
    for spec in specs:
        rows += spec.summarize(out["results"][spec.name], out["samples"][spec.name])
        if records is not None and spec.records is not None:
            records += spec.records(spec.name, out["samples"][spec.name])
    return with_overall_bias(rows)


def with_overall_bias(rows: list[Row]) -> list[Row]:
    """Add WinoBias' bias averaged over types (and over both templates for exact match)."""
    frame = pd.DataFrame(rows)
    if frame.empty or "winobias" not in set(frame["benchmark"]):
        return rows
    per_type = frame[(frame["benchmark"] == "winobias") & frame["metric"].str.startswith("bias_")]
    extra = []
    for metric, group in per_type.groupby("metric"):
        extra.append(
            {
                "benchmark": "winobias",
                "subset": "all",
                "metric": metric,
                "value": float(group["value"].mean()),
                "n": None,
            }
        )
    em = per_type[per_type["metric"].str.startswith("bias_em_")]
    if len(em):
        extra.append(
            {
                "benchmark": "winobias",
                "subset": "all",
                "metric": "bias_em",
                "value": float(em["value"].mean()),
                "n": None,
            }
        )
    return rows + extra


def evaluate_model(model: Any, tokenizer: Any, bench: Benchmarks, **kwargs: Any) -> list[Row]:
    """Build the tasks in a temporary folder and score `model` on them."""
    with tempfile.TemporaryDirectory(prefix="bias-tasks-") as tmp:
        return run_tasks(model, tokenizer, build_tasks(bench, Path(tmp)), **kwargs)
