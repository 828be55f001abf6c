"""The deterministic fixed-order trainer.

Update `n` (1-based) trains on the batch at step `n - 1` of the prepared data (through the run's
transform), whatever the number of processes: rank r of K takes the r-th contiguous B/K rows.
Inputs are `row[:-1]`, labels `row[1:]`; the loss is the mean token cross-entropy of the global
batch. AdamW and the LR schedule follow GPT-NeoX (`pythia_suite.training.optim`). After update `n`, rank 0
appends one line to `RUN/metrics.jsonl` and, if `n` is on the checkpoint schedule, saves
`RUN/checkpoints/stepN` (weights, HF config, optimizer state, trainer state, RNG state).
Under `parallel="fsdp"` the model is sharded with FSDP2 and each checkpoint is gathered on
rank 0 into the same folder (`pythia_suite.training.fsdp`); see `parallel` for the layouts.

On CPU the same command gives byte-identical checkpoints (deterministic algorithms, a fixed
number of threads); a run killed at any moment and restarted with `resume=True` continues from
its newest complete checkpoint and ends byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from checkpoints_index.lock import run_lock
from checkpoints_index.store import load_checkpoint, save_checkpoint
from dataloader_replay.batch_hashes import batch_sha256
from pythia_suite.training import distributed as D
from pythia_suite.training import fsdp
from pythia_suite.training.family import ModelConfig, hf_config
from pythia_suite.training.model import GPTNeoX, init_weights
from pythia_suite.training.optim import OptimConfig, build_optimizer, lr_for_update, set_lr
from pythia_suite.training.parallel import checkpoint_layers, device_of
from pythia_suite.training.precision import LossScaler, autocast
from pythia_suite.training.run import metrics_line, open_metrics
from pythia_suite.training.setup import Plan, TrainConfig, plan_run, prepare_run_dir
from suite_core import ConfigError

log = logging.getLogger(__name__)
CPU = torch.device("cpu")

__all__ = ["TrainConfig", "TrainResult", "TrainState", "step_loss", "train", "train_step"]


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """What `train` returns."""

    run_dir: Path
    steps: int
    resumed_from: int | None  # the checkpoint step a resumed run continued from
    last_loss: float | None


@dataclass(kw_only=True)
class TrainState:
    """The mutable side of a run: the model, its optimizer, and the number of updates done."""

    model: GPTNeoX
    optimizer: torch.optim.AdamW
    params: list[torch.nn.Parameter]
    step: int  # updates done
    precision: str = "fp32"  # the forward pass's autocast (pythia_suite.training.precision)
    scaler: LossScaler | None = None  # fp16's dynamic loss scaler
    skipped: int = 0  # fp16 steps skipped on overflow (they do not advance the LR schedule)
    root: torch.nn.Module | None = None  # FSDP: the sharded root whose forward is the loss
    device: torch.device = CPU


def default_threads(env: D.DistEnv) -> int:
    """CPU threads per process: the cores shared evenly by the local processes."""
    cores = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )
    return max(1, cores // env.local_world_size)


@contextmanager
def deterministic(threads: int, seed: int) -> Iterator[None]:
    """Deterministic algorithms, a fixed thread count and a seeded global RNG, restored afterwards."""
    old_det, old_threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    old_fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True)
    # every op we run writes all of its output, so NaN-filling each new tensor (the default of
    # deterministic mode) only costs time
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's global RNG is left untouched
            torch.manual_seed(seed)
            yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        torch.utils.deterministic.fill_uninitialized_memory = old_fill
        torch.set_num_threads(old_threads)


def step_loss(model: GPTNeoX, rows: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of `model(rows[:, :-1])` against `rows[:, 1:]` (rows: int64 [b, L+1]).

    Under `torch.autocast` the output layer's matmuls run in the autocast dtype too (float32
    accumulation), the log-softmax and the loss in float32."""
    inputs, labels = rows[:, :-1], rows[:, 1:]
    hidden = model.gpt_neox(inputs)  # [b, L, C]; the logits are embed_out(hidden)
    kind = hidden.device.type
    dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else hidden.dtype
    return _LinearCrossEntropy.apply(
        hidden.flatten(0, 1), model.embed_out.weight, labels.flatten(), dtype
    )


