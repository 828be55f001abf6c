"""Shared fixtures: tiny prepared data directories built through the real pipeline.

corpus -> tokenizer -> `dataloader_replay.prepare.prepare`, once per test session.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataloader_replay.prepare import prepare

SEED = 1234
TINY = {"seq_length": 32, "batch_size": 8, "steps": 24}  # pythia-nano runs in milliseconds a step
LONG = {
    "seq_length": 32,
    "batch_size": 8,
    "steps": 64,
}  # long enough to kill a real process mid-run
MODEL_70M = {"seq_length": 32, "batch_size": 2, "steps": 2}
VOCAB = 512


def _build(root: Path, shape: dict[str, int]) -> Path:
    """corpus synth (tiny preset) -> BPE tokenizer -> prepare, as `make demo` does."""
    from pythia_suite.corpus.synth import write_corpus
    from pythia_suite.corpus.tokenizer import train_tokenizer

    corpus, tokenizer = root / "corpus" / "corpus.jsonl", root / "tokenizer.json"
    if not corpus.exists():
        write_corpus(root / "corpus", preset="tiny", seed=SEED)
        train_tokenizer(corpus, tokenizer, vocab_size=VOCAB)
    out = root / f"data_L{shape['seq_length']}_B{shape['batch_size']}_S{shape['steps']}"
    prepare(corpus, tokenizer, out, seed=SEED, **shape)
    return out


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("trainer_data")


@pytest.fixture(scope="session")
def tiny_data(data_root: Path) -> Path:
    """A prepared data directory: seq 32, batch 8, 24 steps, vocabulary 512."""
    return _build(data_root, TINY)


@pytest.fixture(scope="session")
def long_data(data_root: Path) -> Path:
    """seq 32, batch 8, 64 steps."""
    return _build(data_root, LONG)


@pytest.fixture(scope="session")
def data_70m(data_root: Path) -> Path:
    """seq 32, batch 2, 2 steps: enough for a pythia-70m smoke run."""
    return _build(data_root, MODEL_70M)


@pytest.fixture(scope="session")
def cli_bin() -> Path:
    """The installed `pythia-suite` console script of this interpreter's environment."""
    return Path(sys.executable).parent / "pythia-suite"


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One local Ray cluster on loopback (4 CPUs) for the whole session; yields the path of the
    lost-worker hook file (`dataloader_replay.engine_ray.KILL_ENV`) its workers watch."""
    import ray

    from dataloader_replay.engine_ray import KILL_ENV

    kill = tmp_path_factory.mktemp("ray") / "kill"
    os.environ[KILL_ENV] = str(kill)  # before init: workers inherit the environment
    for attempt in (1, 2, 3):  # Ray waits 30 s for its agents; a loaded machine can miss that
        try:
            ray.init(
                num_cpus=4,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            break
        except Exception:
            ray.shutdown()
            if attempt == 3:
                raise
    yield kill
    ray.shutdown()
    os.environ.pop(KILL_ENV, None)
