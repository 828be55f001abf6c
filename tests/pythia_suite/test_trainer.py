"""The trainer end to end, in process through `pythia_suite.cli.main`.

Byte-identical reruns; the metrics contract (fixed order, batch hashes, lr, tokens); the logged
loss against transformers' GPTNeoXForCausalLM loading our checkpoints; run.json and the catalog.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from checkpoints_index.catalog import Catalog
from checkpoints_index.schedule import checkpoint_steps
from dataloader_replay.batch_hashes import batch_sha256
from dataloader_replay.replay import TrainData
from pythia_suite.cli import main
from pythia_suite.training.family import get_row
from pythia_suite.training.optim import OptimConfig, lr_for_update
from pythia_suite.training.setup import default_rule

STEPS = 12
RULE = "log+every:4"


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--model", "pythia-nano", "--data", str(data), "--out", str(out),
            "--steps", str(STEPS), "--checkpoints", RULE, "--threads", "1", *extra]  # fmt: skip


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def two_runs(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    a, b = root / "a", root / "b"
    assert main(train_args(tiny_data, a)) == 0
    assert main(train_args(tiny_data, b)) == 0
    return a, b


def test_rerun_is_byte_identical(two_runs: tuple[Path, Path]) -> None:
    a, b = two_runs
    steps = checkpoint_steps(RULE, STEPS)
    assert steps == [0, 1, 2, 4, 8, 12]
    assert sorted(p.name for p in (a / "checkpoints").iterdir()) == sorted(
        f"step{s}" for s in steps
    )
    for s in steps:
        for name in (
            "model.safetensors",
            "optimizer.pt",
            "trainer_state.json",
            "config.json",
            "SHA256SUMS",
        ):
            fa, fb = a / "checkpoints" / f"step{s}" / name, b / "checkpoints" / f"step{s}" / name
            assert fa.read_bytes() == fb.read_bytes(), (s, name)
    assert (a / "metrics.jsonl").read_bytes() == (b / "metrics.jsonl").read_bytes()
    # training moved the weights (update 1 has lr 0, so step1 == step0 as in GPT-NeoX)
    ck = a / "checkpoints"
    assert (ck / "step1" / "model.safetensors").read_bytes() == (
        ck / "step0" / "model.safetensors"
    ).read_bytes()
    assert (ck / "step2" / "model.safetensors").read_bytes() != (
        ck / "step1" / "model.safetensors"
    ).read_bytes()


def test_metrics_follow_the_fixed_order(two_runs: tuple[Path, Path], tiny_data: Path) -> None:
    a, _ = two_runs
    td = TrainData.open(tiny_data)
    rows = read_metrics(a)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    optim = OptimConfig(lr=get_row("pythia-nano").lr)
    for r in rows:
        n = r["step"]
        assert list(r) == ["step", "loss", "lr", "grad_norm", "tokens", "batch_sha256"]
        assert r["batch_sha256"] == batch_sha256(td.batch(n - 1))
        assert r["tokens"] == n * td.batch_size * td.seq_length
        assert r["lr"] == lr_for_update(n, optim, STEPS)
        assert np.isfinite(r["loss"]) and r["grad_norm"] > 0
    assert rows[0]["lr"] == 0.0
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.5  # it learns


def test_run_json_and_catalog(two_runs: tuple[Path, Path], tiny_data: Path) -> None:
    a, _ = two_runs
    cfg = json.loads((a / "run.json").read_text())
    manifest = json.loads((tiny_data / "manifest.json").read_text())
    from suite_core.records import compute_fingerprint, fingerprint_content

    assert cfg["data"] == {  # the data named by its fingerprint only (no manifest_sha256)
        "path": str(tiny_data.absolute()),
        "manifest": fingerprint_content(manifest),
        "fingerprint": manifest["fingerprint"],
        "transform": None,
    }
    assert manifest["fingerprint"] == compute_fingerprint(manifest)
    assert cfg["steps"] == STEPS and cfg["seed"] == 1234 and cfg["data_seed"] == manifest["seed"]
    assert cfg["model"]["name"] == "pythia-nano"
    assert cfg["model"]["vocab_size"] == -(-manifest["vocab_size"] // 128) * 128
    assert cfg["model"]["seq_length"] == manifest["seq_length"]
    assert cfg["checkpoints"] == {"rule": RULE, "steps": [0, 1, 2, 4, 8, 12]}
    assert cfg["optim"]["betas"] == [0.9, 0.95] and cfg["optim"]["weight_decay"] == 0.1
    assert cfg["optim"]["lr_schedule"] == "neox-v1.0" and cfg["precision"] == "fp32"
    with Catalog.open(a) as catalog:
        assert [r.step for r in catalog.checkpoints()] == [0, 1, 2, 4, 8, 12]
        assert catalog.run().weight_seed == 1234
        assert catalog.verify() == []
    state = json.loads((a / "checkpoints" / "step8" / "trainer_state.json").read_text())
    assert state["step"] == 8 and state["tokens"] == 8 * 8 * 32 and state["world_size"] == 1


@pytest.mark.parametrize("step", [0, 4, 8])
def test_logged_loss_equals_transformers_loss_on_replayed_batch(
    two_runs: tuple[Path, Path], tiny_data: Path, step: int
) -> None:
    from transformers import GPTNeoXForCausalLM

    a, _ = two_runs
    hf = GPTNeoXForCausalLM.from_pretrained(a / "checkpoints" / f"step{step}").eval()
    batch = torch.from_numpy(TrainData.open(tiny_data).batch(step).astype(np.int64))
    with torch.no_grad():
        logits = hf(batch[:, :-1]).logits
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1)
    )
    logged = read_metrics(a)[step]  # the line of update step+1
    assert logged["step"] == step + 1
    assert float(loss) == pytest.approx(logged["loss"], rel=2e-6, abs=2e-6)


def test_default_checkpoint_rules() -> None:
    assert default_rule(get_row("pythia-70m"), 143_000) == "log+every:1000"
    assert (
        len(checkpoint_steps(default_rule(get_row("pythia-160m-deduped"), 143_000), 143_000)) == 154
    )
    assert default_rule(get_row("pythia-nano"), 64) == "log+every:6"
    assert default_rule(get_row("pythia-nano"), 5) == "log+every:1"


def test_pythia_70m_runs_on_cpu(data_70m: Path, tmp_path: Path) -> None:
    run = tmp_path / "run70m"
    assert main(["train", "--model", "pythia-70m", "--data", str(data_70m), "--out", str(run),
                 "--checkpoints", "steps:2"]) == 0  # fmt: skip
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step2"]
    cfg = json.loads((run / "checkpoints" / "step2" / "config.json").read_text())
    assert (
        cfg["vocab_size"] == 50304
        and cfg["hidden_size"] == 512
        and cfg["max_position_embeddings"] == 32
    )


def test_transformed_run_logs_what_replay_returns(tiny_data: Path, tmp_path: Path) -> None:
    from dataloader_replay.sources import open_run
    from pythia_suite.training.trainer import TrainConfig, train

    common = np.bincount(TrainData.open(tiny_data).batch(3).ravel()).argsort()[::-1][:4]
    spec = {"name": "token_swap", "pairs": [[int(common[0]), int(common[1])], [int(common[2]), int(common[3])]],
            "start_step": 2}  # fmt: skip
    result = train(TrainConfig(model="pythia-nano", data=tiny_data, out=tmp_path / "run", steps=4,
                               checkpoints="steps:4", transform=spec, threads=1))  # fmt: skip
    assert result.steps == 4 and result.resumed_from is None
    assert json.loads((tmp_path / "run" / "run.json").read_text())["data"]["transform"] == spec
    replay, plain = open_run(tmp_path / "run"), TrainData.open(tiny_data)
    rows = read_metrics(tmp_path / "run")
    for r in rows:
        assert r["batch_sha256"] == batch_sha256(replay.batch(r["step"] - 1))
    assert rows[0]["batch_sha256"] == batch_sha256(plain.batch(0))  # before start_step: unchanged
    assert rows[3]["batch_sha256"] != batch_sha256(plain.batch(3))