class _LinearCrossEntropy(torch.autograd.Function):
    """`F.cross_entropy(h @ w.T, labels)` (mean over N rows), never holding all logits [N, V].

    The loss ends the graph, so its gradients are computed right here in the forward pass, one
    chunk of rows at a time: logits [n, V] -> log-softmax -> loss; then, in the same buffer,
    softmax - onehot (= d loss_sum / d logits), dh = that @ w and dw += that.T @ h. Backward
    only scales the saved dh [N, C] and dw [V, C] by d loss / N. Autograd's version allocates
    logits, log-softmax, a zero-filled one-hot gradient and two more [N, V] gradients, one pass
    over memory each (at V = 4096 that was ~10% of a small model's step). Chunks run in a
    fixed order, so the result is deterministic. With `dtype` bf16/fp16 the three matmuls take
    their inputs in that dtype (as autocast would); log-softmax, the loss and dw's sum stay float32.
    """

    CHUNK = 1 << 21  # logits per chunk (8 MiB in float32): best of 2^19 ... 2^24 measured

    @staticmethod
    def forward(
        ctx, h: torch.Tensor, w: torch.Tensor, labels: torch.Tensor, dtype: torch.dtype
    ) -> torch.Tensor:
        with torch.autocast(h.device.type, enabled=False):  # the casts below are explicit
            return _LinearCrossEntropy._forward(ctx, h, w, labels, dtype)

    @staticmethod
    def _forward(
        ctx, h: torch.Tensor, w: torch.Tensor, labels: torch.Tensor, dtype: torch.dtype
    ) -> torch.Tensor:
        N, V = h.shape[0], w.shape[0]
        n = max(1, _LinearCrossEntropy.CHUNK // V)
        grads = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        acc = torch.promote_types(dtype, torch.float32)  # softmax and sums: float32 at least
        # bf16 / fp16 matmuls (against float32 master weights, or FSDP2's gathered bf16 ones)
        low = dtype != acc or w.dtype != acc
        wl = w.to(dtype)  # [V, C], cast once
        dh, dw = torch.empty_like(h), torch.zeros_like(w, dtype=acc)  # [N, C], [V, C]
        minus_one = torch.full((min(n, N), 1), -1.0, dtype=acc, device=h.device)
        loss_sum = torch.zeros((), dtype=acc, device=h.device)
        for s in range(0, N, n):
            hc, lc = h[s : s + n].to(dtype), labels[s : s + n, None]  # [n, C], [n, 1]
            p = torch.log_softmax(hc @ wl.t(), dim=-1, dtype=acc)  # [n, V]
            loss_sum -= p.gather(1, lc).sum()
            if not grads:
                continue
            p.exp_().scatter_add_(1, lc, minus_one[: len(lc)])  # [n, V] softmax - onehot
            if low:
                pl = p.to(dtype)  # [n, V]
                dh[s : s + n] = pl @ wl  # [n, C]
                dw += pl.t() @ hc  # [V, C], summed in float32
            else:
                torch.mm(p, w, out=dh[s : s + n])  # [n, C]
                dw.addmm_(p.t(), hc)  # [V, C]
        ctx.save_for_backward(dh, dw)
        ctx.rows, ctx.w_dtype = N, w.dtype
        return loss_sum / N  # float32 (float64 for float64 inputs), whatever h is

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None, None]:
        dh, dw = ctx.saved_tensors
        scale = grad / ctx.rows
        return dh * scale, (dw * scale).to(ctx.w_dtype), None, None


def train(config: TrainConfig) -> TrainResult:
    """Train (or resume) the run `config.out`; see the module docstring."""
    env = D.env_from_torchrun()
    threads = config.threads or default_threads(env)
    with D.process_group(env, config.device), ExitStack() as lock:
        plan = plan_run(config, env)
        with deterministic(threads, plan.model.init_seed):
            return _train(config, plan, env, lock)


def _train(config: TrainConfig, plan: Plan, env: D.DistEnv, lock: ExitStack) -> TrainResult:
    start = _setup_on_rank0(plan, env, lock)
    state = _build_state(plan, start, env)
    last_loss = _loop(plan, state, env)
    D.barrier(env)
    return TrainResult(
        run_dir=plan.run_dir,
        steps=plan.steps,
        resumed_from=start if start >= 0 and config.resume else None,
        last_loss=last_loss,
    )


def _setup_on_rank0(plan: Plan, env: D.DistEnv, lock: ExitStack) -> int:
    """Rank 0 takes RUN's lock (held in `lock` until training ends: a second `train` of the
    same run is refused) and prepares RUN (run.json, catalog, metrics cut back); every rank
    gets the start step. Returns the checkpoint step to continue from, or -1 for a fresh run.
    """
    failed = -2
    start = failed
    try:
        if env.is_main:
            existed = plan.run_dir.is_dir()
            if existed:  # before anything of it is read or cut back
                lock.enter_context(run_lock(plan.run_dir))
            start = prepare_run_dir(plan)
            if not existed:
                lock.enter_context(run_lock(plan.run_dir))
    finally:
        start = D.broadcast_int(start, env)
    if start == failed:
        raise ConfigError(f"{plan.run_dir}: rank 0 could not set up the run (see its error)")
    return start


