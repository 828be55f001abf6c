"""Fully sharded data parallelism with PyTorch FSDP2, applied from outside the model.

    model  = GPTNeoX(cfg) on the meta device          (no memory)
    fully_shard(layer) for each layer, then fully_shard(root)
    root.to_empty(device); every parameter drawn in full on the CPU, in state_dict order from
    one generator (as `init_weights`), and only this rank's shard kept

so step 0 is bitwise the single-process initialization whatever the world size, and no rank
ever holds more than one full parameter. The root FSDP unit is `LossRoot`, whose forward is
the training loss: the trainer's fused output-layer cross-entropy reads `embed_out.weight`
directly, so the root's parameters (embeddings, final LayerNorm, output layer) must be
all-gathered by a forward that encloses the loss.

Precision (`TrainConfig.precision`) maps to FSDP2's `MixedPrecisionPolicy`: the sharded
parameters, their gradients and AdamW's state stay float32 (the master weights); "bf16" /
"fp16" all-gather the parameters in that dtype for compute and reduce-scatter gradients in
float32.

Checkpoints are gathered on rank 0 into the ordinary `stepN` folder (weights in
safetensors under transformers' names, optimizer state in the single-process layout): the
folder, its sha256 in the catalog and every analysis stay as for any run, and the gathered
optimizer state is the same object a one-process run saves. Gathering goes one tensor at a
time (the other ranks never hold more than one full tensor); rank 0 holds the full state in
host memory while it writes (16 bytes per parameter: about 190 GB for pythia-12b, within a typical
8-GPU node's RAM). Resuming reverses it: rank 0 reads and verifies the folder and scatters
each tensor's shards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from pythia_suite.training.distributed import DistEnv
from pythia_suite.training.family import ModelConfig, init_stds
from pythia_suite.training.model import GPTNeoX, output_projection
from pythia_suite.training.parallel import ParallelPlan, checkpoint_layers, device_of
from suite_core import ConfigError

LossFn = Callable[[GPTNeoX, torch.Tensor], torch.Tensor]

_COMPUTE_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class LossRoot(nn.Module):
    """The FSDP root: `forward(rows [b, L+1]) -> mean loss` of the wrapped model.

    Its only child is `model`, so `root.model.state_dict()` has transformers' names."""

    def __init__(self, model: GPTNeoX, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(self.model, rows)


def mp_policy(precision: str) -> MixedPrecisionPolicy:
    """FSDP2's policy for a `--precision`: compute dtype for the gathered parameters, float32
    for the sharded master weights and the gradient reduction."""
    if precision not in _COMPUTE_DTYPES:
        raise ConfigError(
            f"--precision: unknown precision {precision!r} (known: {', '.join(_COMPUTE_DTYPES)})"
        )
    dtype = _COMPUTE_DTYPES[precision]
    if dtype is None:
        return MixedPrecisionPolicy()
    return MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)


def mesh_for(plan: ParallelPlan) -> DeviceMesh:
    """One flat mesh over every rank (FSDP over all processes)."""
    return init_device_mesh(plan.device, (plan.world_size,), mesh_dim_names=("fsdp",))


def shard_model(cfg: ModelConfig, plan: ParallelPlan, env: DistEnv, *, loss_fn: LossFn) -> LossRoot:
    """The sharded, initialized model (see the module docstring); collective."""
    with torch.device("meta"):
        model = GPTNeoX(cfg)
    if plan.activation_checkpointing:
        checkpoint_layers(model.gpt_neox.layers)
    mesh = mesh_for(plan)
    policy = mp_policy(plan.precision)
    for layer in model.gpt_neox.layers:
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    root = LossRoot(model, loss_fn)
    fully_shard(root, mesh=mesh, mp_policy=policy)
    root.to_empty(device=device_of(plan, env))
    init_sharded(model, cfg, seed=cfg.init_seed)
    model.reset_rotary()
    return root


@torch.no_grad()
def init_sharded(model: GPTNeoX, cfg: ModelConfig, *, seed: int) -> None:
    """`model.init_weights` for sharded parameters: the same draws, one full tensor at a time.

    Every rank draws every parameter in full on the CPU (so the generator advances exactly as
    in one process) and keeps its own shard."""
    std, out_std = init_stds(cfg)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for name, p in model.named_parameters():
        full = torch.empty(p.shape, dtype=torch.float32)  # [global shape]
        if name.endswith(("layernorm.weight", "final_layer_norm.weight")):
            full.fill_(1.0)
        elif name.endswith(".bias"):
            full.zero_()
        else:
            full.normal_(0.0, out_std if output_projection(name) else std, generator=gen)
        _local(p).copy_(_shard_of(full, p))


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if isinstance(t, DTensor) else t


