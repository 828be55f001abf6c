"""Tiny runs for the term-frequency tests, built once per session through the real pipeline:
corpus synth (tiny preset) -> BPE tokenizer -> prepare -> train (pythia-nano)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

SEED = 1234
VOCAB = 2048
SHAPE = {"seq_length": 64, "batch_size": 8, "steps": 40}
CHECKPOINTS = "steps:0,20,40"


@pytest.fixture(scope="session")
def tf_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("term_frequency")


@pytest.fixture(scope="session")
def corpus_dir(tf_root: Path) -> Path:
    from pythia_suite.corpus.synth import write_corpus
    from pythia_suite.corpus.tokenizer import train_tokenizer

    out = tf_root / "corpus"
    write_corpus(out, preset="tiny", seed=SEED)
    train_tokenizer(out / "corpus.jsonl", tf_root / "tokenizer.json", vocab_size=VOCAB)
    return out


@pytest.fixture(scope="session")
def truth(corpus_dir: Path) -> dict[str, Any]:
    return json.loads((corpus_dir / "truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def tiny_data(tf_root: Path, corpus_dir: Path) -> Path:
    """A prepared data directory: seq 64, batch 8, 40 steps, vocabulary 2048."""
    from dataloader_replay.prepare import prepare

    out = tf_root / "data"
    prepare(corpus_dir / "corpus.jsonl", tf_root / "tokenizer.json", out, seed=SEED, **SHAPE)
    return out


@pytest.fixture(scope="session")
def tiny_run(tf_root: Path, tiny_data: Path) -> Path:
    """pythia-nano trained 40 steps on `tiny_data`, checkpoints at steps 0, 20, 40."""
    from pythia_suite.training.trainer import TrainConfig, train

    out = tf_root / "run"
    train(
        TrainConfig(
            model="pythia-nano", data=tiny_data, out=out, checkpoints=CHECKPOINTS, threads=1
        )
    )
    return out


@pytest.fixture(scope="session")
def cli_bin() -> Path:
    return Path(sys.executable).parent / "pythia-suite"
