"""A tiny GPT-NeoX (built with transformers) and a helper that saves it as a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from checkpoints_index.store import save_checkpoint


def tiny_config() -> GPTNeoXConfig:
    return GPTNeoXConfig(
        vocab_size=128,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        rotary_pct=0.25,
        use_parallel_residual=True,
        tie_word_embeddings=False,
    )


@pytest.fixture(scope="session")
def tiny() -> dict[str, Any]:
    """hf_config dict, HF-named weights, and a populated AdamW state dict."""
    torch.manual_seed(0)
    config = tiny_config()
    model = GPTNeoXForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, 128, (2, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    hf = config.to_dict()
    hf["architectures"] = ["GPTNeoXForCausalLM"]
    return {"hf_config": hf, "weights": weights, "optimizer_state": optimizer.state_dict()}


@pytest.fixture
def save(tiny: dict[str, Any]):
    """save(run, step, **overrides) -> CheckpointRecord with the tiny model's content."""

    def _save(run: Path, step: int, **overrides: Any):
        kwargs = {
            "weights": tiny["weights"],
            "hf_config": tiny["hf_config"],
            "optimizer_state": tiny["optimizer_state"],
            "trainer_state": {"step": step, "tokens_seen": step * 1000, "loss": 2.5},
            "extra_tensors": {
                "torch_rng": torch.arange(10, dtype=torch.uint8),
                "numpy_rng": torch.arange(4, dtype=torch.int64),
            },
        }
        kwargs.update(overrides)
        return save_checkpoint(run, step, **kwargs)

    return _save
