"""Run by `test_trainer_fsdp.py` under `torchrun --nproc_per_node 2` (gloo, CPU): one launch for
every FSDP2 check, since each launch costs seconds of process start-up.

    python fsdp_worker.py DATA OUT

1. OUT/fsdp: `pythia-suite train --parallel fsdp --activation-checkpointing` (10 steps).
2. OUT/resumed: a copy of OUT/fsdp cut back as a kill during update 8 leaves it (step10
   gone, metrics torn after 7 lines), then `--resume`; OUT/corrupt: a copy whose step10
   weights have a flipped byte, resumed (each rank writes its exit status to corrupt_rc{r}).
3. OUT/bf16: the same run in bf16 (FSDP2 MixedPrecisionPolicy), 4 steps.
4. OUT/odd_init.safetensors: the gathered initialization of a row with odd widths (uneven
   shards), and OUT/bytes_rank{r}.json: the bytes each rank holds for its parameter, gradient
   and AdamW shards after one update.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
import sys
from pathlib import Path

import numpy as np
import torch.distributed as dist
from safetensors.torch import save_file

from pythia_suite.cli import main
from pythia_suite.training import fsdp
from pythia_suite.training.distributed import env_from_torchrun
from pythia_suite.training.family import ModelConfig, get_row
from pythia_suite.training.optim import OptimConfig
from pythia_suite.training.parallel import ParallelPlan
from pythia_suite.training.trainer import (
    TrainConfig,
    deterministic,
    new_state,
    step_loss,
    train,
    train_step,
)

STEPS = 10
VOCAB = 512


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--model", "pythia-nano", "--data", str(data), "--out", str(out),
            "--steps", str(STEPS), "--checkpoints", "steps:0,5,10", "--threads", "1",
            *extra]  # fmt: skip


FSDP_FLAGS = ("--parallel", "fsdp", "--activation-checkpointing")


def cut_back(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)
    shutil.rmtree(dst / "checkpoints" / "step10")
    with sqlite3.connect(dst / "catalog.sqlite") as db:  # a kill leaves no row without its folder
        db.execute("DELETE FROM checkpoints WHERE step = 10")
    lines = (dst / "metrics.jsonl").read_text().splitlines(keepends=True)
    (dst / "metrics.jsonl").write_text("".join(lines[:7]) + lines[7][:20])


def odd_row() -> ModelConfig:
    """pythia-nano with odd widths, so that FSDP2's shards are uneven (17 / 16 rows, ...)."""
    nano = get_row("pythia-nano").with_vocab(VOCAB).with_seq_length(32)
    return dataclasses.replace(nano, name="odd", hidden_size=33, num_heads=3, intermediate_size=99)


def shard_bytes(out: Path) -> None:
    env = env_from_torchrun()
    cfg = odd_row()
    plan = ParallelPlan(mode="fsdp", world_size=env.world_size)
    with deterministic(1, cfg.init_seed):
        root = fsdp.shard_model(cfg, plan, env, loss_fn=step_loss)
        weights = fsdp.gather_weights(root.model, env)
        if weights is not None:
            save_file(weights, out / "odd_init.safetensors")
        state = new_state(root.model, OptimConfig(lr=cfg.lr))
        state.root = root
        rows = np.random.default_rng(0).integers(0, VOCAB, size=(4, 33))
        train_step(state, rows, lr=1e-3, grad_clip=1.0, env=env)
        measured = fsdp.local_bytes(root.model, state.optimizer)
    (out / f"bytes_rank{env.rank}.json").write_text(json.dumps(measured))


def run(data: Path, out: Path) -> None:
    env = env_from_torchrun()
    assert main(train_args(data, out / "fsdp", *FSDP_FLAGS)) == 0
    if env.is_main:
        cut_back(out / "fsdp", out / "resumed")
    dist.barrier()
    assert main(train_args(data, out / "resumed", *FSDP_FLAGS, "--resume")) == 0
    if env.is_main:  # a flipped byte in the newest checkpoint: every rank refuses, none hangs
        shutil.copytree(out / "fsdp", out / "corrupt")
        weights = out / "corrupt" / "checkpoints" / "step10" / "model.safetensors"
        data_bytes = bytearray(weights.read_bytes())
        data_bytes[-1] ^= 1
        weights.write_bytes(bytes(data_bytes))
    dist.barrier()
    rc = main(train_args(data, out / "corrupt", *FSDP_FLAGS, "--resume"))
    (out / f"corrupt_rc{env.rank}").write_text(str(rc))
    train(TrainConfig(model="pythia-nano", data=data, out=out / "bf16", steps=4, threads=1,
                      checkpoints="steps:4", precision="bf16", parallel="fsdp"))  # fmt: skip
    shard_bytes(out)


if __name__ == "__main__":
    dist.init_process_group("gloo")  # shared by every call below (train() joins, does not own it)
    try:
        run(Path(sys.argv[1]), Path(sys.argv[2]))
    finally:
        dist.destroy_process_group()
