"""Build a fixture's folder once per test run, whatever the number of pytest-xdist workers.

Session fixtures run once per worker, so with `-n 2` every tiny run would be trained twice.
`built_once` builds a named folder under the directory that all workers of one run share
(the parent of each worker's base temp dir), behind a file lock: the first worker builds it,
the others wait and reuse it. Without xdist it is an ordinary per-session temp folder. A folder
counts only once its `.built` marker exists, so a worker that died mid-build is rebuilt.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

MARKER = ".built"


def shared_root(factory: pytest.TempPathFactory) -> Path:
    """The folder shared by every worker of this test run (the session's own without xdist)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    """`build(folder)` once per test run; every worker gets the same finished folder."""
    folder = shared_root(factory) / f"shared-{name}"
    with FileLock(str(folder) + ".lock"):
        if not (folder / MARKER).exists():
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            build(folder)
            (folder / MARKER).touch()
    return folder


def tiny_corpus(factory: pytest.TempPathFactory, vocab: int, seed: int = 1234) -> Path:
    """`corpus/` (synth, tiny preset: corpus.jsonl, truth.json) and `tokenizer.json` (BPE of
    `vocab` ids), as `make demo` makes them; one folder per vocabulary for the whole run."""

    def build(root: Path) -> None:
        from pythia_suite.corpus.synth import write_corpus
        from pythia_suite.corpus.tokenizer import train_tokenizer

        write_corpus(root / "corpus", preset="tiny", seed=seed)
        train_tokenizer(root / "corpus" / "corpus.jsonl", root / "tokenizer.json", vocab_size=vocab)

    return built_once(factory, f"tiny-corpus-v{vocab}-s{seed}", build)


HUB_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def online_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let huggingface_hub talk to a loopback test hub in this test, even in a worker where an
    earlier module's tests ran offline: the variables are unset and huggingface_hub's constant,
    which it reads once at import, is put back to online (both restored after the test)."""
    from huggingface_hub import constants

    for name in HUB_OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def online_env() -> dict[str, str]:
    """This process's environment without the offline variables (for a subprocess)."""
    return {k: v for k, v in os.environ.items() if k not in HUB_OFFLINE_VARIABLES}
