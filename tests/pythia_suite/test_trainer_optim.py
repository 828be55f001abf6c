"""The optimizer side: GPT-NeoX's AnnealingLR semantics and weight-decay groups."""

from __future__ import annotations

import math

import pytest
import torch

from pythia_suite.training.family import get_row, hf_config
from pythia_suite.training.model import GPTNeoX
from pythia_suite.training.optim import (
    OptimConfig,
    annealing_lr,
    build_optimizer,
    lr_for_update,
    no_decay_names,
    param_groups,
)

PEAK = 1e-3
CFG = OptimConfig(lr=PEAK, lr_schedule="cosine")  # 1% warmup, the later cosine to 10%


def test_update_one_has_lr_zero_and_warmup_is_linear_from_zero() -> None:
    # 1000 steps: warmup_iters = 10.0; update n uses the schedule after n-1 updates
    assert lr_for_update(1, CFG, 1000) == 0.0
    assert lr_for_update(2, CFG, 1000) == pytest.approx(PEAK * 1 / 10, rel=1e-15)
    assert lr_for_update(6, CFG, 1000) == pytest.approx(PEAK * 5 / 10, rel=1e-15)
    assert lr_for_update(11, CFG, 1000) == PEAK  # num_iters == warmup: the peak, exactly


def test_cosine_to_ten_percent() -> None:
    steps = 1000
    w = 10.0
    # halfway through the decay: the mean of peak and floor
    mid = int(w + (steps - w) / 2)
    assert annealing_lr(
        mid, peak=PEAK, min_lr=PEAK / 10, warmup_iters=w, total=steps
    ) == pytest.approx((PEAK + PEAK / 10) / 2, rel=1e-12)
    assert annealing_lr(
        steps, peak=PEAK, min_lr=PEAK / 10, warmup_iters=w, total=steps
    ) == pytest.approx(PEAK / 10)
    last = lr_for_update(steps, CFG, steps)  # 999 updates done
    expected = PEAK / 10 + (PEAK - PEAK / 10) / 2 * (
        math.cos(math.pi * (999 - w) / (steps - w)) + 1
    )
    assert last == pytest.approx(expected, rel=1e-15)
    lrs = [lr_for_update(n, CFG, steps) for n in range(11, steps + 1)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))  # monotone after the warmup


def test_pythia_scale_schedule() -> None:
    # 143000 steps, warmup 1430 iterations (float, as GPT-NeoX computes it)
    assert lr_for_update(1431, CFG, 143_000) == PEAK
    assert lr_for_update(716, CFG, 143_000) == pytest.approx(PEAK * 715 / 1430)
    assert lr_for_update(143_000, CFG, 143_000) == pytest.approx(PEAK / 10, rel=1e-6)


def test_short_run_fractional_warmup() -> None:
    # 20 steps: warmup 0.2 iterations; update 1 still at 0, update 2 already decaying from the peak
    assert lr_for_update(1, CFG, 20) == 0.0
    assert lr_for_update(2, CFG, 20) == pytest.approx(
        PEAK / 10 + 0.9 * PEAK / 2 * (math.cos(math.pi * 0.8 / 19.8) + 1), rel=1e-15
    )
    with pytest.raises(ValueError, match="update"):
        lr_for_update(0, CFG, 20)


def _hf_no_decay(cfg) -> set[str]:
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    hf = GPTNeoXForCausalLM(GPTNeoXConfig(**hf_config(cfg)))
    names = no_decay_names(hf)  # the same GPT-NeoX rule applied to the transformers module tree
    return {n.replace("lm_head.", "embed_out.") for n in names}, {
        n.replace("lm_head.", "embed_out.") for n, _ in hf.named_parameters()
    }


def test_no_decay_is_layernorms_and_biases_as_in_transformers_tree() -> None:
    cfg = get_row("pythia-nano").with_vocab(300).with_seq_length(32)
    model = GPTNeoX(cfg)
    ours = no_decay_names(model)
    theirs, hf_names = _hf_no_decay(cfg)
    assert ours == theirs
    all_names = {n for n, _ in model.named_parameters()}
    assert all_names == hf_names
    expected = {
        n for n in all_names if n.endswith(".bias") or "layernorm" in n or "final_layer_norm" in n
    }
    assert ours == expected
    assert "gpt_neox.embed_in.weight" not in ours and "embed_out.weight" not in ours
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(all_names)
    # per layer: qkv, dense, h_to_4h, 4h_to_h weights; plus embed_in, embed_out
    assert len(decay["params"]) == 4 * cfg.num_layers + 2


def test_fused_adamw_matches_reference_adamw() -> None:
    cfg = get_row("pythia-nano").with_vocab(300).with_seq_length(16)
    torch.manual_seed(0)
    a, b = GPTNeoX(cfg), GPTNeoX(cfg)
    b.load_state_dict(a.state_dict())
    opt_a = build_optimizer(a, CFG)
    opt_b = torch.optim.AdamW(
        param_groups(b, 0.1), lr=0.0, betas=(0.9, 0.95), eps=1e-8, foreach=False
    )
    ids = torch.randint(0, 300, (2, 16))
    for lr in (1e-3, 5e-4):
        for model, opt in ((a, opt_a), (b, opt_b)):
            for g in opt.param_groups:
                g["lr"] = lr
            opt.zero_grad()
            model(ids).float().logsumexp(-1).mean().backward()
            opt.step()
    # updates are ~lr = 1e-3; the kernels differ only in rounding (the key bias, whose gradient
    # is pure rounding noise, moves by up to ~1e-6 either way), weight decay is 1e-5 per step
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=2e-6, msg=name)
    assert opt_a.param_groups[0]["betas"] == (0.9, 0.95) and opt_a.param_groups[0]["eps"] == 1e-8
