"""The GPT-NeoX architecture, and nothing else (no training, no parallelism, no I/O).

    x = x + attention(ln1(x)) + mlp(ln2(x))          # parallel residual (gpt-j-residual)

Rotary position embeddings on the first `rotary_dims` of each head, untied input and output
embeddings, LayerNorm, exact GeLU, biases on every linear except `embed_out`.

Weight names (state_dict keys) are those of the published Pythia checkpoints, which
`transformers.GPTNeoXForCausalLM.from_pretrained` loads as they are:
`gpt_neox.embed_in.weight`, `gpt_neox.layers.{i}.{input_layernorm, post_attention_layernorm,
attention.query_key_value, attention.dense, mlp.dense_h_to_4h, mlp.dense_4h_to_h}.*`,
`gpt_neox.final_layer_norm.*`, `embed_out.weight`. (transformers 5 renames `embed_out` to
`lm_head` in memory; `load_state_dict` here accepts either name.)

The fused `query_key_value` output is laid out per head as [q | k | v] (head_dim each).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pythia_suite.training.family import ModelConfig, init_stds
from suite_core import ConfigError

HF_HEAD = "lm_head.weight"  # transformers 5's in-memory name of `embed_out.weight`


def rotary_tables(
    cfg: ModelConfig, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos [P, head_dim] and sin [P, rotary_dims] tables in float32, P = max_position_embeddings.

    The angles are transformers' (float32). cos holds ones past rotary_dims (those dims pass
    through); sin carries rotate_half's sign, -sin on the first half, so that rotary is
    `x * cos + swap_halves(x[:r]) * sin` (see `_rope`)."""
    r, half = cfg.rotary_dims, cfg.rotary_dims // 2
    exponents = torch.arange(0, r, 2, dtype=torch.int64, device=device).float() / r  # [r/2]
    inv_freq = 1.0 / (cfg.rotary_base**exponents)  # [r/2]
    pos = torch.arange(cfg.max_position_embeddings, device=device).float()
    freqs = pos[:, None] * inv_freq[None, :]  # [P, r/2]
    emb = torch.cat((freqs, freqs), dim=-1)  # [P, r]
    cos = F.pad(emb.cos(), (0, cfg.head_dim - r), value=1.0)  # [P, hd]
    sin = torch.cat((-emb[:, :half].sin(), emb[:, half:].sin()), dim=-1)  # [P, r]
    return cos, sin


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, T, H, hd] rotated on its first r dims: x1 * cos - x2 * sin | x2 * cos + x1 * sin.
    cos [T, 1, hd], sin [T, 1, r] as `rotary_tables` makes them. Returns a new tensor."""
    r, half = sin.shape[-1], sin.shape[-1] // 2
    out = x * cos  # [B, T, H, hd]
    out[..., :r].addcmul_(torch.cat((x[..., half:r], x[..., :half]), dim=-1), sin)  # [B, T, H, r]
    return out


class _Rotary(torch.autograd.Function):
    """Rotary embedding as one op with a hand-written backward. It is a rotation of each pair
    (i, i + r/2) by a fixed angle, so its gradient is the rotation by minus that angle: `_rope`
    with -sin. This spares autograd's slice, cat, neg and zero-filled copies of q and k."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(cos, sin)
        return _rope(x, cos, sin)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        cos, sin = ctx.saved_tensors
        return _rope(grad, cos, -sin), None, None


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.num_heads, self.head_dim, self.rotary_dims = (
            cfg.num_heads,
            cfg.head_dim,
            cfg.rotary_dims,
        )
        self.query_key_value = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size)
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        qkv = self.query_key_value(x).view(
            B, T, self.num_heads, 3 * self.head_dim
        )  # [B, T, H, 3hd]
        q, k, v = qkv.split(self.head_dim, dim=-1)  # 3 x [B, T, H, hd]
        if self.rotary_dims:
            cos, sin = cos.to(q.dtype), sin.to(q.dtype)  # no-op unless autocast / half weights
            q, k = _Rotary.apply(q, cos, sin), _Rotary.apply(k, cos, sin)  # [B, T, H, hd]
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T, hd]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, T, hd]
        y = y.transpose(1, 2).reshape(B, T, C)  # [B, T, C]
        return self.dense(y)  # [B, T, C]


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.dense_h_to_4h = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.dense_4h_to_h = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense_4h_to_h(
            F.gelu(self.dense_h_to_4h(x))
        )  # [B, T, C] -> [B, T, 4C] -> [B, T, C]