def _shard_of(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """This rank's piece of `full` laid out as the DTensor `like` (no communication)."""
    if not isinstance(like, DTensor):
        return full.to(like.device)
    piece = distribute_tensor(
        full.to(like.device), like.device_mesh, like.placements, src_data_rank=None
    )
    return piece.to_local()


def _full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor on the CPU (an all-gather for a DTensor: every rank must call it)."""
    return (t.full_tensor() if isinstance(t, DTensor) else t).detach().cpu().contiguous()


def gather_weights(model: GPTNeoX, env: DistEnv) -> dict[str, torch.Tensor] | None:
    """Full float32 weights under transformers' names on rank 0 (None elsewhere); collective."""
    out: dict[str, torch.Tensor] = {}
    for name, t in model.state_dict().items():
        full = _full(t)  # every rank joins the gather, in state_dict order
        if env.is_main:
            out[name] = full
    return out if env.is_main else None


def gather_optimizer(optimizer: torch.optim.Optimizer, env: DistEnv) -> dict[str, Any] | None:
    """AdamW's state in the single-process layout, on rank 0 (None elsewhere); collective."""
    sd = optimizer.state_dict()
    state: dict[int, dict[str, Any]] = {}
    for idx in sorted(sd["state"]):
        state[idx] = {
            k: _full(v) if isinstance(v, torch.Tensor) else v for k, v in sd["state"][idx].items()
        }
    return {"state": state, "param_groups": sd["param_groups"]} if env.is_main else None


def _scatter(full: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """Rank 0's `full` split as `like` (a DTensor parameter); collective for DTensors."""
    if not isinstance(like, DTensor):
        assert full is not None
        return full.to(like.device)
    if full is None:  # not rank 0: a receive buffer of the global shape
        full = torch.empty(like.shape, dtype=like.dtype)
    return distribute_tensor(
        full.to(like.device, like.dtype), like.device_mesh, like.placements, src_data_rank=0
    )


@torch.no_grad()
def load_sharded(
    model: GPTNeoX, optimizer: torch.optim.Optimizer, ckpt: Any | None, env: DistEnv
) -> torch.Tensor:
    """Load rank 0's `LoadedCheckpoint` (None on the other ranks) into the shards; collective.

    Returns the checkpoint's CPU RNG state (broadcast to every rank)."""
    head: list[Any] = [None]
    if env.is_main:
        assert ckpt is not None and ckpt.optimizer_state is not None
        opt = ckpt.optimizer_state
        skeleton = {i: {k: (v if not isinstance(v, torch.Tensor) or k == "step" else None)
                        for k, v in s.items()} for i, s in opt["state"].items()}  # fmt: skip
        rng = (ckpt.extra_tensors or {}).get("torch_rng_state")
        head = [(sorted(ckpt.weights), skeleton, opt["param_groups"], rng)]
    dist.broadcast_object_list(head, src=0)
    names, skeleton, groups, rng = head[0]
    if sorted(model.state_dict()) != names:
        raise ConfigError("checkpoint: its weight names differ from the model's")
    for name, t in model.state_dict().items():
        piece = _scatter(ckpt.weights[name] if ckpt is not None else None, t)
        _local(t).copy_(_local(piece))
    by_index = [p for g in optimizer.param_groups for p in g["params"]]
    state: dict[int, dict[str, Any]] = {}
    for idx in sorted(skeleton):
        entry: dict[str, Any] = {}
        for key, value in skeleton[idx].items():
            if value is None:  # a tensor of the parameter's shape: scatter its shards
                full = ckpt.optimizer_state["state"][idx][key] if ckpt is not None else None
                entry[key] = _scatter(full, by_index[idx])
            else:
                entry[key] = value
        state[idx] = entry
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    return rng if rng is not None else torch.get_rng_state()


def local_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes this rank holds for parameters, gradients and optimizer state (local shards)."""
    params = list(model.parameters())
    grads = [p.grad for p in params if p.grad is not None]
    opt = [v for s in optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor)]

    def size(ts: Sequence[torch.Tensor]) -> int:
        return sum(_local(t).numel() * _local(t).element_size() for t in ts)

    return {"parameters": size(params), "gradients": size(grads), "optimizer": size(opt)}
