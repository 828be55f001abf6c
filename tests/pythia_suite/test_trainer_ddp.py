"""Two processes under torchrun (gloo, CPU) train like one process on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pythia_suite.cli import main
from pythia_suite.training.distributed import DistEnv, rank_slice
from pythia_suite.training.setup import TrainConfig, plan_run

STEPS = 10


def args(data: Path, out: Path) -> list[str]:
    return ["train", "--model", "pythia-nano", "--data", str(data), "--out", str(out),
            "--steps", str(STEPS), "--checkpoints", "steps:0,5,10", "--threads", "1"]  # fmt: skip


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _no_key_bias(name: str, tensor: torch.Tensor, heads: int = 4) -> torch.Tensor:
    """Drop the key part of the fused qkv bias ([q | k | v] per head).

    Softmax ignores a per-query constant, so the key bias has no effect on the loss: its
    gradient is rounding noise, which Adam scales up to lr-sized steps in arbitrary directions.
    """
    if not name.endswith("query_key_value.bias"):
        return tensor
    per_head = tensor.view(heads, 3, -1)  # [H, (q, k, v), hd]
    return per_head[:, [0, 2], :]


def test_two_processes_match_one(tiny_data: Path, cli_bin: Path, tmp_path: Path) -> None:
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    assert main(args(tiny_data, single)) == 0
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")
    }
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node",
        "2",
        "--no-python",
        str(cli_bin),
        *args(tiny_data, ddp),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = metrics(single), metrics(ddp)
    assert [r["step"] for r in two] == list(range(1, STEPS + 1))  # rank 0 alone writes metrics
    for a, b in zip(one, two):
        assert (a["step"], a["tokens"], a["batch_sha256"], a["lr"]) == (
            b["step"],
            b["tokens"],
            b["batch_sha256"],
            b["lr"],
        )
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
    assert sorted(p.name for p in (ddp / "checkpoints").iterdir()) == ["step0", "step10", "step5"]
    w1 = load_file(single / "checkpoints" / "step10" / "model.safetensors")
    w2 = load_file(ddp / "checkpoints" / "step10" / "model.safetensors")
    assert w1.keys() == w2.keys()
    for name in w1:
        torch.testing.assert_close(
            _no_key_bias(name, w2[name]),
            _no_key_bias(name, w1[name]),
            rtol=1e-4,
            atol=1e-5,
            msg=name,
        )
    assert (single / "checkpoints" / "step0" / "model.safetensors").read_bytes() == (
        ddp / "checkpoints" / "step0" / "model.safetensors"
    ).read_bytes()
    state = json.loads((ddp / "checkpoints" / "step10" / "trainer_state.json").read_text())
    assert state["world_size"] == 2
    # run.json records the layout (a resume must use the same one) and otherwise matches
    run1, run2 = (
        json.loads((single / "run.json").read_text()),
        json.loads((ddp / "run.json").read_text()),
    )
    assert run1.pop("parallel") == {
        "mode": "single",
        "world_size": 1,
        "device": "cpu",
        "activation_checkpointing": False,
    }
    assert run2.pop("parallel") == {
        "mode": "ddp",
        "world_size": 2,
        "device": "cpu",
        "activation_checkpointing": False,
    }
    assert run1 == run2


def test_batch_must_split_evenly(tiny_data: Path, tmp_path: Path) -> None:
    # every rank resolves the plan before joining any write: K=3 fails on all of them at once
    config = TrainConfig(model="pythia-nano", data=tiny_data, out=tmp_path / "r")
    with pytest.raises(ValueError, match="batch_size: 8 rows cannot be split over 3 processes"):
        plan_run(config, DistEnv(rank=1, world_size=3, local_world_size=3))
    assert [rank_slice(8, DistEnv(rank=r, world_size=4)) for r in range(4)] == [
        slice(0, 2),
        slice(2, 4),
        slice(4, 6),
        slice(6, 8),
    ]
    assert not (tmp_path / "r").exists()