def _build_state(plan: Plan, start: int, env: D.DistEnv) -> TrainState:
    mcfg: ModelConfig = plan.model
    if plan.parallel.sharded:
        return _build_sharded(plan, start, env)
    model = GPTNeoX(mcfg)
    init_weights(model, mcfg, seed=mcfg.init_seed)
    if plan.parallel.activation_checkpointing:
        checkpoint_layers(model.gpt_neox.layers)
    state = new_state(model.to(device_of(plan.parallel, env)), plan.optim, plan.precision)
    if start >= 0:
        ckpt = load_checkpoint(
            plan.checkpoint_source(start), start, verify=True, map_location=state.device
        )
        model.load_state_dict(ckpt.weights, strict=True)
        if ckpt.optimizer_state is None:
            raise ConfigError(
                f"{plan.run_dir}: checkpoint step{start} has no optimizer state; cannot resume"
            )
        state.optimizer.load_state_dict(ckpt.optimizer_state)
        if ckpt.extra_tensors and "torch_rng_state" in ckpt.extra_tensors:
            torch.set_rng_state(ckpt.extra_tensors["torch_rng_state"])
        state.step = start
        state.skipped = int(ckpt.trainer_state.get("skipped", 0))
        if state.scaler is not None:
            state.scaler = LossScaler.from_state(ckpt.trainer_state["loss_scaler"])
        log.info("resuming %s from step %d", plan.run_dir, start)
    elif 0 in plan.checkpoint_steps:
        _checkpoint(plan, state, lr=0.0, env=env)
    return state


def _build_sharded(plan: Plan, start: int, env: D.DistEnv) -> TrainState:
    """FSDP2: the model built on meta, sharded, initialized shard by shard; resumed from rank 0's
    verified checkpoint, scattered (see `pythia_suite.training.fsdp`)."""
    root = fsdp.shard_model(plan.model, plan.parallel, env, loss_fn=step_loss)
    state = new_state(root.model, plan.optim, plan.precision)
    state.root = root
    if start >= 0:
        ckpt = _load_on_rank0(plan, start, env)
        torch.set_rng_state(fsdp.load_sharded(state.model, state.optimizer, ckpt, env))
        state.step = start
        log.info("resuming %s from step %d (%d shards)", plan.run_dir, start, env.world_size)
    elif 0 in plan.checkpoint_steps:
        _checkpoint(plan, state, lr=0.0, env=env)
    return state


def _load_on_rank0(plan: Plan, start: int, env: D.DistEnv) -> Any:
    """Rank 0 reads and verifies `stepN`; every rank fails together if it cannot."""
    ckpt, error = None, None
    if env.is_main:
        try:
            ckpt = load_checkpoint(plan.checkpoint_source(start), start, verify=True)
            if ckpt.optimizer_state is None:
                raise ConfigError(
                    f"{plan.run_dir}: checkpoint step{start} has no optimizer state; cannot resume"
                )
        except (ValueError, OSError) as exc:
            error = exc
    if not D.broadcast_int(int(error is None), env):
        raise error or ValueError(
            f"{plan.run_dir}: rank 0 could not load checkpoint step{start} (see its error)"
        )
    return ckpt


def _loop(plan: Plan, state: TrainState, env: D.DistEnv) -> float | None:
    rows = D.rank_slice(plan.batch_size, env)
    every = max(1, plan.steps // 20)
    metrics = open_metrics(plan.run_dir) if env.is_main else None
    bar = tqdm(total=plan.steps, initial=state.step, desc="train", unit="step",
               disable=None if env.is_main else True)  # fmt: skip
    loss_value: float | None = None
    try:
        for n in range(state.step + 1, plan.steps + 1):
            batch = plan.data_batch(n - 1)  # [B, L+1], as the model sees it
            lr = lr_for_update(n - state.skipped, plan.optim, plan.steps)  # skipped: fp16 overflows
            scale = state.scaler.scale if state.scaler is not None else None
            loss, grad_norm = train_step(
                state, batch[rows], lr=lr, grad_clip=plan.optim.grad_clip, env=env
            )
            loss_value = float(loss)
            state.step = n
            if metrics is not None:
                record = _record(n, loss_value, lr, grad_norm, plan, batch)
                if scale is not None:  # fp16: the scale this step used, and whether it was skipped
                    skipped = not math.isfinite(grad_norm)
                    record.update(
                        grad_norm=None if skipped else grad_norm, loss_scale=scale, skipped=skipped
                    )
                metrics.write(metrics_line(record))
                metrics.flush()
            if n in plan.checkpoint_steps:
                _checkpoint(plan, state, lr=lr, env=env)
            if env.is_main and (n % every == 0 or n == plan.steps):
                log.info(
                    "step %d/%d loss %.4f lr %.3g grad_norm %.3f",
                    n,
                    plan.steps,
                    loss_value,
                    lr,
                    grad_norm,
                )
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}")
    finally:
        bar.close()
        if metrics is not None:
            metrics.close()
    return loss_value


