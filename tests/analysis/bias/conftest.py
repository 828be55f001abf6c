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


@pytest.fixture(scope="session")
def bias_runs(tmp_path_factory: pytest.TempPathFactory) -> BiasRuns:
    from dataloader_replay.prepare import prepare
    from pythia_suite.cli import main
    from pythia_suite.corpus.synth import write_corpus
    from pythia_suite.corpus.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("bias")
    truth = write_corpus(root / "corpus", preset="tiny", seed=SEED)
    corpus, tokenizer = root / "corpus" / "corpus.jsonl", root / "tokenizer.json"
    train_tokenizer(corpus, tokenizer, vocab_size=VOCAB)
    data = root / "data"
    prepare(corpus, tokenizer, data, seed=SEED, **SHAPE)
    base, swap = root / "base", root / "swap"
    assert main(train_args(data, base)) == 0
    assert main(branch_args(base, swap)) == 0
    return BiasRuns(
        root=root,
        corpus=corpus,
        truth=json.loads(json.dumps(truth)),
        truth_path=root / "corpus" / "truth.json",
        tokenizer=tokenizer,
        data=data,
        base=base,
        swap=swap,
    )


@pytest.fixture(scope="session")
def cli_bin() -> Path:
    return Path(sys.executable).parent / "pythia-suite"


@pytest.fixture(scope="session")
def datasets() -> Path:
    """The official CrowS-Pairs and WinoBias files (../shared/datasets)."""
    assert (DATASETS / "crows_pairs" / "crows_pairs_anonymized.csv").is_file(), DATASETS
    return DATASETS
