"""The optimizer side of a Pythia row: AdamW hyperparameters, parameter groups, the LR schedule.

Faithful to GPT-NeoX (the code Pythia was trained with):

- `get_params_for_weight_decay_optimization`: every parameter of a LayerNorm module and every
  parameter named `bias` goes to a group with weight decay 0; all other parameters (linear
  weights, embeddings, the unembedding) are decayed.
- `AnnealingLR`: constructed at iteration 0 and stepped *after* every optimizer step, so update
  `n` (1-based) uses the schedule's value at `n - 1` completed updates. The warmup is linear from
  0 (update 1 has lr 0) over `warmup * steps` iterations (a float, as in GPT-NeoX).

Two decay styles after the warmup, chosen by `OptimConfig.lr_schedule`:

- "neox-v1.0" (the Pythia recipe): GPT-NeoX v1.0's cosine, the code Pythia was trained with:
  `peak / 2 * (cos(pi * (min(n, T - W) - W) / T) + 1)`, then `max(lr, min_lr)`. The cosine's
  period is the whole run T (not T - W) and it starts at 0, so the rate falls to min_lr at about
  80% of the run (update 115,140 of Pythia's 143,000) and stays flat after.
- "cosine": GPT-NeoX's later (2023) cosine, `min + (peak - min) / 2 * (cos(pi * (n - W) / (T - W))
  + 1)`, reaching min_lr exactly at the last update.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from suite_core import ConfigError

LR_SCHEDULES = ("neox-v1.0", "cosine")


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    """AdamW + schedule hyperparameters (Pythia's values by default)."""

    lr: float
    min_lr_ratio: float = 0.1  # cosine ends at 10% of the peak
    warmup: float = 0.01  # fraction of the run's steps
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    lr_schedule: str = "neox-v1.0"  # or "cosine"; see the module docstring

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"--lr-schedule: unknown schedule {self.lr_schedule!r} (known: {', '.join(LR_SCHEDULES)})"
            )

    @property
    def min_lr(self) -> float:
        return self.lr * self.min_lr_ratio

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


def annealing_lr_v1(
    num_iters: int, *, peak: float, min_lr: float, warmup_iters: float, total: int
) -> float:
    """GPT-NeoX v1.0 `AnnealingLR.get_lr` (cosine style) after `num_iters` completed updates."""
    if total <= 0:
        raise ConfigError(f"total: the number of steps must be positive, got {total}")
    clamped = min(num_iters, total - warmup_iters)  # past T - W the rate stays put
    if warmup_iters > 0 and num_iters <= warmup_iters:
        return float(peak) * clamped / warmup_iters
    lr = peak / 2.0 * (math.cos(math.pi * (clamped - warmup_iters) / total) + 1.0)
    return max(lr, min_lr)


def annealing_lr(
    num_iters: int, *, peak: float, min_lr: float, warmup_iters: float, total: int
) -> float:
    """GPT-NeoX's later `AnnealingLR.get_lr` (cosine from peak to min_lr over T - W)."""
    if total <= 0:
        raise ConfigError(f"total: the number of steps must be positive, got {total}")
    if warmup_iters > 0 and num_iters <= warmup_iters:
        return float(peak) * num_iters / warmup_iters
    decay_iters = total - warmup_iters
    progress = (num_iters - warmup_iters) / decay_iters
    lr = min_lr + (peak - min_lr) / 2.0 * (math.cos(math.pi * progress) + 1.0)
    return max(lr, min_lr)


def lr_for_update(update: int, cfg: OptimConfig, steps: int) -> float:
    """The learning rate used by update `update` (1-based) of a `steps`-update run.

    `update` counts the updates the schedule has seen: with fp16 loss scaling, a skipped
    (overflowing) step does not advance it, as in DeepSpeed.
    """
    if update < 1:
        raise ConfigError(f"update: must be >= 1, got {update}")
    schedule = annealing_lr_v1 if cfg.lr_schedule == "neox-v1.0" else annealing_lr
    return schedule(
        update - 1, peak=cfg.lr, min_lr=cfg.min_lr, warmup_iters=cfg.warmup * steps, total=steps
    )


def no_decay_names(model: nn.Module) -> set[str]:
    """Names of the parameters GPT-NeoX excludes from weight decay (LayerNorms and biases)."""
    names: set[str] = set()
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for name, param in module.named_parameters(recurse=False):
            if param is None:
                continue
            if isinstance(module, nn.LayerNorm) or name == "bias":
                names.add(prefix + name)
    return names


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups in `named_parameters` order: decayed weights, then the rest."""
    skip = no_decay_names(model)
    decay = [p for n, p in model.named_parameters() if n not in skip]
    no_decay = [p for n, p in model.named_parameters() if n in skip]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over `param_groups`, with the fused CPU kernel (elementwise: deterministic)."""
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay),
        lr=0.0,
        betas=cfg.betas,
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
        fused=True,
    )


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
