"""Data parallelism applied from outside the model: process group set-up and gradient averaging.

`torchrun` exports RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT; when WORLD_SIZE > 1 the trainer
joins a process group: gloo on CPU, NCCL on GPUs (`--device cuda`, one GPU per local rank).
With `--parallel ddp` (the default under torchrun) every rank holds the whole model; rank r of K trains on the
r-th contiguous slice of B/K rows of each global batch and the gradients are averaged with one
all-reduce over a flat buffer (a fixed order, so the result does not depend on timing).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from suite_core import ConfigError


@dataclass(frozen=True, kw_only=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def env_from_torchrun() -> DistEnv:
    """Read the torchrun variables (absent: a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    return DistEnv(
        rank=int(os.environ["RANK"]),
        world_size=world,
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))),
        local_rank=int(os.environ.get("LOCAL_RANK", os.environ["RANK"])),
    )


def backend_for(device: str) -> str:
    """The collective backend of a device type: NCCL for "cuda", gloo otherwise."""
    return "nccl" if device == "cuda" else "gloo"


@contextmanager
def process_group(env: DistEnv, device: str = "cpu") -> Iterator[DistEnv]:
    """Join (and finally leave) the process group when `env` has more than one process."""
    owned = env.active and not dist.is_initialized()
    if device == "cuda" and torch.cuda.is_available():
        torch.cuda.set_device(env.local_rank)
        # deterministic cuBLAS (torch.use_deterministic_algorithms asks for it)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if owned:
        dist.init_process_group(
            backend=backend_for(device), rank=env.rank, world_size=env.world_size
        )
    try:
        yield env
    finally:
        if owned:
            dist.destroy_process_group()


def rank_slice(batch_size: int, env: DistEnv) -> slice:
    """The rows of a global batch that rank `env.rank` trains on."""
    if batch_size % env.world_size:
        raise ConfigError(
            f"batch_size: {batch_size} rows cannot be split over {env.world_size} processes "
            "(the number of processes must divide the batch size)"
        )
    per = batch_size // env.world_size
    return slice(env.rank * per, (env.rank + 1) * per)


def average_gradients(params: list[torch.nn.Parameter], env: DistEnv) -> None:
    """Replace every gradient by its mean over the ranks (one flat all-reduce)."""
    if not env.active:
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(env.world_size)
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def mean_over_ranks(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """The mean of a scalar tensor over the ranks (identity for one process)."""
    if not env.active:
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / env.world_size


def broadcast_int(value: int, env: DistEnv) -> int:
    """Rank 0's `value` on every rank."""
    if not env.active:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=comm_device())
    dist.broadcast(t, src=0)
    return int(t.item())


def comm_device() -> torch.device:
    """Where small tensors for collectives must live: the current GPU under NCCL, else the CPU."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier(env: DistEnv) -> None:
    if env.active:
        dist.barrier()
