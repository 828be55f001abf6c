"""Scoring checkpoints x rows into one results file (the I/O edge around `score.score_rows`).

Rows are cut into fixed batches of `batch_size` (the same batches whatever the process count);
under `torchrun --nproc_per_node K` rank r scores batches r, r + K, ... and rank 0 gathers
and writes, so the file is identical to a single-process run.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from analysis.memorization.results import MemResults, write_results
from analysis.memorization.sample import stratified_rows
from analysis.memorization.score import ScoreConfig, score_rows
from analysis.sources import (
    DTYPES,
    Checkpoints,
    Rows,
    data_fingerprint,
    open_checkpoints,
    open_rows,
    seen_before,
)
from analysis.steps import parse_steps
from suite_core import DataError
from suite_core.layout import MANIFEST, RunLayout
from suite_core.records import Manifest, RunJson

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class MemConfig:
    """What `pythia-suite analyze memorization` asks for."""

    out: Path
    run: Path | None = None  # a RUN (checkpoints and rows)
    model: Path | None = None  # or one HF folder / a DIR of stepN folders ...
    data: Path | None = None  # ... with its data (DIR or bare .bin/.idx prefix); with RUN: check
    step: int | None = None  # the step of a single HF folder
    steps: str | None = None  # "0,1000,..." | "all" (None: all)
    rows: int | None = 1024  # None: every row
    seed: int = 0
    k: int = 32
    target: int = 32
    batch_size: int = 128  # rows per forward pass
    data_batch_size: int | None = None  # B of a bare prefix (default 1024)
    dtype: str = "float32"
    threads: int | None = None
    overwrite: bool = False


@dataclass(frozen=True, kw_only=True)
class Inputs:
    ckpts: Checkpoints
    rows: Rows
    steps: list[int]
    row_ids: np.ndarray


def open_inputs(cfg: MemConfig) -> Inputs:
    """Resolve and check every input (read-only): all user errors surface here."""
    if cfg.dtype not in DTYPES:
        raise DataError(f"--dtype: unknown {cfg.dtype!r} (choose from {', '.join(DTYPES)})")
    if cfg.batch_size < 1:
        raise DataError(f"--batch-size: must be a positive integer, got {cfg.batch_size}")
    if (cfg.run is None) == (cfg.model is None):
        raise DataError("RUN: give a run directory, or --model DIR with --data PATH")
    if cfg.run is not None:
        ckpts = open_checkpoints(cfg.run)
        rows = open_rows(cfg.run, batch_size=cfg.data_batch_size)
        if cfg.data is not None:
            check_run_data(Path(cfg.run), Path(cfg.data))
        check_run_data(Path(cfg.run), None)
    else:
        if cfg.data is None:
            raise DataError("--data: needed with --model (a data directory or .bin/.idx prefix)")
        ckpts = open_checkpoints(cfg.model, step=cfg.step)  # type: ignore[arg-type]
        rows = open_rows(cfg.data, batch_size=cfg.data_batch_size)
    ScoreConfig(k=cfg.k, target=cfg.target).check(rows.seq_length + 1, where=_name(rows))
    steps = parse_steps(cfg.steps, ckpts.steps)
    for s in steps:
        rows.check_step(s, "step", seen=True)
    row_ids = stratified_rows(rows.num_rows, cfg.rows, seed=cfg.seed)
    return Inputs(ckpts=ckpts, rows=rows, steps=steps, row_ids=row_ids)


def check_run_data(run: Path, data: Path | None) -> None:
    """DataError naming run.json's `data.fingerprint` if the data (`data`, else the run's own)
    is not the data the run was trained on."""
    if not RunLayout(run).is_run():  # fetched checkpoints: their rows.json names the rows
        return
    config = RunJson.read(run)
    path = Path(data) if data is not None else config.data_path
    if not (path / MANIFEST).is_file():
        if data is not None:
            raise DataError(
                f"{path}: field 'fingerprint': not a prepared data directory of the run {run}"
            )
        return
    config.check_data(Manifest.read(path))


def check_vocab(folder: Path, tokens: np.ndarray) -> None:
    """ValueError if the model's vocabulary cannot hold the data's largest token id."""
    where = Path(folder) / "config.json"
    try:
        vocab = int(json.loads(where.read_text())["vocab_size"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise DataError(f"{where}: field 'vocab_size': missing or not an integer") from None
    top = int(tokens.max()) if tokens.size else 0
    if top >= vocab:
        raise DataError(
            f"{where}: field 'vocab_size': {vocab} is smaller than the "
            f"data's largest token id ({top})"
        )


def score_memorization(cfg: MemConfig) -> Path:
    """Score every (step, row) and write the HDF5 file `cfg.out` (rank 0 under torchrun)."""
    rank, world = _dist_env()
    inputs = open_inputs(cfg)
    if rank == 0 and Path(cfg.out).exists() and not cfg.overwrite:
        raise FileExistsError(f"{cfg.out}: output already exists (remove it or pass --overwrite)")
    _join(world, rank)
    try:
        torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // world))
        res = _score(cfg, inputs, rank, world)
        if rank == 0:
            write_results(Path(cfg.out), res, overwrite=cfg.overwrite)
            log.info("%s: %d steps x %d rows", cfg.out, len(res.steps), len(res.rows))
    finally:
        _leave(world)
    return Path(cfg.out)


def _score(cfg: MemConfig, inp: Inputs, rank: int, world: int) -> MemResults:
    sc = ScoreConfig(k=cfg.k, target=cfg.target)
    tokens = _gather_rows(inp.rows, inp.row_ids)
    n_s, n_r = len(inp.steps), len(inp.row_ids)
    out = {a: np.zeros((n_s, n_r), dtype=np.float32) for a in ("scores", "loglik", "token_acc")}
    batches = [slice(lo, min(lo + cfg.batch_size, n_r)) for lo in range(0, n_r, cfg.batch_size)]
    mine = batches[rank::world]
    bar = tqdm(
        total=n_s * sum(b.stop - b.start for b in mine),
        unit="row",
        disable=None,
        desc=f"memorization (rank {rank})" if world > 1 else "memorization",
    )
    started, done = time.perf_counter(), 0
    for step in inp.steps:
        check_vocab(inp.ckpts.folder(step), tokens)
    for i, step in enumerate(inp.steps):
        model = inp.ckpts.load(step, dtype=cfg.dtype)
        for b in mine:
            r = score_rows(model, tokens[b], sc)
            out["scores"][i, b], out["loglik"][i, b], out["token_acc"][i, b] = (
                r.scores,
                r.loglik,
                r.token_acc,
            )
            bar.update(b.stop - b.start)
            done += b.stop - b.start
        del model
    bar.close()
    elapsed = time.perf_counter() - started
    log.info("scored %d cells in %.1fs (%.1f rows/s)", done, elapsed, done / max(elapsed, 1e-9))
    if world > 1:
        out = _gather(out)
    seen = np.stack([seen_before(inp.row_ids, s, inp.rows.batch_size) for s in inp.steps])
    attrs = _attrs(cfg, inp)
    return MemResults(
        steps=np.asarray(inp.steps, dtype=np.int64), rows=inp.row_ids, seen=seen, **out, attrs=attrs
    )


def _gather_rows(rows: Rows, ids: np.ndarray) -> np.ndarray:
    """Rows `ids` (sorted) read in runs of consecutive indices."""
    if len(ids) == 0:
        return np.zeros((0, rows.seq_length + 1), dtype=np.int64)
    breaks = np.flatnonzero(np.diff(ids) != 1) + 1
    parts = [rows.rows(int(run[0]), int(run[-1]) + 1) for run in np.split(ids, breaks)]
    return np.concatenate(parts).astype(np.int64)


def _attrs(cfg: MemConfig, inp: Inputs) -> dict[str, Any]:
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    config.pop("overwrite")
    config.pop("out")  # the file itself: the same results wherever they are written
    return {
        "config": json.dumps(config, sort_keys=True),
        "k": cfg.k,
        "target": cfg.target,
        "dtype": cfg.dtype,
        "batch_size": int(inp.rows.batch_size),
        "model": inp.ckpts.name,
        "sha256": json.dumps([inp.ckpts.sha256(s) for s in inp.steps]),
        "data_fingerprint": data_fingerprint(inp.rows),
        "data": _name(inp.rows),
    }


def _name(rows: Rows) -> str:
    data = getattr(rows, "data", rows)
    return str(getattr(data, "name", "rows"))


def _dist_env() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ["RANK"]), world) if world > 1 else (0, 1)


def _join(world: int, rank: int) -> None:
    import torch.distributed as dist

    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="gloo", rank=rank, world_size=world)


def _leave(world: int) -> None:
    import torch.distributed as dist

    if world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def _gather(out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every rank's batches into every rank's arrays (summed: each cell has one owner)."""
    import torch.distributed as dist

    merged = {}
    for name, arr in out.items():
        t = torch.from_numpy(arr.astype(np.float64))  # exact sum of float32 values and zeros
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        merged[name] = t.numpy().astype(np.float32)
    return merged
