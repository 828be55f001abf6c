"""The GPT-NeoX module against transformers' GPTNeoXForCausalLM (the oracle), counts, init."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from pythia_suite.training.family import FAMILY, ModelConfig, get_row, hf_config, param_counts
from pythia_suite.training.model import GPTNeoX, init_weights

ODD = ModelConfig(name="odd", num_layers=3, hidden_size=72, num_heads=3, intermediate_size=200,
                  seq_length=37, vocab_size=333)  # fmt: skip  # head_dim 24 -> 6 rotary dims


def _build(cfg: ModelConfig, seed: int = 7) -> GPTNeoX:
    model = GPTNeoX(cfg)
    init_weights(model, cfg, seed=seed)
    return model.eval()


def _hf_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers 5 holds `embed_out.weight` as `lm_head.weight` in memory."""
    return {("lm_head.weight" if k == "embed_out.weight" else k): v for k, v in state.items()}


@pytest.fixture(params=["nano", "odd"])
def cfg(request: pytest.FixtureRequest) -> ModelConfig:
    return get_row("pythia-nano").with_vocab(1000) if request.param == "nano" else ODD


@torch.no_grad()
def test_logits_match_transformers(cfg: ModelConfig) -> None:
    ours = _build(cfg)
    hf = GPTNeoXForCausalLM(GPTNeoXConfig(**hf_config(cfg))).eval()
    state = _hf_keys(ours.state_dict())
    assert sorted(state) == sorted(hf.state_dict())
    hf.load_state_dict(state, strict=True)
    ids = torch.randint(
        0, cfg.vocab_size, (3, cfg.seq_length), generator=torch.Generator().manual_seed(0)
    )
    logits = ours(ids)
    assert logits.shape == (3, cfg.seq_length, cfg.vocab_size)
    torch.testing.assert_close(logits, hf(ids).logits)
    # and the other way: transformers' weights (lm_head name) load into ours
    fresh = GPTNeoX(cfg).eval()
    fresh.load_state_dict(hf.state_dict(), strict=True)
    assert torch.equal(fresh(ids), logits)


