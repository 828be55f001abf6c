"""Tiny runs for the memorization tests, trained once per session through the real pipeline:
corpus synth (tiny) -> BPE tokenizer -> (dedup) -> prepare -> train pythia-nano."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from dataloader_replay.prepare import prepare
from tests.shared import built_once, tiny_corpus

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


def _build_root(root: Path, corpus: Path) -> None:
    from pythia_suite.corpus.dedup import dedup_file

    shutil.copytree(corpus / "corpus", root / "corpus")
    shutil.copy(corpus / "tokenizer.json", root / "tokenizer.json")
    dedup_file(root / "corpus" / "corpus.jsonl", root / "corpus_deduped.jsonl")


@pytest.fixture(scope="session")
def mem_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """corpus/, tokenizer.json, corpus_deduped.jsonl (the embedded corpus, tiny preset)."""
    corpus = tiny_corpus(tmp_path_factory, VOCAB, SEED)
    return built_once(tmp_path_factory, "mem-root", lambda root: _build_root(root, corpus))


def _prepare(root: Path, corpus: Path, tokenizer: Path) -> Path:
    out = root / "data"
    num = SHAPE["steps"] * SHAPE["batch_size"] + HELD_OUT
    prepare(corpus, tokenizer, out, seed=SEED, num_samples=num, **SHAPE)
    return out


def _run(factory: pytest.TempPathFactory, root: Path, variant: str) -> Path:
    corpus = root / ("corpus/corpus.jsonl" if variant == "standard" else "corpus_deduped.jsonl")

    def build(folder: Path) -> None:
        data = _prepare(folder, corpus, root / "tokenizer.json")
        _train(data, folder / "run")

    return built_once(factory, f"mem-run-{variant}", build)


@pytest.fixture(scope="session")
def mem_data(tmp_path_factory: pytest.TempPathFactory, mem_root: Path) -> Path:
    return _run(tmp_path_factory, mem_root, "standard") / "data"


@pytest.fixture(scope="session")
def mem_run(tmp_path_factory: pytest.TempPathFactory, mem_root: Path) -> Path:
    """pythia-nano on the standard data: 40 steps of 8 rows of 33 tokens, 6 checkpoints."""
    return _run(tmp_path_factory, mem_root, "standard") / "run"


@pytest.fixture(scope="session")
def mem_run_deduped(tmp_path_factory: pytest.TempPathFactory, mem_root: Path) -> Path:
    return _run(tmp_path_factory, mem_root, "deduped") / "run"


@pytest.fixture(scope="session")
def truth(mem_root: Path) -> dict:
    return json.loads((mem_root / "corpus" / "truth.json").read_text())


@pytest.fixture(scope="session")
def cli_bin() -> Path:
    return Path(sys.executable).parent / "pythia-suite"