class Layer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.parallel_residual = cfg.parallel_residual
        self.input_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layernorm_eps)
        self.post_attention_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layernorm_eps)
        self.attention = Attention(cfg)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        a = self.attention(self.input_layernorm(x), cos, sin)  # [B, T, C]
        if self.parallel_residual:
            return x + a + self.mlp(self.post_attention_layernorm(x))  # [B, T, C]
        x = x + a
        return x + self.mlp(self.post_attention_layernorm(x))  # [B, T, C]


class Backbone(nn.Module):
    """`gpt_neox.*`: embeddings, layers, final LayerNorm, and the rotary tables."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed_in = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_layers))
        self.final_layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layernorm_eps)
        cos, sin = rotary_tables(cfg)
        self.register_buffer("rope_cos", cos, persistent=False)  # [P, hd]
        self.register_buffer("rope_sin", sin, persistent=False)  # [P, r]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        T = input_ids.shape[1]
        cos, sin = self.rope_cos[:T, None, :], self.rope_sin[:T, None, :]  # [T, 1, hd], [T, 1, r]
        x = self.embed_in(input_ids)  # [B, T, C]
        if torch.is_autocast_enabled(x.device.type):  # bf16 / fp16: the residual stream too, as
            x = x.to(torch.get_autocast_dtype(x.device.type))  # GPT-NeoX's half-precision model
        for layer in self.layers:
            x = layer(x, cos, sin)  # [B, T, C]
        return self.final_layer_norm(x)  # [B, T, C]


class GPTNeoX(nn.Module):
    """GPT-NeoX causal LM: `model(input_ids [B, T]) -> logits [B, T, V]` (float, unshifted)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.vocab_size is None:
            raise ConfigError(
                f"model {cfg.name!r}: vocab_size comes from the data; use with_vocab(n)"
            )
        if cfg.tie_embeddings:
            raise ConfigError(
                f"model {cfg.name!r}: tie_embeddings: GPT-NeoX/Pythia rows are untied"
            )
        self.cfg = cfg
        self.gpt_neox = Backbone(cfg)
        self.embed_out = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.register_load_state_dict_pre_hook(_accept_hf_head_name)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] > self.gpt_neox.rope_cos.shape[0]:
            raise ConfigError(
                f"input length {input_ids.shape[1]} exceeds max_position_embeddings "
                f"{self.gpt_neox.rope_cos.shape[0]}"
            )
        return self.embed_out(self.gpt_neox(input_ids))  # [B, T, C] -> [B, T, V]

    def reset_rotary(self) -> None:
        """Recompute the (non-persistent) rotary tables, e.g. after `to_empty()` from meta."""
        cos, sin = rotary_tables(self.cfg, device=self.gpt_neox.rope_cos.device)
        dtype = self.gpt_neox.rope_cos.dtype
        self.gpt_neox.rope_cos = cos.to(dtype)
        self.gpt_neox.rope_sin = sin.to(dtype)


def _accept_hf_head_name(module: nn.Module, state_dict: dict, prefix: str, *args: object) -> None:
    key = prefix + HF_HEAD
    if key in state_dict and prefix + "embed_out.weight" not in state_dict:
        state_dict[prefix + "embed_out.weight"] = state_dict.pop(key)


def output_projection(name: str) -> bool:
    """True for the weights initialized with the output-layer method (GPT-NeoX)."""
    return name.endswith(("attention.dense.weight", "mlp.dense_4h_to_h.weight"))


@torch.no_grad()
def init_weights(model: GPTNeoX, cfg: ModelConfig, *, seed: int) -> None:
    """Initialize `model` in place as GPT-NeoX does for `cfg`, from `seed` alone.

    Weights (embeddings, qkv, dense_h_to_4h, embed_out) ~ N(0, init std); attention.dense and
    mlp.dense_4h_to_h ~ N(0, output std) (small_init / wang_init for Pythia up to 2.8b);
    biases 0; LayerNorm 1 / 0. Parameters are drawn in state_dict order from one
    `torch.Generator` seeded with `seed` on CPU, so the same seed gives bitwise-identical weights
    on any device.
    """
    std, out_std = init_stds(cfg)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for name, p in model.named_parameters():
        if p.is_meta:
            continue
        if name.endswith("layernorm.weight") or name.endswith("final_layer_norm.weight"):
            p.fill_(1.0)
        elif name.endswith(".bias"):
            p.zero_()
        else:
            s = out_std if output_projection(name) else std
            if p.device.type == "cpu" and p.dtype == torch.float32:
                p.normal_(0.0, s, generator=gen)
            else:  # draw on CPU in float32 so that every device and dtype sees the same numbers
                p.copy_(torch.empty(p.shape, dtype=torch.float32).normal_(0.0, s, generator=gen))
    if not model.gpt_neox.rope_cos.is_meta:
        model.reset_rotary()
