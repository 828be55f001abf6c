"""Session fixtures of the bias study: a tiny baseline run and its pronoun-swap branch.

corpus synth (tiny preset) -> BPE tokenizer (2048: the pronouns are single tokens) -> prepare
-> pythia-nano baseline -> `--branch-from` at BRANCH_STEP, once per test session.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.shared import built_once, tiny_corpus

SEED = 1234
VOCAB = 2048
SHAPE = {"seq_length": 32, "batch_size": 8, "steps": 40}
RULE = "steps:0,8,16,24,32,40"
BRANCH_STEP = 24
_REPO = Path(__file__).resolve().parents[3]
DATASETS = next(
    (
        p
        for p in (
            _REPO.parent / "shared" / "datasets",  # ../shared/datasets
            _REPO.parent.parent / "shared" / "datasets",
        )  # from a worktree
        if p.is_dir()
    ),
    _REPO.parent / "shared" / "datasets",
)

for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_name] = "1"


@dataclass(frozen=True)
class BiasRuns:
    root: Path
    corpus: Path
    truth: dict
    truth_path: Path
    tokenizer: Path
    data: Path
    base: Path
    swap: Path


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--model",
        "pythia-nano",
        "--data",
        str(data),
        "--out",
        str(out),
        "--checkpoints",
        RULE,
        "--threads",
        "1",
        *extra,
    ]


def branch_args(base: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--branch-from",
        str(base),
        "--branch-step",
        str(BRANCH_STEP),
        "--intervention",
        "pronoun-swap",
        "--out",
        str(out),
        "--threads",
        "1",
        *extra,
    ]


def _build_bias_runs(root: Path, corpus: Path) -> None:
    from dataloader_replay.prepare import prepare
    from pythia_suite.cli import main

    data = root / "data"
    prepare(corpus / "corpus" / "corpus.jsonl", corpus / "tokenizer.json", data, seed=SEED, **SHAPE)
    assert main(train_args(data, root / "base")) == 0
    assert main(branch_args(root / "base", root / "swap")) == 0


@pytest.fixture(scope="session")
def bias_runs(tmp_path_factory: pytest.TempPathFactory) -> BiasRuns:
    """Built once per test run (shared by the xdist workers)."""
    corpus = tiny_corpus(tmp_path_factory, VOCAB, SEED)
    root = built_once(tmp_path_factory, "bias", lambda folder: _build_bias_runs(folder, corpus))
    truth_path = corpus / "corpus" / "truth.json"
    return BiasRuns(
        root=root,
        corpus=corpus / "corpus" / "corpus.jsonl",
        truth=json.loads(truth_path.read_text()),
        truth_path=truth_path,
        tokenizer=corpus / "tokenizer.json",
        data=root / "data",
        base=root / "base",
        swap=root / "swap",
    )


@pytest.fixture(scope="session")
def cli_bin() -> Path:
    return Path(sys.executable).parent / "pythia-suite"


@pytest.fixture(scope="session")
def datasets() -> Path:
    """The official CrowS-Pairs and WinoBias files (../shared/datasets)."""
    assert (DATASETS / "crows_pairs" / "crows_pairs_anonymized.csv").is_file(), DATASETS
    return DATASETS
