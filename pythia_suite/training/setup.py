"""Resolving a training command into a plan, and preparing (or re-opening) its run directory.

`plan_run` only reads (the data manifest, the family row): every rank can run it, and every
user error surfaces here, before anything is written. `prepare_run_dir` (rank 0 only) writes
`run.json` atomically, registers the run in the catalog, and on resume cuts `metrics.jsonl` back
to the newest complete checkpoint, which it returns.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from checkpoints_index.catalog import Catalog
from checkpoints_index.schedule import checkpoint_steps
from checkpoints_index.store import clean_stale
from dataloader_replay.replay import TrainData
from dataloader_replay.transforms import apply_transform, validate_transform
from pythia_suite.training.distributed import DistEnv, rank_slice
from pythia_suite.training.family import ModelConfig, get_row
from pythia_suite.training.optim import OptimConfig
from pythia_suite.training.run import (
    RUN_JSON,
    check_same_config,
    file_sha256,
    normalize,
    truncate_metrics,
    write_run_json,
)
from suite_errors import ConfigError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CPU_CHECKPOINTS = 10  # CPU rows: 'log+every:K' with K = steps // 10 (about 10 evenly spaced)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """What `pythia-suite train` asks for (None: the default of the row or the data)."""

    model: str
    data: Path
    out: Path
    steps: int | None = None  # default: the data's manifest["steps"]
    seed: int | None = None  # weight-init seed; default: the row's (1234)
    checkpoints: str | None = None  # checkpoint rule; default: default_rule(row, steps)
    resume: bool = False
    transform: dict[str, Any] | None = None  # an intervention applied to every batch
    threads: int | None = None  # torch CPU threads; default: cores / local processes


@dataclass(frozen=True, kw_only=True)
class Plan:
    """A resolved training run (identical on every rank)."""

    run_dir: Path
    model: ModelConfig
    optim: OptimConfig
    steps: int
    batch_size: int
    seq_length: int
    checkpoint_rule: str
    checkpoint_steps: frozenset[int]
    world_size: int
    resume: bool
    data: TrainData
    transform: dict[str, Any] | None
    config: dict[str, Any]  # what run.json holds

    def data_batch(self, step: int) -> np.ndarray:
        """The global batch at `step` as the model sees it (transform applied)."""
        return apply_transform(self.transform, self.data.batch(step), step)


def default_rule(row: ModelConfig, steps: int) -> str:
    """Pythia rows: Pythia's `log+every:1000`; CPU rows: `log+every:max(1, steps // 10)`."""
    if row.published:
        return "log+every:1000"
    return f"log+every:{max(1, steps // CPU_CHECKPOINTS)}"


def read_manifest(data_dir: Path) -> dict[str, Any]:
    path = data_dir / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (not a prepared data directory; run `pythia-suite prepare`)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    for field in ("vocab_size", "seq_length", "batch_size", "steps", "seed"):
        if not isinstance(manifest.get(field), int):
            raise ValueError(f"{path}: field '{field}' missing or not an integer")
    return manifest


def resolve_model(name: str, manifest: dict[str, Any], manifest_path: Path, seed: int | None) -> ModelConfig:
    try:
        row = get_row(name)
    except ValueError as exc:
        raise ValueError(f"--model: {exc}") from None
    try:
        cfg = row.with_vocab(manifest["vocab_size"])
    except ValueError as exc:
        raise ConfigError(f"{manifest_path}: field {exc}") from None  # exc: "vocab_size: ..."
    if cfg.vocab_size is None or manifest["vocab_size"] > cfg.vocab_size:
        raise ValueError(
            f"{manifest_path}: field 'vocab_size': the data's vocabulary ({manifest['vocab_size']}) "
            f"exceeds {name}'s padded vocabulary ({cfg.vocab_size})"
        )
    try:
        cfg = cfg.with_seq_length(manifest["seq_length"])
    except ValueError as exc:
        raise ConfigError(f"{manifest_path}: field {exc} (--model {name})") from None
    return replace(cfg, init_seed=cfg.init_seed if seed is None else seed)


def plan_run(config: TrainConfig, env: DistEnv) -> Plan:
    """Resolve `config` (read-only); `ValueError`/`FileNotFoundError` for every user error."""
    data_dir = Path(config.data).absolute()
    manifest = read_manifest(data_dir)
    model = resolve_model(config.model, manifest, data_dir / MANIFEST, config.seed)
    data = TrainData.open(data_dir)
    steps = manifest["steps"] if config.steps is None else config.steps
    if steps < 1:
        raise ValueError(f"--steps: must be >= 1, got {steps}")
    if steps > data.num_steps:
        raise ValueError(
            f"{data_dir}: the data holds {data.num_steps} steps of {data.batch_size} rows; "
            f"--steps asks for {steps}"
        )
    rank_slice(data.batch_size, env)  # the process count must divide the batch
    validate_transform(config.transform)
    model = replace(model, train_steps=steps, batch_size=data.batch_size)
    optim = OptimConfig(
        lr=model.lr, min_lr_ratio=model.min_lr_ratio, warmup=model.warmup_fraction,
        betas=model.adam_betas, eps=model.adam_eps, weight_decay=model.weight_decay,
        grad_clip=model.grad_clip,
    )  # fmt: skip
    rule = config.checkpoints or default_rule(model, steps)
    schedule = checkpoint_steps(rule, steps)
    run_config = {
        "steps": steps,
        "seed": model.init_seed,
        "data_seed": manifest["seed"],
        "batch_size": data.batch_size,
        "seq_length": data.seq_length,
        "checkpoints": {"rule": rule, "steps": schedule},
        "data": {
            "path": str(data_dir),
            "manifest_sha256": file_sha256(data_dir / MANIFEST),
            "transform": config.transform,
        },
        "model": model.to_dict(),
        "optim": optim.to_dict(),
    }
    return Plan(
        run_dir=Path(config.out).absolute(), model=model, optim=optim, steps=steps,
        batch_size=data.batch_size, seq_length=data.seq_length, checkpoint_rule=rule,
        checkpoint_steps=frozenset(schedule), world_size=env.world_size, resume=config.resume,
        data=data, transform=config.transform, config=normalize(run_config),
    )  # fmt: skip


def prepare_run_dir(plan: Plan) -> int:
    """Create or re-open RUN; returns the checkpoint step to resume from, or -1 (fresh)."""
    run_dir = plan.run_dir
    has_run_json = (run_dir / RUN_JSON).is_file()
    if not plan.resume and run_dir.exists():
        raise FileExistsError(f"{run_dir}: run directory already exists (pass --resume to continue it, or use a new --out)")
    if has_run_json:
        check_same_config(run_dir, plan.config)
    elif (run_dir / "checkpoints").exists():
        raise ValueError(f"{run_dir}: has checkpoints but no {RUN_JSON}; not a run directory this command can resume")
    run_dir.mkdir(parents=True, exist_ok=True)
    if not has_run_json:
        write_run_json(run_dir, plan.config)
    with Catalog.open(run_dir) as catalog:
        catalog.register_run(
            model=plan.model.name, variant=plan.model.variant, data_seed=plan.config["data_seed"],
            weight_seed=plan.model.init_seed, config=plan.config,
        )  # fmt: skip
        clean_stale(run_dir)
        latest = catalog.latest_complete()
    start = -1 if latest is None else latest.step
    truncate_metrics(run_dir, max(start, 0))
    if start >= 0:
        log.info("%s: continuing from checkpoint step%d", run_dir, start)
    return start
