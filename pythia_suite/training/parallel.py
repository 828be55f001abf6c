"""How a run is spread over processes and devices: the parallel mode, resolved and checked.

`--parallel` picks the mode: `ddp` (every rank holds the whole model; gradients averaged with
one all-reduce, `pythia_suite.training.distributed`) or `fsdp` (PyTorch FSDP2: parameters,
gradients and optimizer state sharded over the ranks, `pythia_suite.training.fsdp`). Without it
a run is `single` in one process and `ddp` under torchrun. `--device cuda` runs each rank on
its local GPU with NCCL; `--device cpu` (the default) runs on CPU with gloo.

The resolved mode, the process count, the device and activation checkpointing are recorded in
`run.json` (field `parallel`), so a run resumed with another world size, mode or device is
refused with the field named (`parallel.world_size`, ...): a sharded optimizer state belongs
to one layout, and byte-identical continuation holds only for the same one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from pythia_suite.training.distributed import DistEnv
from suite_core import ConfigError

PARALLEL_MODES = ("ddp", "fsdp")
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True, kw_only=True)
class ParallelPlan:
    """The resolved layout of a run (identical on every rank)."""

    mode: str = "single"  # "single" | "ddp" | "fsdp"
    world_size: int = 1
    device: str = "cpu"  # "cpu" | "cuda"
    activation_checkpointing: bool = False
    precision: str = (
        "fp32"  # TrainConfig.precision (not part of `to_dict`: run.json has its own field)
    )

    @property
    def sharded(self) -> bool:
        return self.mode == "fsdp"

    def to_dict(self) -> dict[str, Any]:
        """What run.json records under `parallel`."""
        out = asdict(self)
        del out["precision"]
        return out


def resolve_parallel(
    *,
    parallel: str | None,
    device: str,
    activation_checkpointing: bool,
    precision: str,
    env: DistEnv,
) -> ParallelPlan:
    """Check the user's choice against the process count and the machine (`ValueError`)."""
    if parallel is not None and parallel not in PARALLEL_MODES:
        raise ConfigError(
            f"--parallel: unknown mode {parallel!r} (known: {', '.join(PARALLEL_MODES)})"
        )
    if precision not in PRECISIONS:
        raise ConfigError(
            f"--precision: unknown precision {precision!r} (known: {', '.join(PRECISIONS)})"
        )
    if device not in DEVICES:
        raise ConfigError(f"--device: unknown device {device!r} (known: {', '.join(DEVICES)})")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device: cuda asked for, but this torch sees no CUDA device")
    if parallel == "fsdp" and env.world_size < 2:
        raise ConfigError(
            "--parallel: fsdp shards the model over several processes and this is one; "
            "launch with `torchrun --nproc_per_node N --no-python pythia-suite train ...` (N >= 2)"
        )
    mode = parallel or ("ddp" if env.world_size > 1 else "single")
    return ParallelPlan(
        mode=mode, world_size=env.world_size, device=device,
        activation_checkpointing=activation_checkpointing, precision=precision,
    )  # fmt: skip


def device_of(plan: ParallelPlan, env: DistEnv) -> torch.device:
    """This rank's device: the CPU, or its local GPU."""
    if plan.device == "cuda":
        return torch.device("cuda", env.local_rank)
    return torch.device("cpu")


def checkpoint_layers(layers: nn.ModuleList) -> None:
    """Activation checkpointing of every transformer layer, applied from outside the model.

    The composable `checkpoint` keeps parameter names unchanged (no wrapper module), so the
    checkpoints' weight names stay those of transformers. Each layer keeps only its input; its
    activations are recomputed in the backward pass (deterministic: no dropout, no RNG).
    """
    from torch.distributed._composable import checkpoint

    for layer in layers:
        checkpoint(layer)