@torch.no_grad()
def test_checkpoint_files_load_with_from_pretrained(cfg: ModelConfig, tmp_path: Path) -> None:
    ours = _build(cfg, seed=3)
    save_file(ours.state_dict(), tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(hf_config(cfg)))
    hf, info = GPTNeoXForCausalLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    ids = torch.randint(0, cfg.vocab_size, (2, 17), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(hf.eval()(ids).logits, ours(ids))
    # transformers' own save loads back into ours, bitwise
    hf.save_pretrained(tmp_path / "hf")
    back = GPTNeoX(cfg).eval()
    back.load_state_dict(load_file(tmp_path / "hf" / "model.safetensors"), strict=True)
    assert torch.equal(back(ids), ours(ids))


@pytest.mark.parametrize("name", [n for n, row in FAMILY.items() if row.published])
def test_meta_build_has_published_param_count(name: str) -> None:
    cfg = get_row(name)
    with torch.device("meta"):
        model = GPTNeoX(cfg)
    assert sum(p.numel() for p in model.parameters()) == param_counts(cfg)[0]
    non_embedding = sum(p.numel() for k, p in model.named_parameters() if "embed_" not in k)
    assert non_embedding == param_counts(cfg)[1]


def test_twelve_b_on_meta() -> None:
    with torch.device("meta"):
        model = GPTNeoX(get_row("pythia-12b"))
    assert sum(p.numel() for p in model.parameters()) == 11_846_072_320


def test_pythia_70m_forward_backward_on_cpu() -> None:
    cfg = get_row("pythia-70m").with_seq_length(64)
    model = _build(cfg, seed=cfg.init_seed).train()
    rows = torch.randint(0, 50277, (2, 65), generator=torch.Generator().manual_seed(0))
    logits = model(rows[:, :-1])
    loss = F.cross_entropy(logits.flatten(0, 1), rows[:, 1:].flatten())
    assert abs(loss.item() - math.log(cfg.vocab_size)) < 0.5  # near-uniform at init
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.embed_out.weight.grad.abs().sum() > 0


@torch.no_grad()
def test_causal_future_tokens_do_not_leak() -> None:
    cfg = get_row("pythia-nano").with_vocab(500)
    model = _build(cfg)
    ids = torch.randint(0, 500, (1, 20), generator=torch.Generator().manual_seed(2))
    changed = ids.clone()
    changed[0, 12:] = (changed[0, 12:] + 1) % 500
    a, b = model(ids), model(changed)
    assert torch.equal(a[:, :12], b[:, :12])
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_too_long_input_is_refused() -> None:
    model = _build(ODD)
    with pytest.raises(ValueError, match="exceeds max_position_embeddings 37"):
        model(torch.zeros(1, 38, dtype=torch.long))


@torch.no_grad()
def test_init_statistics_follow_the_row() -> None:
    cfg = get_row("pythia-mini").with_vocab(4096)  # small_init / wang_init
    model = _build(cfg, seed=11)
    d, n = cfg.hidden_size, cfg.num_layers
    small, wang = math.sqrt(2 / (5 * d)), 2 / n / math.sqrt(d)
    layer = model.gpt_neox.layers[2]
    for w, std in [
        (layer.attention.query_key_value.weight, small), (layer.mlp.dense_h_to_4h.weight, small),
        (model.gpt_neox.embed_in.weight, small), (model.embed_out.weight, small),
        (layer.attention.dense.weight, wang), (layer.mlp.dense_4h_to_h.weight, wang),
    ]:  # fmt: skip
        assert abs(w.std().item() / std - 1) < 0.03 and abs(w.mean().item()) < 0.05 * std
    assert torch.equal(layer.attention.dense.bias, torch.zeros(d))
    assert torch.equal(layer.input_layernorm.weight, torch.ones(d))
    assert torch.equal(model.gpt_neox.final_layer_norm.bias, torch.zeros(d))


@torch.no_grad()
def test_init_normal_and_scaled_normal_as_the_large_rows() -> None:
    big = get_row("pythia-12b")
    cfg = ModelConfig(name="big-init", num_layers=4, hidden_size=256, num_heads=2, vocab_size=256,
                      init_method=big.init_method, output_init_method=big.output_init_method)  # fmt: skip
    model = _build(cfg)
    qkv = model.gpt_neox.layers[0].attention.query_key_value.weight
    out = model.gpt_neox.layers[0].mlp.dense_4h_to_h.weight
    assert abs(qkv.std().item() / 0.02 - 1) < 0.03
    assert abs(out.std().item() / (0.02 / math.sqrt(2 * 4)) - 1) < 0.03


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    cfg = get_row("pythia-nano").with_vocab(1000)
    torch.manual_seed(0)
    a = _build(cfg, seed=1234).state_dict()
    torch.manual_seed(99)  # the global RNG plays no part
    b = _build(cfg, seed=1234).state_dict()
    c = _build(cfg, seed=1235).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    weights = [
        k for k in a if not k.endswith("bias") and "layernorm" not in k and "layer_norm" not in k
    ]
    assert all(not torch.equal(a[k], c[k]) for k in weights)


@torch.no_grad()
def test_meta_then_to_empty_then_init_equals_direct_build() -> None:
    cfg = get_row("pythia-nano").with_vocab(1000)
    with torch.device("meta"):
        model = GPTNeoX(cfg)
    model.to_empty(device="cpu")
    init_weights(model, cfg, seed=5)
    direct = _build(cfg, seed=5)
    ids = torch.randint(0, 1000, (2, 30), generator=torch.Generator().manual_seed(4))
    assert torch.equal(model.eval()(ids), direct(ids))


@torch.no_grad()
def test_bfloat16_autocast_runs_close_to_float32() -> None:
    cfg = get_row("pythia-nano").with_vocab(300)
    model = _build(cfg)
    ids = torch.randint(0, 300, (2, 40), generator=torch.Generator().manual_seed(6))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(ids)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), model(ids), atol=0.1, rtol=0.05)
