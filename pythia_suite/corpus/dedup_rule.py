"""The dedup rule's settings shared by the engines (`dedup` local, `dedup_ray`), and where
outputs go.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from pythia_suite.corpus.minhash import MinHashParams, choose_bands, jaccard, shingle_set
from suite_core import ConfigError

VERIFY = ("exact", "estimate")


@dataclass(frozen=True, kw_only=True)
class DedupConfig:
    threshold: float = 0.87
    num_perm: int = 128
    seed: int = 1
    shingle_words: int = 5
    verify: str = "exact"  # "exact": Jaccard of the shingle sets; "estimate": equal slots
    candidate_recall: float = 0.99  # P(candidate) of a pair at exactly the threshold
    chunk_docs: int = 2048

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"--threshold: must be in (0, 1], got {self.threshold}")
        if self.verify not in VERIFY:
            raise ConfigError(f"--verify: must be one of {', '.join(VERIFY)}, got {self.verify}")
        _ = self.minhash, self.bands  # validate num_perm, shingle_words, the reachable recall

    @property
    def bands(self) -> tuple[int, int]:
        """(b, r): the LSH bands and rows per band (see `minhash.choose_bands`)."""
        try:
            return choose_bands(self.threshold, self.num_perm, self.candidate_recall)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    @property
    def minhash(self) -> MinHashParams:
        try:
            return MinHashParams(
                num_perm=self.num_perm, seed=self.seed, shingle_words=self.shingle_words
            )
        except ValueError as exc:
            raise ConfigError(f"--{exc}") from None

    def similarity(self, a: tuple[str, np.ndarray], b: tuple[str, np.ndarray]) -> float:
        """The verified similarity of two documents given as (text, signature)."""
        if self.verify == "estimate":
            return float(np.mean(a[1] == b[1]))
        k = self.shingle_words
        return jaccard(shingle_set(a[0], k), shingle_set(b[0], k))


@dataclass(frozen=True, kw_only=True)
class DocInfo:
    """Where a document came from, for the report."""

    file: int  # index into the report's `inputs`
    line: int  # 1-based line in that file
    id: Any  # meta.id, if any


def report_path(output: Path) -> Path:
    """Where the report of a dedup run writing `output` goes."""
    return output.with_name(output.name + ".report.json")


def open_output(path: Path, final: Path, stack: ExitStack) -> BinaryIO:
    """A binary writer for `path` (zstd-compressed when `final` ends in .zst)."""
    fh: BinaryIO = stack.enter_context(open(path, "wb"))
    if final.suffix == ".zst":
        import zstandard

        return stack.enter_context(zstandard.ZstdCompressor().stream_writer(fh))  # type: ignore[return-value]
    return fh