def train_step(
    state: TrainState,
    rows_np: np.ndarray,
    *,
    lr: float,
    grad_clip: float,
    env: D.DistEnv = D.DistEnv(),
) -> tuple[torch.Tensor, float]:
    """One optimizer update on this rank's rows [b, L+1]; returns (global mean loss, grad norm before clip).

    In `state.precision` (autocast for bf16 / fp16; under FSDP2 the mixed-precision policy casts
    the gathered parameters too). With a loss scaler (fp16) the loss is scaled before backward and
    the gradients unscaled after; a non-finite gradient norm (an overflow; the norm is global, so
    every rank decides alike) skips the update and counts in `state.skipped`.
    """
    rows = torch.from_numpy(rows_np.astype(np.int64, copy=False)).to(state.device)
    set_lr(state.optimizer, lr)
    state.optimizer.zero_grad(set_to_none=True)
    with autocast(state.precision, str(state.device)):
        loss = step_loss(state.model, rows) if state.root is None else state.root(rows)
    scaler = state.scaler
    (loss if scaler is None else loss * scaler.scale).backward()
    if state.root is None:  # FSDP's backward has reduce-scattered the gradients already
        D.average_gradients(state.params, env)
    if scaler is not None:  # the scale is a power of two: unscaling is exact
        torch._foreach_mul_(
            [p.grad for p in state.params if p.grad is not None], 1.0 / scaler.scale
        )
    grad_norm = float(torch.nn.utils.clip_grad_norm_(state.params, grad_clip, foreach=True))
    overflow = scaler is not None and not math.isfinite(grad_norm)
    if not overflow:
        state.optimizer.step()
    if scaler is not None:
        scaler.update(overflow)
        state.skipped += overflow
        if overflow:
            log.info("fp16 overflow: step skipped, loss scale now %g", scaler.scale)
    return D.mean_over_ranks(loss.detach().float(), env), grad_norm


def new_state(model: GPTNeoX, optim: OptimConfig, precision: str = "fp32") -> TrainState:
    """A model in training mode with its GPT-NeoX AdamW (see `pythia_suite.training.optim`)."""
    model.train()
    return TrainState(
        model=model, optimizer=build_optimizer(model, optim), params=list(model.parameters()), step=0,
        precision=precision, scaler=LossScaler() if precision == "fp16" else None,
        device=model.embed_out.weight.device,
    )  # fmt: skip


def _record(
    n: int, loss: float, lr: float, grad_norm: float, plan: Plan, batch: np.ndarray
) -> dict[str, Any]:
    return {
        "step": n,
        "loss": loss,
        "lr": lr,
        "grad_norm": grad_norm,
        "tokens": n * plan.batch_size * plan.seq_length,
        "batch_sha256": batch_sha256(batch),
    }


def _checkpoint(plan: Plan, state: TrainState, *, lr: float, env: D.DistEnv) -> None:
    """Rank 0 saves `stepN`; a sharded run first gathers it there (every rank takes part)."""
    weights: dict[str, torch.Tensor] | None = None
    optimizer_state: dict[str, Any] | None = None
    if state.root is not None:
        weights = fsdp.gather_weights(state.model, env)
        optimizer_state = fsdp.gather_optimizer(state.optimizer, env)
    elif env.is_main:
        weights = {k: v.detach().cpu().contiguous() for k, v in state.model.state_dict().items()}
        optimizer_state = state.optimizer.state_dict()
    if env.is_main:
        assert weights is not None and optimizer_state is not None
        _save(plan, state, lr=lr, weights=weights, optimizer_state=optimizer_state)


def _save(
    plan: Plan,
    state: TrainState,
    *,
    lr: float,
    weights: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
) -> None:
    n = state.step
    save_checkpoint(
        plan.run_dir,
        n,
        weights=weights,
        hf_config=hf_config(plan.model),
        optimizer_state=optimizer_state,
        trainer_state={
            "step": n,
            "tokens": n * plan.batch_size * plan.seq_length,
            "lr": lr,
            "world_size": plan.world_size,
            "threads": torch.get_num_threads(),  # with world_size, what byte-identity depends on
            "batch_size": plan.batch_size,
            "seq_length": plan.seq_length,
            "model": plan.model.name,
            "precision": state.precision,
            "skipped": state.skipped,  # fp16 overflows so far: the LR schedule is at step - skipped
            "loss_scaler": None if state.scaler is None else state.scaler.state_dict(),
        },
        extra_tensors={"torch_rng_state": torch.get_rng_state()},
    )
