"""FSDP2 on 2 processes (gloo, CPU) against one process; the per-rank memory plan against the
tensors of a row actually sharded; the bad-input cases of `--parallel` and `--memory`.

Every multi-process check shares one `torchrun` launch of `fsdp_worker.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from checkpoints_index.catalog import Catalog
from dataloader_replay.replay import TrainData
from pythia_suite.cli import main
from pythia_suite.training.distributed import DistEnv
from pythia_suite.training.family import get_row, param_counts
from pythia_suite.training.fsdp import mp_policy
from pythia_suite.training.memory import memory_plan, shard_numel
from pythia_suite.training.model import GPTNeoX, init_weights
from pythia_suite.training.setup import TrainConfig, plan_run, prepare_run_dir
from tests.pythia_suite.fsdp_worker import STEPS, odd_row, train_args
from tests.pythia_suite.test_trainer_ddp import _no_key_bias, metrics

WORKER = Path(__file__).with_name("fsdp_worker.py")
FILES = ("model.safetensors", "optimizer.pt", "trainer_state.json", "rng.pt", "config.json")


@pytest.fixture(scope="module")
def runs(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OUT/single (one process, in this one) and the worker's OUT/{fsdp,resumed,bf16,bytes_*}."""
    out = tmp_path_factory.mktemp("fsdp")
    assert main(train_args(tiny_data, out / "single")) == 0
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")
    }
    root = str(Path(__file__).parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node",
        "2",
        str(WORKER),
        str(tiny_data),
        str(out),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_fsdp_losses_equal_one_process(runs: Path) -> None:
    one, two = metrics(runs / "single"), metrics(runs / "fsdp")
    assert [r["step"] for r in two] == list(range(1, STEPS + 1))
    for a, b in zip(one, two):
        assert (a["step"], a["tokens"], a["batch_sha256"], a["lr"]) == (
            b["step"],
            b["tokens"],
            b["batch_sha256"],
            b["lr"],
        )
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5)
    # step 0 is the one-process initialization, bit for bit, although built shard by shard
    ck = runs / "fsdp" / "checkpoints"
    assert (ck / "step0" / "model.safetensors").read_bytes() == (
        runs / "single" / "checkpoints" / "step0" / "model.safetensors"
    ).read_bytes()
    w1 = load_file(runs / "single" / "checkpoints" / "step10" / "model.safetensors")
    w2 = load_file(ck / "step10" / "model.safetensors")
    assert w1.keys() == w2.keys()
    for name in w1:
        torch.testing.assert_close(
            _no_key_bias(name, w2[name]),
            _no_key_bias(name, w1[name]),
            rtol=1e-4,
            atol=1e-5,
            msg=name,
        )
    # the gathered optimizer state has the one-process layout
    o1 = torch.load(runs / "single" / "checkpoints" / "step10" / "optimizer.pt", weights_only=True)
    o2 = torch.load(ck / "step10" / "optimizer.pt", weights_only=True)
    assert o1["param_groups"] == o2["param_groups"]
    assert {i: {k: v.shape for k, v in s.items()} for i, s in o1["state"].items()} == {
        i: {k: v.shape for k, v in s.items()} for i, s in o2["state"].items()
    }
    run = json.loads((runs / "fsdp" / "run.json").read_text())
    assert run["parallel"] == {
        "mode": "fsdp",
        "world_size": 2,
        "device": "cpu",
        "activation_checkpointing": True,
    }
    assert run["precision"] == "fp32"


def test_fsdp_checkpoints_load_in_transformers(runs: Path, tiny_data: Path) -> None:
    from transformers import GPTNeoXForCausalLM

    hf = GPTNeoXForCausalLM.from_pretrained(runs / "fsdp" / "checkpoints" / "step5").eval()
    batch = torch.from_numpy(TrainData.open(tiny_data).batch(5).astype("int64"))
    with torch.no_grad():
        logits = hf(batch[:, :-1]).logits
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1)
    )
    assert float(loss) == pytest.approx(
        metrics(runs / "fsdp")[5]["loss"], rel=1e-5
    )  # update 6 trains batch 5


