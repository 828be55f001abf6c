"""Bias benchmarks (and any lm-eval task) across the checkpoints of a run, into HDF5 + pandas.

One tidy row per (run, step, benchmark, subset, metric) with the fraction of training and the
checkpoint's sha256. Checkpoints with the same sha256 are scored once (a branch run's catalog
lists its parent's checkpoints up to the branch step: same hashes, same numbers).

HDF5 layout (`write_h5`): one group per run, `/RUN/steps` (int64), `/RUN/sha256` (str),
`/RUN/BENCHMARK/SUBSET/METRIC` (float64 [len(steps)], NaN where not measured); attributes on the
run group: `path`, `total_steps`, `data_fingerprint`, `config` (JSON); on the file: `config`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from analysis.bias.evaluate import Benchmarks, Row, build_tasks, hf_tokenizer, run_tasks
from analysis.sources import (
    Checkpoints,
    attrs_json,
    open_checkpoints,
)
from suite_core import DataError
from suite_core.atomic import atomic_path
from suite_core.layout import RunLayout
from suite_core.records import RunJson

log = logging.getLogger(__name__)

COLUMNS = ["run", "step", "fraction", "sha256", "benchmark", "subset", "metric", "value", "n"]


@dataclass(kw_only=True)
class RunInfo:
    """What the results need to know about a run (or a folder of HF checkpoints)."""

    name: str
    path: Path
    checkpoints: Checkpoints
    total_steps: int
    tokenizer_path: Path | None
    fingerprint: str | None
    config: dict[str, Any] = field(default_factory=dict)


def run_info(
    path: str | Path,
    *,
    name: str | None = None,
    step: int | None = None,
    tokenizer: str | Path | None = None,
) -> RunInfo:
    """Checkpoints, length and tokenizer of a RUN (or HF folders); errors name the path."""
    path = Path(path)
    ckpts = open_checkpoints(path, step=step)
    run = RunJson.read(path) if RunLayout(path).is_run() else None
    total = (run.steps if run is not None else None) or max(ckpts.steps) or 1
    tok = Path(tokenizer) if tokenizer is not None else None
    if tok is None and run is not None:
        tok = run.data_path / "tokenizer.json"
    if tok is None:
        candidate = ckpts.folder(ckpts.steps[-1]) / "tokenizer.json"
        tok = candidate if candidate.is_file() else None
    if tok is None:
        raise FileNotFoundError(f"{path}: no tokenizer.json found (pass --tokenizer FILE)")
    return RunInfo(
        name=name or path.name,
        path=path,
        checkpoints=ckpts,
        total_steps=total,
        tokenizer_path=tok,
        fingerprint=run.data_fingerprint if run is not None else None,
        config=run.to_dict() if run is not None else {},
    )


def pick_steps(available: list[int], steps: list[int] | None) -> list[int]:
    """`steps` (each must exist), or every available step."""
    if steps is None:
        return list(available)
    missing = [s for s in steps if s not in available]
    if missing:
        raise DataError(
            f"--steps: no checkpoint at step {missing[0]} "
            f"(available: {', '.join(map(str, available))})"
        )
    return sorted(set(steps))


Scorer = Callable[[Any, Any], list[Row]]


def across_checkpoints(
    info: RunInfo,
    score: Scorer,
    *,
    steps: list[int] | None = None,
    cache: dict[str, list[Row]] | None = None,
    dtype: str = "float32",
) -> pd.DataFrame:
    """`score(model, tokenizer)` at each selected checkpoint; tidy frame (COLUMNS)."""
    cache = {} if cache is None else cache
    tokenizer = hf_tokenizer(info.tokenizer_path) if info.tokenizer_path else None
    out = []
    for step in tqdm(
        pick_steps(info.checkpoints.steps, steps),
        desc=f"bias {info.name}",
        unit="ckpt",
        disable=None,
    ):
        sha = info.checkpoints.sha256(step)
        if sha not in cache:
            model = info.checkpoints.load(step, dtype=dtype)
            cache[sha] = score(model, tokenizer)
        for row in cache[sha]:
            out.append(
                {
                    "run": info.name,
                    "step": step,
                    "fraction": step / info.total_steps,
                    "sha256": sha,
                    **row,
                }
            )
    frame = pd.DataFrame(out, columns=COLUMNS)
    return frame


def bias_scorer(bench: Benchmarks, workdir: Path, **kwargs: Any) -> Scorer:
    """Score the bias benchmarks (task files written once into `workdir`).

    The scorer takes an optional `records` list that receives one record per scored document.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    specs = build_tasks(bench, workdir)
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_defaults=False)

    def score(model: Any, tok: Any, records: list[Row] | None = None) -> list[Row]:
        return run_tasks(model, tok, specs, task_manager=manager, records=records, **kwargs)

    return score


def write_h5(
    frame: pd.DataFrame,
    runs: list[RunInfo],
    path: Path,
    *,
    config: dict[str, Any],
    overwrite: bool = True,
) -> Path:
    """The tidy frame as arrays indexed by step, one group per run (layout: module doc)."""
    import h5py

    with atomic_path(Path(path), overwrite=overwrite) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["config"] = attrs_json(config)
        for info in runs:
            part = frame[frame["run"] == info.name]
            steps = sorted(set(part["step"]))
            group = h5.create_group(info.name)
            group.attrs.update(
                {
                    "path": str(info.path),
                    "total_steps": info.total_steps,
                    "data_fingerprint": info.fingerprint or "",
                    "config": attrs_json(info.config),
                }
            )
            group["steps"] = np.asarray(steps, dtype=np.int64)
            shas = part.drop_duplicates("step").set_index("step")["sha256"]
            group["sha256"] = np.asarray([shas[s] for s in steps], dtype="S64")
            index = {s: i for i, s in enumerate(steps)}
            for (bench, subset, metric), rows in part.groupby(["benchmark", "subset", "metric"]):
                values = np.full(len(steps), np.nan)
                values[[index[s] for s in rows["step"]]] = rows["value"].to_numpy(float)
                group[f"{bench}/{subset}/{metric}"] = values
    return Path(path)


def read_h5(path: str | Path) -> pd.DataFrame:
    """The tidy frame back from `write_h5`'s file."""
    import h5py

    out = []
    with h5py.File(path, "r") as h5:
        for run, group in h5.items():
            steps = group["steps"][()]
            shas = [s.decode() for s in group["sha256"][()]]
            total = int(group.attrs["total_steps"])

            def visit(
                name: str,
                obj: Any,
                run: str = run,
                steps: Any = steps,
                shas: list[str] = shas,
                total: int = total,
            ) -> None:
                parts = name.split("/")
                if len(parts) != 3 or not hasattr(obj, "shape"):
                    return
                for i, value in enumerate(obj[()]):
                    if not np.isnan(value):
                        out.append(
                            {
                                "run": run,
                                "step": int(steps[i]),
                                "fraction": int(steps[i]) / total,
                                "sha256": shas[i],
                                "benchmark": parts[0],
                                "subset": parts[1],
                                "metric": parts[2],
                                "value": float(value),
                                "n": None,
                            }
                        )

            group.visititems(visit)
    return pd.DataFrame(out, columns=COLUMNS)
