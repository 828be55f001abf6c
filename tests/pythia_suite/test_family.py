"""The family table against Pythia's published figures and configs; the `family` CLI."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml
from transformers import GPTNeoXConfig

from pythia_suite.cli import main
from pythia_suite.training.family import (
    FAMILY,
    ModelConfig,
    get_row,
    hf_config,
    neox_yaml,
    param_counts,
)

# Pythia README / HF model cards: (total, non-embedding) parameters.
PUBLISHED_PARAMS = {
    "pythia-14m": (14_067_712, 1_189_888),
    "pythia-31m": (30_494_720, 4_739_072),
    "pythia-70m": (70_426_624, 18_915_328),
    "pythia-160m": (162_322_944, 85_056_000),
    "pythia-410m": (405_334_016, 302_311_424),
    "pythia-1b": (1_011_781_632, 805_736_448),
    "pythia-1.4b": (1_414_647_808, 1_208_602_624),
    "pythia-2.8b": (2_775_208_960, 2_517_652_480),
    "pythia-6.9b": (6_857_302_016, 6_444_163_072),
    "pythia-12b": (11_846_072_320, 11_327_027_200),
}

# EleutherAI/pythia models/*/pythia-*.yml: layers, hidden, heads, lr, padded vocab, init methods.
PUBLISHED_CONFIG = {
    "pythia-14m": (6, 128, 4, 1e-3, 50304, "small_init", "wang_init"),
    "pythia-31m": (6, 256, 8, 1e-3, 50304, "small_init", "wang_init"),
    "pythia-70m": (6, 512, 8, 1e-3, 50304, "small_init", "wang_init"),
    "pythia-160m": (12, 768, 12, 6e-4, 50304, "small_init", "wang_init"),
    "pythia-410m": (24, 1024, 16, 3e-4, 50304, "small_init", "wang_init"),
    "pythia-1b": (16, 2048, 8, 2.5e-4, 50304, "small_init", "wang_init"),
    "pythia-1.4b": (24, 2048, 16, 2e-4, 50304, "small_init", "wang_init"),
    "pythia-2.8b": (32, 2560, 32, 1.6e-4, 50304, "small_init", "wang_init"),
    "pythia-6.9b": (32, 4096, 32, 1.2e-4, 50432, "normal", "scaled_normal"),
    "pythia-12b": (36, 5120, 40, 1.2e-4, 50688, "normal", "scaled_normal"),
}
LOG_STEPS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512]


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_pythia_param_counts_equal_published(name: str) -> None:
    assert param_counts(get_row(name)) == PUBLISHED_PARAMS[name]
    assert param_counts(get_row(name + "-deduped")) == PUBLISHED_PARAMS[name]


@pytest.mark.parametrize("name", sorted(PUBLISHED_CONFIG))
def test_pythia_rows_carry_published_hyperparameters(name: str) -> None:
    cfg = get_row(name)
    layers, hidden, heads, lr, vocab, init, out_init = PUBLISHED_CONFIG[name]
    assert (cfg.num_layers, cfg.hidden_size, cfg.num_heads) == (layers, hidden, heads)
    assert (cfg.lr, cfg.vocab_size, cfg.init_method, cfg.output_init_method) == (
        lr,
        vocab,
        init,
        out_init,
    )
    assert cfg.min_lr == pytest.approx(lr / 10, rel=1e-12)
    assert (cfg.adam_betas, cfg.adam_eps, cfg.weight_decay, cfg.grad_clip) == (
        (0.9, 0.95),
        1e-8,
        0.1,
        1.0,
    )
    assert (cfg.warmup_fraction, cfg.lr_decay_style, cfg.train_steps) == (0.01, "cosine", 143_000)
    assert (cfg.batch_size, cfg.seq_length, cfg.max_position_embeddings) == (1024, 2048, 2048)
    assert (cfg.rotary_pct, cfg.rotary_base, cfg.parallel_residual, cfg.tie_embeddings) == (
        0.25,
        10000.0,
        True,
        False,
    )
    assert (cfg.intermediate_size, cfg.layernorm_eps, cfg.init_seed) == (4 * hidden, 1e-5, 1234)
    assert cfg.published and cfg.variant == "standard"


def test_deduped_variant_is_the_same_row() -> None:
    row, dedup = get_row("pythia-70m"), get_row("pythia-70m-deduped")
    assert dedup.variant == "deduped" and dedup.name == "pythia-70m-deduped"
    assert dedup.base_name == "pythia-70m"
    assert dataclasses.replace(dedup, name=row.name, variant=row.variant) == row


@pytest.mark.parametrize(
    "name", ["x", "pythia-70", "pythia-nano-deduped", "pythia-70m-deduped-deduped"]
)
def test_unknown_model_names_the_known_ones(name: str) -> None:
    with pytest.raises(
        ValueError, match=rf"^unknown model '{name}' \(known: pythia-14m, .*pythia-mini"
    ):
        get_row(name)


def test_cpu_rows_take_vocab_from_data_padded_to_128() -> None:
    nano = get_row("pythia-nano")
    assert nano.vocab_size is None
    with pytest.raises(ValueError, match="vocab_size comes from the data"):
        param_counts(nano)
    assert [nano.with_vocab(v).vocab_size for v in (1, 300, 384, 385)] == [128, 384, 384, 512]
    expected_non_embedding = {
        "pythia-nano": 100_096,
        "pythia-micro": 991_616,
        "pythia-mini": 4_739_072,
    }
    for name, non_embedding in expected_non_embedding.items():
        total, ne = param_counts(get_row(name).with_vocab(1000))
        assert ne == non_embedding and total == ne + 2 * 1024 * get_row(name).hidden_size


def test_pythia_rows_keep_their_padded_vocab() -> None:
    row = get_row("pythia-70m")
    assert row.with_vocab(50277) is row  # the GPT-NeoX-20B tokenizer fits in 50304
    with pytest.raises(ValueError, match="vocab_size: tokenizer has 60000 tokens"):
        row.with_vocab(60000)
    with pytest.raises(ValueError, match="vocab_size: must be between 1 and"):
        row.with_vocab(0)


def test_with_seq_length_sets_positions() -> None:
    cfg = get_row("pythia-70m").with_seq_length(64)
    assert (cfg.seq_length, cfg.max_position_embeddings) == (64, 64)
    assert param_counts(cfg) == PUBLISHED_PARAMS["pythia-70m"]  # rotary: no position weights
    with pytest.raises(ValueError, match="seq_length"):
        cfg.with_seq_length(0)


def test_config_validation_names_the_field() -> None:
    with pytest.raises(
        ValueError, match="model 'bad': num_heads: 5 does not divide hidden_size 64"
    ):
        ModelConfig(name="bad", num_layers=1, hidden_size=64, num_heads=5)
    with pytest.raises(ValueError, match="model 'bad': rotary_pct"):
        ModelConfig(name="bad", num_layers=1, hidden_size=72, num_heads=2)  # 36 * 0.25 = 9 dims
    with pytest.raises(ValueError, match="model 'bad': init_method"):
        ModelConfig(name="bad", num_layers=1, hidden_size=64, num_heads=4, init_method="xavier")


def test_to_dict_round_trips_through_json() -> None:
    for name in ("pythia-70m-deduped", "pythia-nano"):
        cfg = get_row(name)
        assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown field"):
        ModelConfig.from_dict({**get_row("pythia-nano").to_dict(), "n_layer": 3})


@pytest.mark.parametrize("name", ["pythia-70m", "pythia-12b", "pythia-nano"])
def test_hf_config_is_read_by_transformers(name: str) -> None:
    cfg = get_row(name).with_vocab(1000)
    hf = GPTNeoXConfig(**hf_config(cfg))
    assert (hf.vocab_size, hf.hidden_size, hf.num_hidden_layers) == (
        cfg.vocab_size,
        cfg.hidden_size,
        cfg.num_layers,
    )
    assert (hf.num_attention_heads, hf.intermediate_size) == (cfg.num_heads, cfg.intermediate_size)
    assert hf.rope_parameters["partial_rotary_factor"] == 0.25
    assert hf.rope_parameters["rope_theta"] == 10000.0
    assert (hf.use_parallel_residual, hf.tie_word_embeddings, hf.hidden_act) == (
        True,
        False,
        "gelu",
    )
    positions = 2048 if cfg.published else cfg.seq_length
    assert (hf.bos_token_id, hf.eos_token_id, hf.max_position_embeddings) == (0, 0, positions)
    assert hf_config(cfg)["architectures"] == ["GPTNeoXForCausalLM"]
    assert hf_config(cfg)["model_type"] == "gpt_neox"


@pytest.mark.parametrize("name", sorted(PUBLISHED_CONFIG))
def test_neox_yaml_has_pythia_values(name: str) -> None:
    cfg = get_row(name)
    text = neox_yaml(cfg)
    y = yaml.safe_load(text)
    layers, hidden, heads, lr, _, init, out_init = PUBLISHED_CONFIG[name]
    assert (y["num-layers"], y["hidden-size"], y["num-attention-heads"]) == (layers, hidden, heads)
    assert (y["seq-length"], y["max-position-embeddings"]) == (2048, 2048)
    assert (y["pos-emb"], y["rotary-pct"], y["no-weight-tying"], y["gpt-j-residual"]) == (
        "rotary",
        0.25,
        True,
        True,
    )
    assert y["output-layer-parallelism"] == "column"
    assert y["optimizer"] == {
        "type": "Adam",
        "params": {"lr": lr, "betas": [0.9, 0.95], "eps": 1e-8},
    }
    assert y["min_lr"] == pytest.approx(lr / 10, rel=1e-12)
    assert (y["train-iters"], y["lr-decay-iters"], y["lr-decay-style"], y["warmup"]) == (
        143000,
        143000,
        "cosine",
        0.01,
    )
    assert (y["weight-decay"], y["gradient_clipping"]) == (0.1, 1.0)
    assert (y["init_method"], y["output_layer_init_method"]) == (init, out_init)
    assert (y["checkpoint-factor"], y["extra-save-iters"]) == (1000, LOG_STEPS)
    assert (y["tokenizer-type"], y["seed"], y["make-vocab-size-divisible-by"]) == (
        "HFTokenizer",
        1234,
        128,
    )
    assert y["train-data-paths"] == ["DATA_DIR/documents"]
    gpus = {
        "pythia-1b": 64,
        "pythia-1.4b": 64,
        "pythia-2.8b": 64,
        "pythia-6.9b": 128,
        "pythia-12b": 256,
    }
    data_parallel = gpus.get(name, 32) // y["model-parallel-size"]
    assert (
        y["train_micro_batch_size_per_gpu"] * y["gradient_accumulation_steps"] * data_parallel
        == 1024
    )
    assert f"({gpus.get(name, 32)} GPUs)" in text.splitlines()[1]


def test_cli_family_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["family"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("pythia-70m "))
    assert line.split() == [
        "pythia-70m",
        "6",
        "512",
        "8",
        "0.001",
        "50304",
        "70,426,624",
        "18,915,328",
    ]
    nano = next(x for x in out.splitlines() if x.startswith("pythia-nano "))
    assert "from data" in nano and "100,096" in nano
    assert "vocabulary of 4096" in out


def test_cli_family_json_with_vocab(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["family", "--format", "json", "--vocab", "300"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(FAMILY)
    assert rows["pythia-12b"]["total_params"] == 11_846_072_320
    assert rows["pythia-12b"]["non_embedding_params"] == 11_327_027_200
    nano = rows["pythia-nano"]
    assert (nano["vocab"], nano["counted_at_vocab"], nano["non_embedding_params"]) == (
        "from data",
        384,
        100_096,
    )
    assert nano["total_params"] == 100_096 + 2 * 384 * 64


def test_cli_neox_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["family", "--neox-yaml", "pythia-410m-deduped"]) == 0
    y = yaml.safe_load(capsys.readouterr().out)
    assert (y["num-layers"], y["hidden-size"], y["optimizer"]["params"]["lr"]) == (24, 1024, 3e-4)


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["family", "--neox-yaml", "x"],
            "pythia-suite: error: unknown model 'x' (known: pythia-14m, ",
        ),
        (
            ["family", "--vocab", "0"],
            "pythia-suite: error: --vocab: must be between 1 and 16,777,216, got 0",
        ),
    ],
)
def test_cli_bad_input_exits_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message)


def test_neox_yaml_precision_attention_and_seed_comment() -> None:
    """As GPT-NeoX's configs/pythia: 1B.yml is bf16 (the 1b was retrained in bf16), the others
    fp16 with dynamic loss scaling; flash attention on every layer; `seed` is the weight seed."""
    scaling = {
        "loss_scale": 0,
        "loss_scale_window": 1000,
        "initial_scale_power": 12,
        "hysteresis": 2,
        "min_loss_scale": 1,
    }
    for name in ("pythia-1b", "pythia-1b-deduped"):
        y = yaml.safe_load(neox_yaml(get_row(name)))
        assert y["fp16"] == {"enabled": True, "type": "bfloat16", "auto_cast": True, **scaling}
        assert y["fp32_allreduce"] is True
        assert y["attention-config"] == [[["flash"], 16]]
    text = neox_yaml(get_row("pythia-410m"))
    y = yaml.safe_load(text)
    assert y["fp16"] == {"fp16": True, "enabled": True, **scaling} and "fp32_allreduce" not in y
    assert y["attention-config"] == [[["flash"], 24]]
    seed_line = next(line for line in text.splitlines() if line.startswith("seed:"))
    assert seed_line == "seed: 1234  # weight seed only: see the header"
    assert "single `seed` for both" in text.split("\npipe-parallel-size")[0]
