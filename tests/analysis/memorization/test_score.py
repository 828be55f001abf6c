"""The two-path score against transformers' generate() and against known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.memorization.score import ScoreConfig, first_mismatch, score_rows
from analysis.sources import open_checkpoints, open_rows

from .conftest import TARGET, K


@pytest.fixture(scope="module")
def model(mem_run: Path):
    ck = open_checkpoints(mem_run)
    return ck.load(ck.steps[-1])


def greedy_generate(model, prompts: torch.Tensor, n: int) -> torch.Tensor:
    """transformers' generate(do_sample=False), never stopping early at an end token."""
    model.generation_config.eos_token_id = None
    out = model.generate(
        prompts,
        attention_mask=torch.ones_like(prompts),
        do_sample=False,
        max_new_tokens=n,
        pad_token_id=1,
    )
    return out[:, prompts.shape[1] :]


@pytest.fixture(scope="module")
def crafted(model, mem_run: Path) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose answers are known: memorized (the model's own greedy continuation), partly
    memorized (greedy with target tokens changed from a known position), not memorized."""
    rows = open_rows(mem_run).rows(0, 24).astype(np.int64)
    gen = greedy_generate(model, torch.from_numpy(rows[:, :K]), TARGET).numpy()
    out, expect = rows.copy(), np.zeros(len(rows))
    rng = np.random.default_rng(0)
    for i in range(len(rows)):
        kind = i % 3
        target = gen[i].copy()
        if kind == 0:  # memorized
            expect[i] = 1.0
        elif kind == 1:  # partly: positions >= j changed where they differ (one in two)
            j = 1 + i % (TARGET - 2)
            changed = np.arange(j, TARGET)[::2]
            target[changed] = (target[changed] + 1 + rng.integers(0, 100, changed.size)) % 512
            expect[i] = (TARGET - changed.size) / TARGET
        else:  # not memorized: every target token changed
            target = (target + 1 + rng.integers(0, 100, TARGET)) % 512
            expect[i] = 0.0
        out[i, K : K + TARGET] = target
    return out, expect


def test_scores_equal_generate(model, crafted) -> None:
    rows, expect = crafted
    res = score_rows(model, rows, ScoreConfig(k=K, target=TARGET))
    gen = greedy_generate(model, torch.from_numpy(rows[:, :K]), TARGET).numpy()
    by_generate = (gen == rows[:, K : K + TARGET]).mean(axis=1)
    np.testing.assert_array_equal(res.scores, by_generate.astype(np.float32))
    np.testing.assert_allclose(res.scores, expect)
    assert {0.0, 1.0} <= set(res.scores.tolist()) and ((res.scores > 0) & (res.scores < 1)).any()
    assert res.decoded == int((expect < 1).sum())


def test_loglik_and_token_acc_match_a_plain_forward(model, crafted) -> None:
    rows, _ = crafted
    res = score_rows(model, rows, ScoreConfig(k=K, target=TARGET))
    x = torch.from_numpy(rows)
    with torch.no_grad():
        logits = model(x[:, :-1]).logits
    logp = torch.log_softmax(logits, -1).gather(-1, x[:, 1:, None])[..., 0]
    np.testing.assert_allclose(res.loglik, logp.mean(1).numpy(), rtol=1e-5, atol=1e-5)
    acc = (logits.argmax(-1) == x[:, 1:]).float().mean(1).numpy()
    np.testing.assert_array_equal(res.token_acc, acc)


def test_first_mismatch() -> None:
    a = np.array([[1, 2, 3], [1, 9, 3], [9, 2, 3]])
    assert first_mismatch(a, np.array([[1, 2, 3]] * 3)).tolist() == [3, 1, 0]


def test_bfloat16_scores_are_close(mem_run: Path, crafted) -> None:
    rows, expect = crafted
    ck = open_checkpoints(mem_run)
    res = score_rows(ck.load(ck.steps[-1], dtype="bfloat16"), rows, ScoreConfig(k=K, target=TARGET))
    assert res.scores.dtype == np.float32 and np.abs(res.scores - expect).mean() < 0.2


def test_rows_too_short() -> None:
    with pytest.raises(ValueError, match="seq_length"):
        ScoreConfig(k=32, target=32).check(33, where="data")
