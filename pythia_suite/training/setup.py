"""Resolving a training command into a plan, and preparing (or re-opening) its run directory.

`plan_run` only reads (the data manifest, the family row): every rank can run it, and every
user error surfaces here, before anything is written. `prepare_run_dir` (rank 0 only) writes
`run.json` atomically, registers the run in the catalog, and on resume cuts `metrics.jsonl` back
to the newest complete checkpoint, which it returns.
"""

from __future__ import annotations

import dataclasses
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
from pythia_suite.training.branch import BranchPoint, link_parent, plan_branch
from pythia_suite.training.distributed import DistEnv, rank_slice
from pythia_suite.training.family import ModelConfig, get_row
from pythia_suite.training.optim import OptimConfig
from pythia_suite.training.parallel import ParallelPlan, resolve_parallel
from pythia_suite.training.precision import check_precision
from pythia_suite.training.run import (
    check_resumable,
    check_same_config,
    normalize,
    truncate_metrics,
    without_location,
    write_run_json,
)
from suite_core import ConfigError
from suite_core.layout import RUN_JSON
from suite_core.records import Manifest, RunJson

log = logging.getLogger(__name__)

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
    precision: str = "fp32"  # "fp32" | "bf16" | "fp16" (pythia_suite.training.precision)
    lr_schedule: str = "neox-v1.0"  # the Pythia recipe's; or "cosine" (training.optim)
    parallel: str | None = None  # None (auto: ddp under torchrun, else single) | "ddp" | "fsdp"
    activation_checkpointing: bool = False
    device: str = "cpu"  # "cpu" (gloo) | "cuda" (NCCL, one GPU per local rank)
    branch_from: Path | None = None  # parent RUN of an intervention branch (training/branch.py)
    branch_step: int | None = None  # the parent's checkpoint the branch continues from
    intervention: str | None = None  # "pronoun-swap"


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
    precision: str
    config: dict[str, Any]  # what run.json holds
    parallel: ParallelPlan = dataclasses.field(default_factory=ParallelPlan)
    branch: BranchPoint | None = None  # set for an intervention branch

    def checkpoint_source(self, step: int) -> Path:
        """The RUN directory whose `checkpoints/stepN` holds `step` (the parent's up to a
        branch point)."""
        if self.branch is not None and step <= self.branch.step:
            return self.branch.parent
        return self.run_dir

    def data_batch(self, step: int) -> np.ndarray:
        """The global batch at `step` as the model sees it (transform applied)."""
        return apply_transform(self.transform, self.data.checked_batch(step), step)


def default_rule(row: ModelConfig, steps: int) -> str:
    """Pythia rows: Pythia's `log+every:1000`; CPU rows: `log+every:max(1, steps // 10)`."""
    if row.published:
        return "log+every:1000"
    return f"log+every:{max(1, steps // CPU_CHECKPOINTS)}"


def resolve_model(name: str, manifest: Manifest, seed: int | None) -> ModelConfig:
    try:
        row = get_row(name)
    except ValueError as exc:
        raise ConfigError(f"--model: {exc}") from None
    try:
        cfg = row.with_vocab(manifest.vocab_size)
    except ValueError as exc:
        raise ConfigError(f"{manifest.path}: field {exc}") from None  # exc: "vocab_size: ..."
    if cfg.vocab_size is None or manifest.vocab_size > cfg.vocab_size:
        raise ConfigError(
            f"{manifest.path}: field 'vocab_size': the data's vocabulary ({manifest.vocab_size}) "
            f"exceeds {name}'s padded vocabulary ({cfg.vocab_size})"
        )
    try:
        cfg = cfg.with_seq_length(manifest.seq_length)
    except ValueError as exc:
        raise ConfigError(f"{manifest.path}: field {exc} (--model {name})") from None
    return replace(cfg, init_seed=cfg.init_seed if seed is None else seed)


def _data_section(data: TrainData, transform: dict[str, Any] | None) -> dict[str, Any]:
    """run.json's `data`: where the data is, and what it is (its manifest's fingerprint)."""
    assert data.manifest is not None and data.directory is not None
    return {
        "path": str(data.directory),  # where it was; resuming compares the fingerprint, not this
        "manifest": data.manifest.content(),
        "fingerprint": data.manifest.fingerprint,
        "transform": transform,
    }


def _check_steps(steps: int, data: TrainData) -> None:
    if steps < 1:
        raise ConfigError(f"--steps: must be >= 1, got {steps}")
    if steps > data.num_steps:
        raise ConfigError(
            f"{data.name}: the data holds {data.num_steps} steps of {data.batch_size} rows; "
            f"--steps asks for {steps}"
        )


