"""The model family: one table of named rows over the GPT-NeoX defaults.

Each row of `FAMILY` states only what differs from `ModelConfig`'s defaults (which are
GPT-NeoX's / Pythia's: parallel residual, rotary on 25% of each head, untied embeddings,
LayerNorm eps 1e-5, exact GeLU, 4x MLP, Adam 0.9/0.95/1e-8, weight decay 0.1, clip 1.0,
1% warmup then cosine to 10% of the peak, 143,000 steps of 1024 x 2048 tokens, seed 1234).

The Pythia rows carry the values of EleutherAI's published GPT-NeoX configs
(`EleutherAI/pythia`, `models/*/pythia-*.yml`); each is also usable with the `-deduped` data
variant (`get_row("pythia-70m-deduped")`: same hyperparameters, `variant="deduped"`).
The CPU rows (`pythia-nano`, `-micro`, `-mini`) take their vocabulary from the prepared
data's tokenizer (`cfg.with_vocab(n)` pads it to a multiple of 128).

Parameter counts are arithmetic (`param_counts`), never allocated; `hf_config` gives the
`config.json` that `transformers.GPTNeoXForCausalLM` loads; `neox_yaml` gives a GPT-NeoX
training config for users who train at cluster scale.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import yaml

from dataloader_replay.tokenizer import MAX_VOCAB_SIZE
from suite_core import ConfigError

DEDUPED_SUFFIX = "-deduped"
INIT_METHODS = ("small_init", "wang_init", "normal", "scaled_normal")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """One model of the family: architecture, initialization and Pythia's training recipe."""

    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    variant: str = "standard"  # "standard" (the Pile) or "deduped" (the deduplicated Pile)
    intermediate_size: int | None = None  # None -> 4 * hidden_size
    vocab_size: int | None = None  # padded vocabulary; None -> from the prepared data
    vocab_multiple: int = 128
    seq_length: int = 2048
    max_position_embeddings: int | None = None  # None -> seq_length
    rotary_pct: float = 0.25
    rotary_base: float = 10000.0
    parallel_residual: bool = True
    tie_embeddings: bool = False
    layernorm_eps: float = 1e-5
    activation: str = "gelu"  # exact (erf) GeLU
    # initialization (GPT-NeoX names): weights, and the attention / MLP output projections
    init_method: str = "small_init"
    output_init_method: str = "wang_init"
    init_std: float = 0.02  # for "normal" / "scaled_normal"
    init_seed: int = 1234  # weight seed; the data order has its own seed (data manifest)
    # optimization (Pythia's recipe)
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    adam_betas: tuple[float, float] = (0.9, 0.95)
    adam_eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    warmup_fraction: float = 0.01
    lr_decay_style: str = "cosine"
    train_steps: int = 143_000
    batch_size: int = 1024  # sequences per optimizer step
    micro_batch_size: int = 32  # per GPU in the published config (neox_yaml only)
    model_parallel: int = 1
    grad_accum: int = 1
    neox_precision: str = "fp16"  # what the published run computed in (neox_yaml's "fp16" block)
    published: bool = False  # a Pythia row with published parameter counts
    note: str = ""

    def __post_init__(self) -> None:
        if self.intermediate_size is None:
            object.__setattr__(self, "intermediate_size", 4 * self.hidden_size)
        if self.max_position_embeddings is None:
            object.__setattr__(self, "max_position_embeddings", self.seq_length)
        _validate(self)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def rotary_dims(self) -> int:
        """Rotary dimensions per head (transformers: int(head_dim * partial_rotary_factor))."""
        return int(self.head_dim * self.rotary_pct)

    @property
    def min_lr(self) -> float:
        return round(self.lr * self.min_lr_ratio, 15)

    @property
    def warmup_steps(self) -> int:
        return int(self.warmup_fraction * self.train_steps)

    @property
    def base_name(self) -> str:
        """The row name without the data variant suffix."""
        return self.name.removesuffix(DEDUPED_SUFFIX)

    def with_vocab(self, vocab_size: int) -> ModelConfig:
        """This row for a tokenizer of `vocab_size` tokens.

        CPU rows pad `vocab_size` up to a multiple of `vocab_multiple`; Pythia rows keep their
        published padded vocabulary and only check that the tokenizer fits in it.
        """
        if not 1 <= vocab_size <= MAX_VOCAB_SIZE:
            raise ConfigError(
                f"vocab_size: must be between 1 and {MAX_VOCAB_SIZE:,}, got {vocab_size:,}"
            )
        if self.published and self.vocab_size is not None:
            if vocab_size > self.vocab_size:
                raise ConfigError(
                    f"vocab_size: tokenizer has {vocab_size} tokens, more than {self.name}'s "
                    f"padded vocabulary of {self.vocab_size}"
                )
            return self
        padded = -(-vocab_size // self.vocab_multiple) * self.vocab_multiple
        return dataclasses.replace(self, vocab_size=padded)

    def with_seq_length(self, seq_length: int) -> ModelConfig:
        """This row at context length `seq_length` (and as many rotary positions)."""
        if seq_length < 1:
            raise ConfigError(f"seq_length: must be >= 1, got {seq_length}")
        limit = self.max_position_embeddings
        if self.published and limit is not None and seq_length > limit:
            raise ConfigError(
                f"seq_length: {seq_length} is past {self.name}'s "
                f"max_position_embeddings of {limit} (prepare the data with "
                f"--seq-length {limit} or less, or use a CPU row)"
            )
        return dataclasses.replace(self, seq_length=seq_length, max_position_embeddings=seq_length)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (the resolved config a run saves)."""
        out = dataclasses.asdict(self)
        out["adam_betas"] = list(self.adam_betas)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of `to_dict`; unknown keys are a `ValueError` naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"model config: unknown field(s) {', '.join(unknown)}")
        data = dict(data)
        if "adam_betas" in data:
            data["adam_betas"] = tuple(data["adam_betas"])
        return cls(**data)


def _validate(cfg: ModelConfig) -> None:
    def bad(field: str, why: str) -> ValueError:
        return ValueError(f"model {cfg.name!r}: {field}: {why}")

    for field in ("num_layers", "hidden_size", "num_heads", "seq_length", "vocab_multiple"):
        if getattr(cfg, field) < 1:
            raise bad(field, f"must be >= 1, got {getattr(cfg, field)}")
    if cfg.hidden_size % cfg.num_heads:
        raise bad("num_heads", f"{cfg.num_heads} does not divide hidden_size {cfg.hidden_size}")
    if cfg.rotary_dims % 2:
        raise bad("rotary_pct", f"gives {cfg.rotary_dims} rotary dims per head; must be even")
    if cfg.variant not in ("standard", "deduped"):
        raise bad("variant", f"must be 'standard' or 'deduped', got {cfg.variant!r}")
    for field in ("init_method", "output_init_method"):
        if getattr(cfg, field) not in INIT_METHODS:
            raise bad(field, f"must be one of {', '.join(INIT_METHODS)}")
    if cfg.vocab_size is not None and cfg.vocab_size < 1:
        raise bad("vocab_size", f"must be >= 1, got {cfg.vocab_size}")
    if cfg.max_position_embeddings < cfg.seq_length:
        raise bad("max_position_embeddings", "must be >= seq_length")


def _pythia(name: str, layers: int, hidden: int, heads: int, lr: float, **diff: Any) -> ModelConfig:
    return ModelConfig(
        name=name, num_layers=layers, hidden_size=hidden, num_heads=heads, lr=lr,
        vocab_size=diff.pop("vocab_size", 50304), published=True, **diff,
    )  # fmt: skip


_LATE = "released Nov 2023; its published config trains on the deduplicated Pile's data path"
_BIG: dict[str, Any] = dict(
    init_method="normal", output_init_method="scaled_normal", micro_batch_size=8, grad_accum=2
)
_CPU: dict[str, Any] = dict(vocab_size=None, batch_size=32, train_steps=1000, micro_batch_size=32)

#: The family. Pythia rows: `EleutherAI/pythia` models/*.yml (num-layers, hidden-size,
#: num-attention-heads, optimizer lr; min_lr = lr / 10; micro batch x GPUs / model parallel x
#: gas = 1024; 6.9b and 12b use GPT-NeoX's default normal / scaled_normal init).
FAMILY: dict[str, ModelConfig] = {
    row.name: row
    for row in (
        _pythia("pythia-14m", 6, 128, 4, 1e-3, note=_LATE),
        _pythia("pythia-31m", 6, 256, 8, 1e-3, note=_LATE),
        _pythia("pythia-70m", 6, 512, 8, 1e-3),
        _pythia("pythia-160m", 12, 768, 12, 6e-4),
        _pythia("pythia-410m", 24, 1024, 16, 3e-4),
        _pythia(
            "pythia-1b",
            16,
            2048,
            8,
            2.5e-4,
            micro_batch_size=16,
            neox_precision="bf16",
            note="paper table says 3.0e-4; the published config says 2.5e-4",
        ),
        _pythia("pythia-1.4b", 24, 2048, 16, 2e-4, micro_batch_size=16),
        _pythia("pythia-2.8b", 32, 2560, 32, 1.6e-4, micro_batch_size=16),
        _pythia("pythia-6.9b", 32, 4096, 32, 1.2e-4, vocab_size=50432, model_parallel=2, **_BIG),
        _pythia("pythia-12b", 36, 5120, 40, 1.2e-4, vocab_size=50688, model_parallel=4, **_BIG),
        # CPU-scale rows (~0.1M, ~1M, ~5M non-embedding parameters); vocabulary from the data.
        ModelConfig(
            name="pythia-nano",
            num_layers=2,
            hidden_size=64,
            num_heads=4,
            seq_length=128,
            lr=3e-3,
            **_CPU,
        ),
        ModelConfig(
            name="pythia-micro",
            num_layers=5,
            hidden_size=128,
            num_heads=4,
            seq_length=256,
            lr=2e-3,
            **_CPU,
        ),
        ModelConfig(
            name="pythia-mini",
            num_layers=6,
            hidden_size=256,
            num_heads=8,
            seq_length=512,
            lr=1e-3,
            **_CPU,
        ),
    )  # fmt: skip
}

EXAMPLE_VOCAB = 4096  # vocabulary at which `family` shows the CPU rows' parameter counts


def get_row(name: str) -> ModelConfig:
    """The family row called `name`; `NAME-deduped` is the same row on the deduplicated data."""
    if name in FAMILY:
        return FAMILY[name]
    base = name.removesuffix(DEDUPED_SUFFIX)
    if name.endswith(DEDUPED_SUFFIX) and base in FAMILY and FAMILY[base].published:
        return dataclasses.replace(FAMILY[base], name=name, variant="deduped")
    raise ConfigError(f"unknown model {name!r} (known: {', '.join(FAMILY)}, and NAME-deduped)")


def param_counts(cfg: ModelConfig) -> tuple[int, int]:
    """(total, non_embedding) parameter counts, computed arithmetically.

    Non-embedding excludes the input embedding and the (untied) output layer, as in Pythia.
    """
    if cfg.vocab_size is None:
        raise ConfigError(f"model {cfg.name!r}: vocab_size comes from the data; use with_vocab(n)")
    d, f = cfg.hidden_size, cfg.intermediate_size
    attention = (d * 3 * d + 3 * d) + (d * d + d)
    mlp = (d * f + f) + (f * d + d)
    layer = attention + mlp + 2 * (2 * d)  # two LayerNorms
    non_embedding = cfg.num_layers * layer + 2 * d  # + final LayerNorm
    embedding = cfg.vocab_size * d * (1 if cfg.tie_embeddings else 2)
    return non_embedding + embedding, non_embedding


def hf_config(cfg: ModelConfig) -> dict[str, Any]:
    """The `config.json` dict of `transformers.GPTNeoXForCausalLM` for this row.

    Rotary settings are written both as transformers 5's `rope_parameters` and as the legacy
    `rotary_pct` / `rotary_emb_base` of the published Pythia configs.
    """
    if cfg.vocab_size is None:
        raise ConfigError(f"model {cfg.name!r}: vocab_size comes from the data; use with_vocab(n)")
    return {
        "architectures": ["GPTNeoXForCausalLM"],
        "model_type": "gpt_neox",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "intermediate_size": cfg.intermediate_size,
        "hidden_act": cfg.activation,
        "max_position_embeddings": cfg.max_position_embeddings,
        "layer_norm_eps": cfg.layernorm_eps,
        "initializer_range": cfg.init_std,
        "use_parallel_residual": cfg.parallel_residual,
        "tie_word_embeddings": cfg.tie_embeddings,
        "attention_bias": True,
        "attention_dropout": 0.0,
        "hidden_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "use_cache": True,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": float(cfg.rotary_base),
            "partial_rotary_factor": cfg.rotary_pct,
        },
        "rotary_pct": cfg.rotary_pct,
        "rotary_emb_base": int(cfg.rotary_base)
        if float(cfg.rotary_base).is_integer()
        else cfg.rotary_base,
        "dtype": "float32",
    }


def init_stds(cfg: ModelConfig) -> tuple[float, float]:
    """(weight std, output-projection std) of the row's GPT-NeoX init methods."""
    return _init_std(cfg, cfg.init_method), _init_std(cfg, cfg.output_init_method)


def _init_std(cfg: ModelConfig, method: str) -> float:
    d, n = cfg.hidden_size, cfg.num_layers
    return {
        "small_init": math.sqrt(2 / (5 * d)),
        "wang_init": 2 / n / math.sqrt(d),
        "normal": cfg.init_std,
        "scaled_normal": cfg.init_std / math.sqrt(2 * n),
    }[method]


def neox_yaml(
    cfg: ModelConfig,
    *,
    data_path: str = "DATA_DIR/documents",
    tokenizer_path: str = "DATA_DIR/tokenizer.json",
    save_path: str = "CHECKPOINT_DIR",
) -> str:
    """A GPT-NeoX training config (YAML text) with this row's Pythia values.

    `data_path` is the prefix of a `documents.{bin,idx}` pair that `pythia-suite` prepared.
    """
    ranks = cfg.batch_size // (cfg.micro_batch_size * cfg.grad_accum)
    if ranks * cfg.micro_batch_size * cfg.grad_accum != cfg.batch_size:
        raise ConfigError(
            f"model {cfg.name!r}: micro_batch_size x grad_accum must divide batch_size"
        )
    header = (
        f"# GPT-NeoX config for {cfg.name} (written by pythia-suite).\n"
        f"# Global batch {cfg.batch_size} = {cfg.micro_batch_size} per GPU x {ranks} data-parallel"
        f" ranks x {cfg.grad_accum} accumulation ({ranks * cfg.model_parallel} GPUs).\n"
        "# Replace DATA_DIR / CHECKPOINT_DIR with real paths.\n"
        f"# `seed` below is the weight seed ({cfg.init_seed}). GPT-NeoX has a single `seed` for both\n"
        "# the data order and the weights; pythia-suite keeps two (the data's is in its manifest),\n"
        "# so a run whose data seed differs from its weight seed cannot be expressed here.\n"
    )
    body = yaml.safe_dump(
        _neox_dict(cfg, data_path, tokenizer_path, save_path),
        sort_keys=False,
        default_flow_style=None,
    )
    seed_line = f"\nseed: {cfg.init_seed}\n"
    assert body.count(seed_line) == 1
    body = body.replace(seed_line, seed_line[:-1] + "  # weight seed only: see the header\n")
    return header + body


def _neox_precision(cfg: ModelConfig) -> dict:
    """GPT-NeoX's precision block: fp16 with dynamic loss scaling, or (pythia-1b, retrained in
    bf16, as `configs/pythia/1B.yml`) the same block with `type: bfloat16` and fp32 all-reduce."""
    scaling = {
        "loss_scale": 0,
        "loss_scale_window": 1000,
        "initial_scale_power": 12,
        "hysteresis": 2,
        "min_loss_scale": 1,
    }
    if cfg.neox_precision == "bf16":
        return {
            "fp16": {"enabled": True, "type": "bfloat16", "auto_cast": True, **scaling},
            "fp32_allreduce": True,
        }
    return {"fp16": {"fp16": True, "enabled": True, **scaling}}


def _neox_dict(cfg: ModelConfig, data_path: str, tokenizer_path: str, save_path: str) -> dict:
    log_steps = [0] + [2**k for k in range(20) if 2**k < 1000]
    return {
        "pipe-parallel-size": 1,
        "model-parallel-size": cfg.model_parallel,
        "num-layers": cfg.num_layers,
        "hidden-size": cfg.hidden_size,
        "num-attention-heads": cfg.num_heads,
        "seq-length": cfg.seq_length,
        "max-position-embeddings": cfg.max_position_embeddings,
        "norm": "layernorm",
        "layernorm-epsilon": cfg.layernorm_eps,
        "pos-emb": "rotary",
        "rotary-pct": cfg.rotary_pct,
        "rotary-emb-base": int(cfg.rotary_base),
        "no-weight-tying": not cfg.tie_embeddings,
        "make-vocab-size-divisible-by": cfg.vocab_multiple,
        "gpt-j-residual": cfg.parallel_residual,
        "output-layer-parallelism": "column",
        "activation": cfg.activation,
        "attention-config": [[["flash"], cfg.num_layers]],  # Pythia trained with flash attention
        "scaled-upper-triang-masked-softmax-fusion": True,
        "bias-gelu-fusion": True,
        "init_method": cfg.init_method,
        "output_layer_init_method": cfg.output_init_method,
        "init_method_std": cfg.init_std,
        "optimizer": {
            "type": "Adam",
            "params": {"lr": cfg.lr, "betas": list(cfg.adam_betas), "eps": cfg.adam_eps},
        },
        "min_lr": cfg.min_lr,
        "zero_optimization": {
            "stage": 1,
            "allgather_partitions": True,
            "overlap_comm": True,
            "reduce_scatter": True,
            "contiguous_gradients": True,
        },
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "data-impl": "mmap",
        "checkpoint-activations": True,
        "checkpoint-num-layers": 1,
        "partition-activations": True,
        "synchronize-each-layer": True,
        "gradient_clipping": cfg.grad_clip,
        "weight-decay": cfg.weight_decay,
        "hidden-dropout": 0,
        "attention-dropout": 0,
        **_neox_precision(cfg),
        "train-iters": cfg.train_steps,
        "lr-decay-iters": cfg.train_steps,
        "lr-decay-style": cfg.lr_decay_style,
        "warmup": cfg.warmup_fraction,
        "seed": cfg.init_seed,
        "checkpoint-factor": 1000,
        "extra-save-iters": log_steps,
        "save": save_path,
        "load": save_path,
        "eval-interval": 40000,
        "eval-iters": 10,
        "log-interval": 10,
        "steps_per_print": 10,
        "train-data-paths": [data_path],
        "valid-data-paths": [data_path],
        "test-data-paths": [data_path],
        "tokenizer-type": "HFTokenizer",
        "vocab-file": tokenizer_path,
        "distributed-backend": "nccl",
    }
