"""The two hand-written autograd ops of the training step against autograd itself.

`_Rotary` (model.py) and `_LinearCrossEntropy` (trainer.py) compute their gradients by hand for
speed; these tests hold them to `torch.autograd.gradcheck` in float64 and to the plain
`F.cross_entropy(h @ w.T)` / full-model autograd in float32.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pythia_suite.training.family import get_row
from pythia_suite.training.model import GPTNeoX, _Rotary, init_weights, rotary_tables
from pythia_suite.training.trainer import _LinearCrossEntropy, step_loss


def test_rotary_backward_passes_gradcheck() -> None:
    cfg = get_row("pythia-nano").with_vocab(256).with_seq_length(16)
    cos, sin = (t.double()[:, None, :] for t in rotary_tables(cfg))  # [T, 1, hd], [T, 1, r]
    x = torch.randn(2, 16, cfg.num_heads, cfg.head_dim, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _Rotary.apply(t, cos, sin), (x,))


def test_rotary_equals_rotate_half_formula() -> None:
    cfg = get_row("pythia-nano").with_vocab(256).with_seq_length(8)
    r, half = cfg.rotary_dims, cfg.rotary_dims // 2
    cos, sin = (t[:, None, :] for t in rotary_tables(cfg))
    x = torch.randn(1, 8, cfg.num_heads, cfg.head_dim)
    angle_cos = cos[..., :r]
    angle_sin = torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)  # undo the folded sign
    rot = x[..., :r] * angle_cos + torch.cat((-x[..., half:r], x[..., :half]), dim=-1) * angle_sin
    expected = torch.cat((rot, x[..., r:]), dim=-1)
    torch.testing.assert_close(_Rotary.apply(x, cos, sin), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("chunk", [1 << 21, 64])  # one chunk, and many chunks of 64 // V rows
def test_linear_cross_entropy_gradcheck_and_value(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_LinearCrossEntropy, "CHUNK", chunk)
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(13, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(10, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    labels = torch.randint(0, 10, (13,), generator=gen)
    assert torch.autograd.gradcheck(
        lambda a, b: _LinearCrossEntropy.apply(a, b, labels, torch.float64), (h, w)
    )
    ours = _LinearCrossEntropy.apply(h, w, labels, torch.float64)
    reference = F.cross_entropy(h @ w.t(), labels)
    assert abs(float(ours) - float(reference)) < 1e-12


def test_step_loss_gradients_equal_plain_autograd() -> None:
    cfg = get_row("pythia-nano").with_vocab(384).with_seq_length(32)
    model = GPTNeoX(cfg)
    init_weights(model, cfg, seed=3)
    rows = torch.from_numpy(np.random.default_rng(0).integers(0, 384, (4, 33)))
    loss = step_loss(model, rows)
    loss.backward()
    ours = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    logits = model(rows[:, :-1])
    plain = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1))
    plain.backward()
    torch.testing.assert_close(loss, plain, rtol=1e-6, atol=1e-6)
    for name, p in model.named_parameters():
        torch.testing.assert_close(ours[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_step_loss_under_autocast_equals_plain_autocast(dtype: torch.dtype) -> None:
    """The fused output layer in bf16 / fp16 against autocast's own linear + float32 cross-entropy."""
    cfg = get_row("pythia-nano").with_vocab(384).with_seq_length(16)
    model = GPTNeoX(cfg)
    init_weights(model, cfg, seed=3)
    rows = torch.from_numpy(np.random.default_rng(0).integers(0, 384, (2, 17)))
    with torch.autocast("cpu", dtype=dtype):
        loss = step_loss(model, rows)
    loss.backward()
    assert loss.dtype == torch.float32
    ours = {k: p.grad.clone() for k, p in model.named_parameters()}
    assert all(g.dtype == torch.float32 for g in ours.values())  # master weights' gradients
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=dtype):
        logits = model(rows[:, :-1])  # [b, T, V] in dtype
    assert logits.dtype == dtype
    plain = F.cross_entropy(logits.float().reshape(-1, 384), rows[:, 1:].reshape(-1))
    plain.backward()
    torch.testing.assert_close(loss, plain, rtol=1e-3, atol=1e-3)
    for name, p in model.named_parameters():
        scale = float(p.grad.abs().max())  # low-precision gradients: compare to the largest entry
        torch.testing.assert_close(ours[name], p.grad, rtol=0, atol=0.05 * scale, msg=name)
