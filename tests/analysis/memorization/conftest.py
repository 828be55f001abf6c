"""Tiny runs for the memorization tests, trained once per session through the real pipeline:
corpus synth (tiny) -> BPE tokenizer -> (dedup) -> prepare -> train pythia-nano."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from dataloader_replay.prepare import prepare

SEED = 1234
VOCAB = 512
SHAPE = {"seq_length": 32, "batch_size": 8, "steps": 40}
HELD_OUT = 64  # rows past steps x B: never trained (the profiles' control group)
CHECKPOINTS = "steps:0,5,10,20,30,40"
K, TARGET = 16, 16

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _train(data: Path, out: Path) -> Path:
    from pythia_suite.training.trainer import TrainConfig, train

    train(TrainConfig(model="pythia-nano", data=data, out=out, checkpoints=CHECKPOINTS, threads=1))
    return out


@pytest.fixture(scope="session")
def mem_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """corpus/, tokenizer.json, corpus_deduped.jsonl (the embedded corpus, tiny preset)."""
    from pythia_suite.corpus.dedup import dedup_file
    from pythia_suite.corpus.synth import write_corpus
    from pythia_suite.corpus.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("mem")
    write_corpus(root / "corpus", preset="tiny", seed=SEED)
    train_tokenizer(root / "corpus" / "corpus.jsonl", root / "tokenizer.json", vocab_size=VOCAB)
    dedup_file(root / "corpus" / "corpus.jsonl", root / "corpus_deduped.jsonl")
    return root


def _prepare(root: Path, corpus: Path, name: str) -> Path:
    out = root / name
    num = SHAPE["steps"] * SHAPE["batch_size"] + HELD_OUT
    prepare(corpus, root / "tokenizer.json", out, seed=SEED, num_samples=num, **SHAPE)
    return out


@pytest.fixture(scope="session")
def mem_data(mem_root: Path) -> Path:
    return _prepare(mem_root, mem_root / "corpus" / "corpus.jsonl", "data")


@pytest.fixture(scope="session")
def mem_run(mem_root: Path, mem_data: Path) -> Path:
    """pythia-nano on the standard data: 40 steps of 8 rows of 33 tokens, 6 checkpoints."""
    return _train(mem_data, mem_root / "run_standard")


@pytest.fixture(scope="session")
def mem_run_deduped(mem_root: Path) -> Path:
    data = _prepare(mem_root, mem_root / "corpus_deduped.jsonl", "data_deduped")
    return _train(data, mem_root / "run_deduped")


@pytest.fixture(scope="session")
def truth(mem_root: Path) -> dict:
    return json.loads((mem_root / "corpus" / "truth.json").read_text())


@pytest.fixture(scope="session")
def cli_bin() -> Path:
    return Path(sys.executable).parent / "pythia-suite"
