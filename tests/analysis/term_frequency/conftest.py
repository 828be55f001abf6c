"""Tiny runs for the term-frequency tests, built once per session through the real pipeline:
corpus synth (tiny preset) -> BPE tokenizer -> prepare -> train (pythia-nano)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.shared import built_once, tiny_corpus

SEED = 1234
VOCAB = 2048
SHAPE = {"seq_length": 64, "batch_size": 8, "steps": 40}
CHECKPOINTS = "steps:0,20,40"


def _build_run(root: Path, corpus: Path) -> None:
    from dataloader_replay.prepare import prepare
    from pythia_suite.training.trainer import TrainConfig, train

    data = root / "data"
    prepare(corpus / "corpus.jsonl", corpus.parent / "tokenizer.json", data, seed=SEED, **SHAPE)
    config = TrainConfig(
        model="pythia-nano", data=data, out=root / "run", checkpoints=CHECKPOINTS, threads=1
    )
    train(config)


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny corpus (corpus.jsonl, truth.json) with `../tokenizer.json` (vocabulary 2048)."""
    return tiny_corpus(tmp_path_factory, VOCAB, SEED) / "corpus"


@pytest.fixture(scope="session")
def truth(corpus_dir: Path) -> dict[str, Any]:
    return json.loads((corpus_dir / "truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def _tf_run_root(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> Path:
    return built_once(tmp_path_factory, "tf-run", lambda root: _build_run(root, corpus_dir))


@pytest.fixture(scope="session")
def tiny_data(_tf_run_root: Path) -> Path:
    """A prepared data directory: seq 64, batch 8, 40 steps, vocabulary 2048."""
    return _tf_run_root / "data"


@pytest.fixture(scope="session")
def tiny_run(_tf_run_root: Path) -> Path:
    """pythia-nano trained 40 steps on `tiny_data`, checkpoints at steps 0, 20, 40."""
    return _tf_run_root / "run"


@pytest.fixture(scope="session")
def cli_bin() -> Path:
    return Path(sys.executable).parent / "pythia-suite"