def test_fsdp_stop_resume_is_byte_identical_and_catalogued(runs: Path) -> None:
    a, b = runs / "fsdp", runs / "resumed"
    for step in ("step0", "step5", "step10"):
        for f in FILES:
            assert (a / "checkpoints" / step / f).read_bytes() == (
                b / "checkpoints" / step / f
            ).read_bytes(), (step, f)
    assert (a / "metrics.jsonl").read_bytes() == (b / "metrics.jsonl").read_bytes()
    with Catalog.open(b) as catalog:
        assert [r.step for r in catalog.checkpoints()] == [0, 5, 10]
        assert catalog.verify() == []
    # a corrupt checkpoint: rank 0 refuses it and rank 1 stops with it (exit 2 on both)
    assert [(runs / f"corrupt_rc{r}").read_text() for r in (0, 1)] == ["2", "2"]


def test_fsdp_bf16_trains_in_float32_master_weights(runs: Path) -> None:
    one, bf16 = metrics(runs / "single")[:4], metrics(runs / "bf16")
    for a, b in zip(one, bf16):
        assert b["loss"] == pytest.approx(a["loss"], rel=2e-2)  # bf16 compute, 8-bit mantissa
    weights = load_file(runs / "bf16" / "checkpoints" / "step4" / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}
    assert json.loads((runs / "bf16" / "run.json").read_text())["precision"] == "bf16"
    assert (
        mp_policy("bf16").param_dtype == torch.bfloat16
        and mp_policy("bf16").reduce_dtype == torch.float32
    )
    assert mp_policy("fp32").param_dtype is None


def test_uneven_shards_initialize_and_count_as_one_process(runs: Path) -> None:
    cfg = odd_row()
    model = GPTNeoX(cfg)
    init_weights(model, cfg, seed=cfg.init_seed)
    gathered = load_file(runs / "odd_init.safetensors")
    assert gathered.keys() == model.state_dict().keys()
    for name, t in model.state_dict().items():
        assert torch.equal(gathered[name], t), name  # bit for bit, shard by shard
    assert model.gpt_neox.final_layer_norm.weight.shape == (33,)  # 17 + 16 rows
    for rank in (0, 1):
        measured = json.loads((runs / f"bytes_rank{rank}.json").read_text())
        plan = memory_plan(cfg, world_size=2, parallel="fsdp", rank=rank, micro_batch=4)
        assert measured == {
            "parameters": plan.master_weights,
            "gradients": plan.gradient_shards,
            "optimizer": plan.optimizer,
        }
    assert plan.parameter_count == param_counts(cfg)[0]


def test_resume_with_another_layout_is_refused(runs: Path, tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs / "fsdp", run)
    base = {
        "model": "pythia-nano",
        "data": tiny_data,
        "out": run,
        "steps": STEPS,
        "checkpoints": "steps:0,5,10",
        "resume": True,
        "activation_checkpointing": True,
    }
    cases = [
        (
            TrainConfig(**base, parallel="fsdp"),
            DistEnv(rank=0, world_size=4),
            "parallel.world_size",
        ),
        (TrainConfig(**base, parallel="ddp"), DistEnv(rank=0, world_size=2), "parallel.mode"),
        (
            TrainConfig(**base, parallel="fsdp", precision="bf16"),
            DistEnv(rank=0, world_size=2),
            "precision",
        ),
    ]
    for config, env, field in cases:
        with pytest.raises(ValueError, match=rf"run.json: field '{field}' differs"):
            prepare_run_dir(plan_run(config, env))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--parallel", "zero3"), "--parallel: unknown mode 'zero3' (known: ddp, fsdp)"),
        (
            ("--parallel", "fsdp"),
            "--parallel: fsdp shards the model over several processes and this is one",
        ),
        (("--device", "tpu"), "--device: unknown device 'tpu'"),
        pytest.param(
            ("--device", "cuda"),
            "--device: cuda asked for, but this torch sees no CUDA device",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present"),
        ),
    ],
)
def test_bad_parallel_input(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture, extra: tuple, message: str
) -> None:
    assert main(train_args(tiny_data, tmp_path / "r", *extra)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "r").exists()


