"""Per-rank memory of a training layout, on paper: plan pythia-6.9b or -12b before renting GPUs.

`memory_plan(cfg, world_size=N, parallel="fsdp", precision="bf16", micro_batch=M)` counts, for
the most loaded rank (rank 0), the bytes this trainer holds:

- parameters: the float32 master weights (the trained parameters: whole under ddp, rank 0's
  FSDP2 shard under fsdp, i.e. `torch.chunk` of dim 0 over N ranks, exactly as FSDP2 splits),
  plus the working copies in the compute dtype: under fsdp the all-gathered units alive at
  once (the root unit, embeddings and output layer, which FSDP2 keeps gathered through the
  step, plus two layers: the one computing and the one prefetched); under ddp with bf16/fp16
  autocast's cache of the weights cast to that dtype (2 bytes per parameter).
- gradients: float32, of the master weights (sharded under fsdp); under fsdp plus the
  unsharded gradients of the same gathered units before their reduce-scatter; under ddp plus
  the flat float32 buffer of the one all-reduce (`distributed.average_gradients`).
- optimizer: AdamW's exp_avg and exp_avg_sq in float32 (8 bytes per local parameter) and one
  float32 step counter per parameter tensor (the fused kernel's).
- activations: the standard estimate of Korthikanti et al. 2022 ("Reducing Activation
  Recomputation in Large Transformer Models", eq. 1): 34 * s * b * h bytes per layer for
  16-bit activations (doubled in float32), without its 5 * a * s^2 * b attention-score term,
  since SDPA's flash / memory-efficient kernels (and GPT-NeoX's flash config for Pythia) keep
  no s x s matrix. With activation checkpointing a layer keeps only its input (2 * s * b * h
  bytes in 16-bit) and one layer's full activations exist during its recomputation. Add the
  embedding output and the fused output-layer cross-entropy's saved float32 gradients
  (dh [s*b, h] and dw [V, h]).

The parameter and optimizer terms are exact for this trainer (a test compares them with the
tensors of a row actually sharded over 2 processes); the activation term is an estimate.
Allocator fragmentation, communication buffers and the CUDA context are not counted.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from pythia_suite.training.family import ModelConfig
from pythia_suite.training.parallel import PARALLEL_MODES, PRECISIONS
from suite_core import ConfigError

FP32 = 4
_COMPUTE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
KORTHIKANTI_PER_LAYER = 34  # bytes per s*b*h per layer, 16-bit activations, no attention scores


@dataclass(frozen=True, kw_only=True)
class MemoryPlan:
    """Bytes held by rank 0 of a layout (see the module docstring for each term)."""

    row: str
    world_size: int
    parallel: str
    precision: str
    micro_batch: int  # sequences per rank per forward
    seq_length: int
    activation_checkpointing: bool
    parameter_count: int
    master_weights: int  # float32 parameters this rank owns (all of them under ddp)
    working_weights: int  # compute-dtype copies alive at once (fsdp gathers, autocast cache)
    gradient_shards: int  # float32 gradients of the master weights
    gradient_buffers: int  # fsdp: unsharded gradients before reduce-scatter; ddp: all-reduce buffer
    optimizer: int
    activations: int

    @property
    def parameters(self) -> int:
        return self.master_weights + self.working_weights

    @property
    def gradients(self) -> int:
        return self.gradient_shards + self.gradient_buffers

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer + self.activations

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "parameters": self.parameters, "gradients": self.gradients,
                "total": self.total}  # fmt: skip


def param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter's shape, from the model built on the meta device (no memory)."""
    from pythia_suite.training.model import GPTNeoX

    with torch.device("meta"):
        model = GPTNeoX(cfg)
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def shard_numel(shape: tuple[int, ...], world_size: int, rank: int = 0) -> int:
    """Elements of rank `rank`'s FSDP2 shard: `torch.chunk` of dim 0 over `world_size`."""
    chunk = -(-shape[0] // world_size)
    rows = max(0, min(chunk, shape[0] - rank * chunk))
    return rows * math.prod(shape[1:])


def memory_plan(
    cfg: ModelConfig, *, world_size: int, parallel: str = "fsdp", precision: str = "fp32",
    micro_batch: int | None = None, activation_checkpointing: bool = False, rank: int = 0,
) -> MemoryPlan:  # fmt: skip
    """Rank `rank`'s bytes for `cfg` on `world_size` processes (`ValueError` for bad input)."""
    if parallel not in PARALLEL_MODES:
        raise ConfigError(
            f"--parallel: unknown mode {parallel!r} (known: {', '.join(PARALLEL_MODES)})"
        )
    if precision not in PRECISIONS:
        raise ConfigError(
            f"--precision: unknown precision {precision!r} (known: {', '.join(PRECISIONS)})"
        )
    if world_size < 1:
        raise ConfigError(f"--world-size: must be >= 1, got {world_size}")
    if parallel == "fsdp" and world_size < 2:
        raise ConfigError("--world-size: fsdp shards the model over several processes; give N >= 2")
    if cfg.batch_size % world_size:
        raise ConfigError(
            f"--world-size: {cfg.batch_size} rows per batch ({cfg.name}) cannot be split over "
            f"{world_size} processes (the number of processes must divide the batch size)"
        )
    per_rank = cfg.batch_size // world_size
    b = per_rank if micro_batch is None else micro_batch
    if b < 1 or b > per_rank:
        raise ConfigError(
            f"--micro-batch: must be between 1 and {per_rank} (the rows per rank), got {b}"
        )
    shapes = param_shapes(cfg)
    c = _COMPUTE_BYTES[precision]
    full = {n: math.prod(s) for n, s in shapes.items()}
    if parallel == "fsdp":
        local = {n: shard_numel(s, world_size, rank) for n, s in shapes.items()}
        working = buffers = c * _gathered_numel(full, cfg)
    else:
        local = full
        working = 0 if precision == "fp32" else c * sum(full.values())
        buffers = FP32 * sum(full.values()) if world_size > 1 else 0
    owned = FP32 * sum(local.values())
    optimizer = 2 * FP32 * sum(local.values()) + FP32 * len(local)
    return MemoryPlan(
        row=cfg.name, world_size=world_size, parallel=parallel, precision=precision,
        micro_batch=b, seq_length=cfg.seq_length, activation_checkpointing=activation_checkpointing,
        parameter_count=sum(full.values()), master_weights=owned, working_weights=working,
        gradient_shards=owned, gradient_buffers=buffers, optimizer=optimizer,
        activations=activation_bytes(cfg, b, precision, activation_checkpointing),
    )  # fmt: skip


def _gathered_numel(full: dict[str, int], cfg: ModelConfig) -> int:
    """Elements gathered at once under FSDP2: the root unit plus two layers."""
    root = sum(n for name, n in full.items() if ".layers." not in name)
    layer = sum(n for name, n in full.items() if ".layers.0." in name)
    return root + min(2, cfg.num_layers) * layer


def activation_bytes(
    cfg: ModelConfig, micro_batch: int, precision: str, checkpointing: bool
) -> int:
    """Korthikanti et al. 2022's per-layer estimate (see the module docstring), whole model."""
    s, b, h = cfg.seq_length, micro_batch, cfg.hidden_size
    scale = _COMPUTE_BYTES[precision] / 2  # the 34 counts 16-bit activations
    layer = KORTHIKANTI_PER_LAYER * s * b * h * scale
    kept = (
        (2 * s * b * h * scale * cfg.num_layers + layer)
        if checkpointing
        else layer * cfg.num_layers
    )
    assert cfg.vocab_size is not None
    head = s * b * h * _COMPUTE_BYTES[precision] + FP32 * (s * b * h + cfg.vocab_size * h)
    return int(kept + head)


def plan_table(plans: list[MemoryPlan]) -> str:
    """A text table of plans in GiB per rank."""
    head = (
        "row",
        "N",
        "mode",
        "prec",
        "mb",
        "ckpt",
        "params",
        "grads",
        "optim",
        "activ",
        "total GiB",
    )
    body = [
        (p.row, str(p.world_size), p.parallel, p.precision, str(p.micro_batch),
         "yes" if p.activation_checkpointing else "no",
         *(f"{x / 2**30:.2f}"
           for x in (p.parameters, p.gradients, p.optimizer, p.activations, p.total)))
        for p in plans
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in (head, *body)) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in (head, *body)
    ]
    return "\n".join(lines)