def plan_run(config: TrainConfig, env: DistEnv) -> Plan:
    """Resolve `config` (read-only); `ValueError`/`FileNotFoundError` for every user error."""
    data_dir = Path(config.data).absolute()
    manifest = Manifest.read(data_dir)
    model = resolve_model(config.model, manifest, config.seed)
    data = TrainData.open(data_dir)
    steps = manifest.steps if config.steps is None else config.steps
    _check_steps(steps, data)
    parallel = resolve_parallel(
        parallel=config.parallel, device=config.device, precision=config.precision,
        activation_checkpointing=config.activation_checkpointing, env=env,
    )  # fmt: skip
    rank_slice(data.batch_size, env)  # the process count must divide the batch
    check_precision(config.precision, config.device)
    validate_transform(config.transform)
    model = replace(model, train_steps=steps, batch_size=data.batch_size)
    optim = OptimConfig(
        lr=model.lr, min_lr_ratio=model.min_lr_ratio, warmup=model.warmup_fraction,
        betas=model.adam_betas, eps=model.adam_eps, weight_decay=model.weight_decay,
        grad_clip=model.grad_clip, lr_schedule=config.lr_schedule,
    )  # fmt: skip
    rule = config.checkpoints or default_rule(model, steps)
    schedule = checkpoint_steps(rule, steps)
    run_config: dict[str, Any] = {
        "steps": steps,
        "seed": model.init_seed,
        "data_seed": manifest.seed,
        "batch_size": data.batch_size,
        "seq_length": data.seq_length,
        "checkpoints": {"rule": rule, "steps": schedule},
        "data": _data_section(data, config.transform),
        "model": model.to_dict(),
        "optim": optim.to_dict(),
        "precision": config.precision,
        "parallel": parallel.to_dict(),
    }
    transform, branch = config.transform, None
    if config.branch_from is not None:
        branch, transform, fields = plan_branch(
            parent=config.branch_from,
            step=config.branch_step,
            intervention=config.intervention,
            run_config=normalize(run_config),
            transform=config.transform,
        )
        run_config["data"]["transform"] = transform
        run_config.update(fields)
    elif config.branch_step is not None or config.intervention is not None:
        raise ConfigError("--branch-from: required with --branch-step / --intervention")
    return Plan(
        run_dir=Path(config.out).absolute(), model=model, optim=optim, steps=steps,
        batch_size=data.batch_size, seq_length=data.seq_length, checkpoint_rule=rule,
        checkpoint_steps=frozenset(schedule), world_size=env.world_size, resume=config.resume,
        data=data, transform=transform, precision=config.precision,
        config=normalize(run_config), parallel=parallel, branch=branch,
    )  # fmt: skip


def _data_moved(old: RunJson, config: dict[str, Any]) -> bool:
    """The same data (same fingerprint) now reached by another path: run.json is updated."""
    if str(old.data.path) == config["data"]["path"]:
        return False
    log.info(
        "%s: data moved from %s to %s (same fingerprint); recording the new path",
        old.run_dir,
        old.data.path,
        config["data"]["path"],
    )
    return True


def prepare_run_dir(plan: Plan) -> int:
    """Create or re-open RUN; returns the checkpoint step to resume from, or -1 (fresh)."""
    run_dir = plan.run_dir
    has_run_json = (run_dir / RUN_JSON).is_file()
    if not plan.resume and run_dir.exists():
        raise FileExistsError(
            f"{run_dir}: run directory already exists (pass --resume to continue it, or use a new --out)"
        )
    old = RunJson.read(run_dir) if has_run_json else None
    if old is not None:
        assert plan.data.manifest is not None
        old.check_data(plan.data.manifest)  # names data.fingerprint and the manifest's field
        check_same_config(old, plan.config)
        check_resumable(run_dir)
    elif (run_dir / "checkpoints").exists():
        raise ConfigError(
            f"{run_dir}: has checkpoints but no {RUN_JSON}; not a run directory this command can resume"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    if old is None or _data_moved(old, plan.config):
        write_run_json(run_dir, plan.config, overwrite=has_run_json)
    with Catalog.open(run_dir) as catalog:
        catalog.register_run(
            model=plan.model.name, variant=plan.model.variant, data_seed=plan.config["data_seed"],
            weight_seed=plan.model.init_seed, config=without_location(plan.config),
        )  # fmt: skip
        clean_stale(run_dir)
    if plan.branch is not None:
        link_parent(run_dir, plan.branch)
    with Catalog.open(run_dir) as catalog:
        latest = catalog.latest_complete()
    start = -1 if latest is None else latest.step
    if plan.branch is not None:
        start = max(start, plan.branch.step)
    truncate_metrics(run_dir, max(start, 0))
    if start >= 0:
        log.info("%s: continuing from checkpoint step%d", run_dir, start)
    return start