def test_world_size_must_divide_the_batch(tiny_data: Path, tmp_path: Path) -> None:
    config = TrainConfig(model="pythia-nano", data=tiny_data, out=tmp_path / "r", parallel="fsdp")
    with pytest.raises(ValueError, match="batch_size: 8 rows cannot be split over 3 processes"):
        plan_run(config, DistEnv(rank=2, world_size=3, local_world_size=3))


def test_activation_checkpointing_changes_no_bit(
    runs: Path, tiny_data: Path, tmp_path: Path
) -> None:
    assert main(train_args(tiny_data, tmp_path / "ac", "--activation-checkpointing")) == 0
    single = runs / "single" / "checkpoints" / "step10" / "model.safetensors"
    assert (
        tmp_path / "ac" / "checkpoints" / "step10" / "model.safetensors"
    ).read_bytes() == single.read_bytes()


# -- the memory plan on paper ------------------------------------------------------------------


def test_shard_numel_is_torch_chunk() -> None:
    for rows, world in [(50688, 64), (7, 4), (3, 4), (5120, 256), (1, 2)]:
        pieces = torch.empty(rows, 3).chunk(world)
        expected = [p.numel() for p in pieces] + [0] * (world - len(pieces))
        assert [shard_numel((rows, 3), world, r) for r in range(world)] == expected


def test_memory_plan_of_pythia_12b() -> None:
    cfg = get_row("pythia-12b")
    p = memory_plan(
        cfg, world_size=256, parallel="fsdp", precision="bf16", activation_checkpointing=True
    )
    assert p.parameter_count == 11_846_072_320 and p.micro_batch == 4
    assert p.optimizer == pytest.approx(8 * p.parameter_count / 256, rel=0.01)
    assert (
        p.master_weights
        == p.gradient_shards
        == pytest.approx(4 * p.parameter_count / 256, rel=0.01)
    )
    ddp = memory_plan(cfg, world_size=64, parallel="ddp", precision="bf16")
    assert ddp.master_weights == 4 * ddp.parameter_count and ddp.optimizer > 8 * ddp.parameter_count
    full = memory_plan(cfg, world_size=64, parallel="fsdp", precision="bf16")
    assert (
        full.activations
        > 10
        * memory_plan(
            cfg, world_size=64, precision="bf16", activation_checkpointing=True
        ).activations
    )


def test_family_memory_cli(capsys: pytest.CaptureFixture) -> None:
    assert main(["family", "--memory", "pythia-6.9b", "--world-size", "64", "--precision", "bf16",
                 "--activation-checkpointing", "--format", "json"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["parallel"] == "fsdp" and out["micro_batch"] == 16
    assert (
        out["total"] == out["parameters"] + out["gradients"] + out["optimizer"] + out["activations"]
    )
    assert main(["family", "--memory", "pythia-1b", "--world-size", "8"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("pythia-1b")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--memory", "pythia-99b"], "--memory: unknown model 'pythia-99b'"),
        (
            ["--memory", "pythia-12b", "--world-size", "3"],
            "--world-size: 1024 rows per batch (pythia-12b) cannot be split",
        ),
        (
            ["--memory", "pythia-12b", "--world-size", "8", "--parallel", "tp"],
            "--parallel: unknown mode 'tp'",
        ),
        (
            ["--memory", "pythia-12b", "--world-size", "8", "--precision", "fp8"],
            "--precision: unknown precision 'fp8'",
        ),
        (["--memory", "pythia-12b", "--parallel", "fsdp"], "--world-size: fsdp shards the model"),
        (
            ["--memory", "pythia-12b", "--world-size", "8", "--micro-batch", "200"],
            "--micro-batch: must be between 1 and 128",
        ),
    ],
)
def test_family_memory_bad_input(
    capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    assert main(["family", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
