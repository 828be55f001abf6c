"""`train --precision`: bf16 / fp16 autocast with float32 master weights, fp16 loss scaling.

Reruns are byte-identical and a resume from a crash state ends byte-identical, in bf16 and fp16,
as for fp32 (test_trainer_resume.py). This CPU has no native float16 arithmetic, so `--precision
fp16` is refused here (one line, exit 2); the fp16 runs below lift that check in-process and
compute float16 through torch's (slow, exact) reference kernels on a tiny model.
"""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dataloader_replay.replay import TrainData
from pythia_suite.cli import main
from pythia_suite.training import precision as P
from pythia_suite.training.family import get_row
from pythia_suite.training.model import GPTNeoX, init_weights
from pythia_suite.training.optim import OptimConfig, lr_for_update
from pythia_suite.training.trainer import new_state, step_loss, train_step
from tests.pythia_suite.test_trainer_resume import assert_same_run

RULE = "log+every:8"


def args(data: Path, out: Path, precision: str, *extra: str) -> list[str]:
    return ["train", "--model", "pythia-nano", "--data", str(data), "--out", str(out),
            "--checkpoints", RULE, "--threads", "1", "--precision", precision, *extra]  # fmt: skip


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def fp16_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P, "fp16_supported", lambda device: True)


@pytest.fixture(scope="module")
def bf16_runs(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("bf16")
    for name in ("a", "b"):
        assert main(args(tiny_data, root / name, "bf16")) == 0
    return root / "a", root / "b"


@pytest.fixture(scope="module")
def fp16_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fp16") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(P, "fp16_supported", lambda device: True)
        assert main(args(tiny_data, out, "fp16", "--steps", "16")) == 0
    return out


def test_bf16_rerun_is_byte_identical(bf16_runs: tuple[Path, Path]) -> None:
    assert_same_run(*bf16_runs)


def test_bf16_run_config_weights_and_loss(bf16_runs: tuple[Path, Path], tiny_data: Path) -> None:
    run, _ = bf16_runs
    assert json.loads((run / "run.json").read_text())["precision"] == "bf16"
    state = json.loads((run / "checkpoints" / "step8" / "trainer_state.json").read_text())
    assert state["precision"] == "bf16" and state["loss_scaler"] is None
    weights = load_file(run / "checkpoints" / "step8" / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}  # master weights, as before
    # update 1's loss in bf16 against float32 from the same step0 weights, on the same batch
    cfg = (
        get_row("pythia-nano").with_vocab(TrainData.open(tiny_data).vocab_size).with_seq_length(32)
    )
    model = GPTNeoX(cfg)
    model.load_state_dict(load_file(run / "checkpoints" / "step0" / "model.safetensors"))
    rows = torch.from_numpy(TrainData.open(tiny_data).batch(0).astype(np.int64))
    with torch.no_grad():
        fp32 = float(step_loss(model, rows))
    rows_bf16 = metrics(run)
    assert abs(rows_bf16[0]["loss"] - fp32) < 0.01 * fp32
    assert rows_bf16[-1]["loss"] < rows_bf16[0]["loss"] - 0.5  # it learns
    assert list(rows_bf16[0]) == ["step", "loss", "lr", "grad_norm", "tokens", "batch_sha256"]


def _crash_and_resume(
    reference: Path, out: Path, keep: int, cut_line: int, argv: list[str]
) -> None:
    """Copy `reference`, drop checkpoints after `keep`, tear metrics mid-line `cut_line`, resume."""
    shutil.copytree(reference, out)
    dropped = [
        int(d.name.removeprefix("step"))
        for d in (out / "checkpoints").iterdir()
        if int(d.name.removeprefix("step")) > keep
    ]
    for step in dropped:
        shutil.rmtree(out / "checkpoints" / f"step{step}")
    with sqlite3.connect(out / "catalog.sqlite") as db:  # a kill leaves no rows without folders
        db.executemany("DELETE FROM checkpoints WHERE step = ?", [(s,) for s in dropped])
    lines = (out / "metrics.jsonl").read_text().splitlines(keepends=True)
    (out / "metrics.jsonl").write_text("".join(lines[:cut_line]) + lines[cut_line][:20])
    assert main([*argv, "--resume"]) == 0
    assert_same_run(reference, out)


def test_bf16_resume_is_byte_identical(
    bf16_runs: tuple[Path, Path], tiny_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    _crash_and_resume(bf16_runs[0], out, keep=8, cut_line=13, argv=args(tiny_data, out, "bf16"))


def test_fp16_metrics_log_the_loss_scale(fp16_run: Path) -> None:
    assert json.loads((fp16_run / "run.json").read_text())["precision"] == "fp16"
    rows = metrics(fp16_run)
    optim = OptimConfig(lr=get_row("pythia-nano").lr)
    skipped = 0
    for r in rows:
        assert list(r) == [
            "step",
            "loss",
            "lr",
            "grad_norm",
            "tokens",
            "batch_sha256",
            "loss_scale",
            "skipped",
        ]
        assert r["lr"] == lr_for_update(r["step"] - skipped, optim, 16)  # skips hold the schedule
        skipped += r["skipped"]
    assert rows[0]["loss_scale"] == 4096.0  # 2^12, DeepSpeed's initial_scale_power 12
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.3
    state = json.loads((fp16_run / "checkpoints" / "step8" / "trainer_state.json").read_text())
    assert state["loss_scaler"]["cur_iter"] == 8 and state["skipped"] == skipped == 0
    weights = load_file(fp16_run / "checkpoints" / "step8" / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}


def test_fp16_rerun_and_resume_are_byte_identical(
    fp16_run: Path, tiny_data: Path, tmp_path: Path, fp16_allowed: None
) -> None:
    out = tmp_path / "run"
    _crash_and_resume(
        fp16_run, out, keep=8, cut_line=10, argv=args(tiny_data, out, "fp16", "--steps", "16")
    )


def test_fp16_overflow_skips_the_update() -> None:
    """A loss scale of 2^40 overflows float16 gradients: no update, the scaler backs off as DeepSpeed."""
    cfg = get_row("pythia-nano").with_vocab(384).with_seq_length(16)
    model = GPTNeoX(cfg)
    init_weights(model, cfg, seed=3)
    state = new_state(model, OptimConfig(lr=cfg.lr), "fp16")
    assert state.scaler is not None
    state.scaler.scale = 2.0**40
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = np.random.default_rng(0).integers(0, 384, (2, 17))
    _, norm = train_step(state, rows, lr=1e-3, grad_clip=1.0)
    assert not math.isfinite(norm) and state.skipped == 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # not updated
    assert state.optimizer.state_dict()["state"] == {}  # AdamW never stepped
    assert (state.scaler.scale, state.scaler.cur_hysteresis) == (2.0**40, 1)  # hysteresis 2
    train_step(state, rows, lr=1e-3, grad_clip=1.0)
    assert state.skipped == 2 and state.scaler.scale == 2.0**39
    state.scaler.scale = 2.0**12
    _, norm = train_step(state, rows, lr=1e-3, grad_clip=1.0)
    assert math.isfinite(norm) and state.skipped == 2
    assert not torch.equal(before["embed_out.weight"], model.embed_out.weight)


def test_loss_scaler_follows_deepspeed() -> None:
    s = P.LossScaler()
    assert (s.scale, s.window, s.hysteresis, s.min_scale) == (4096.0, 1000, 2, 1.0)
    for _ in range(999):
        s.update(False)
    assert s.scale == 4096.0
    s.update(False)  # the 1000th clean step since the start doubles it
    assert s.scale == 8192.0
    s.update(True)  # first overflow: hysteresis absorbs it
    assert (s.scale, s.cur_hysteresis) == (8192.0, 1)
    s.update(True)
    assert s.scale == 4096.0
    s.update(True)  # hysteresis stays spent until a window of clean steps refills it
    assert s.scale == 2048.0
    for _ in range(999):
        s.update(False)
    assert (s.scale, s.cur_hysteresis) == (2048.0, 1)
    s.update(False)
    assert (s.scale, s.cur_hysteresis) == (4096.0, 2)
    low = P.LossScaler(scale=2.0, hysteresis=1)
    for _ in range(5):
        low.update(True)
    assert low.scale == 1.0  # never below min_loss_scale
    assert P.LossScaler.from_state(s.state_dict()) == s


def test_unknown_precision(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(args(tiny_data, tmp_path / "run", "fp8")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        "pythia-suite: error: --precision: unknown precision 'fp8' (known: fp32, bf16, fp16)"
    )
    assert not (tmp_path / "run").exists()


def test_fp16_on_a_cpu_without_float16(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    if P.fp16_supported("cpu"):  # a CPU with AVX512-FP16 / AMX-FP16 trains in fp16
        assert main(args(tiny_data, tmp_path / "run", "fp16", "--steps", "1")) == 0
        return
    assert main(args(tiny_data, tmp_path / "run", "fp16")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("pythia-suite: error: --precision: fp16 needs native float16 arithmetic")
    assert not (tmp_path / "run").exists()
