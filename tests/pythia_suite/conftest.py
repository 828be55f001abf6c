"""Shared fixtures: tiny prepared data directories built through the real pipeline.

corpus -> tokenizer -> `dataloader_replay.prepare.prepare`, once per test session.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataloader_replay.prepare import prepare
from tests.shared import built_once, tiny_corpus

SEED = 1234
TINY = {"seq_length": 32, "batch_size": 8, "steps": 24}  # pythia-nano runs in milliseconds a step
LONG = {
    "seq_length": 32,
    "batch_size": 8,
    "steps": 64,
}  # long enough to kill a real process mid-run
MODEL_70M = {"seq_length": 32, "batch_size": 2, "steps": 2}
VOCAB = 512


def _build(factory: pytest.TempPathFactory, shape: dict[str, int]) -> Path:
    """-> prepare: one data directory per shape, built once per test run."""
    corpus = tiny_corpus(factory, VOCAB, SEED)
    name = f"data_L{shape['seq_length']}_B{shape['batch_size']}_S{shape['steps']}"

    def build(folder: Path) -> None:
        prepare(
            corpus / "corpus" / "corpus.jsonl",
            corpus / "tokenizer.json",
            folder / name,
            seed=SEED,
            **shape,
        )

    return built_once(factory, name, build) / name


@pytest.fixture(scope="session")
def tiny_corpus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`corpus/` (corpus.jsonl, truth.json) and `tokenizer.json` that the data fixtures use."""
    return tiny_corpus(tmp_path_factory, VOCAB, SEED)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared data directory: seq 32, batch 8, 24 steps, vocabulary 512."""
    return _build(tmp_path_factory, TINY)


@pytest.fixture(scope="session")
def long_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """seq 32, batch 8, 64 steps."""
    return _build(tmp_path_factory, LONG)


@pytest.fixture(scope="session")
def data_70m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """seq 32, batch 2, 2 steps: enough for a pythia-70m smoke run."""
    return _build(tmp_path_factory, MODEL_70M)


@pytest.fixture(scope="session")
def cli_bin() -> Path:
    """The installed `pythia-suite` console script of this interpreter's environment."""
    return Path(sys.executable).parent / "pythia-suite"


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One local Ray cluster on loopback (4 CPUs) for the whole session; yields the path of the
    lost-worker hook file (`dataloader_replay.engine_ray.KILL_ENV`) its workers watch."""
    from dataloader_replay.engine_ray import KILL_ENV, loopback_only, start_local_ray

    loopback_only()  # test traffic stays on 127.0.0.1
    import ray

    kill = tmp_path_factory.mktemp("ray") / "kill"
    os.environ[KILL_ENV] = str(kill)  # before Ray starts: its workers inherit the environment
    for attempt in (1, 2, 3):  # Ray gives its raylet 30 s to register; a loaded machine can miss it
        try:
            start_local_ray(num_cpus=4)
            break
        except Exception:
            if attempt == 3:
                raise
    yield kill
    ray.shutdown()
    os.environ.pop(KILL_ENV, None)
