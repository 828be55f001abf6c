"""Near-duplicate removal with MinHash + LSH, verified exactly (the Pile-deduped recipe, made exact).

Rule, in input order: a document is removed if an already kept earlier document has Jaccard
similarity `>= threshold` with it (exact Jaccard of the shingle sets of `minhash.shingle_set`
by default; `verify="estimate"` uses the fraction of equal MinHash slots instead); it is
recorded as a duplicate of the earliest such kept document. The pairs considered are the LSH
candidates (documents sharing one of `b` bands of `r` signature rows), with `(b, r)` chosen so
that a pair at exactly the threshold is a candidate with probability `>= candidate_recall`
(0.99); the report states that probability. So the first document of every group survives and
a removed document never causes later removals. Kept lines are written unchanged (raw bytes),
in input order; `OUTPUT.report.json` describes the run and every duplicate group.

Engines: "local" streams the input through datasketch's MinHashLSH in one process; "ray"
(`dedup_ray`) computes the same decisions on a Ray cluster, resolved per connected component
of the verified pairs. Their outputs and reports are byte-identical.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from datasketch import LeanMinHash, MinHashLSH

from dataloader_replay.engine_ray import RayOptions, claimed
from dataloader_replay.inputs import Progress, input_files, iter_corpus
from pythia_suite.corpus.minhash import (
    SCHEME,
    MinHashParams,
    SignatureComputer,
    candidate_probability,
    choose_bands,
    jaccard,
    shingle_set,
    signatures,
)
from suite_core import ConfigError
from suite_core.atomic import atomic_path, refuse_existing

log = logging.getLogger(__name__)
VERIFY = ("exact", "estimate")
ENGINES = ("local", "ray")
_RULE = (
    "input order; a document is removed if an LSH candidate among kept earlier documents has "
    "{what} >= threshold (duplicate of the earliest such); doc = 0-based index over all inputs, "
    "file = index into inputs, line = 1-based line in that file"
)
RULES = {
    "exact": _RULE.format(what="exact Jaccard of the shingle sets"),
    "estimate": _RULE.format(what="estimated Jaccard (fraction of equal MinHash slots)"),
}


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


def resolve(edges: np.ndarray, sims: np.ndarray) -> dict[int, tuple[int, float]]:
    """The dedup rule on verified edges `(j, i)`, `j < i`, similarity >= threshold: in input
    order, `i` is removed as a duplicate of the smallest kept `j` it has an edge with.
    Components are independent, so any subset of whole components can be resolved alone."""
    removed: dict[int, tuple[int, float]] = {}
    order = np.lexsort((edges[:, 0], edges[:, 1])) if len(edges) else np.empty(0, np.int64)
    for (j, i), s in zip(edges[order].tolist(), sims[order].tolist()):
        if i not in removed and j not in removed:
            removed[i] = (j, s)
    return removed


class _Spool:
    """Texts of kept documents on a temporary file, read back by index for exact verification;
    shingle sets of the most recently verified documents are cached."""

    def __init__(self, k: int) -> None:
        self.fh = tempfile.TemporaryFile()
        self.where: dict[int, tuple[int, int]] = {}
        self.k = k
        self.sets = functools.lru_cache(maxsize=4096)(self._set)

    def add(self, index: int, text: str) -> None:
        data = text.encode("utf-8")
        self.fh.seek(0, os.SEEK_END)
        self.where[index] = (self.fh.tell(), len(data))
        self.fh.write(data)

    def _set(self, index: int) -> frozenset[str]:
        offset, size = self.where[index]
        self.fh.seek(offset)
        return frozenset(shingle_set(self.fh.read(size).decode("utf-8"), self.k))


class Deduplicator:
    """The local engine's streaming detector: feed documents in input order. The LSH index
    (datasketch's MinHashLSH with bands `config.bands`) holds kept documents only."""

    def __init__(self, config: DedupConfig) -> None:
        self.config = config
        self.lsh = MinHashLSH(num_perm=config.num_perm, params=config.bands)
        self.kept_sigs: dict[int, np.ndarray] = {}
        self.spool = _Spool(config.shingle_words) if config.verify == "exact" else None
        self.removed: dict[int, tuple[int, float]] = {}

    def add(self, index: int, signature: np.ndarray, text: str) -> int | None:
        """Decide on document `index`; return the kept document it duplicates, or None if kept."""
        sketch = LeanMinHash(seed=self.config.seed, hashvalues=signature, scheme=SCHEME)
        own: frozenset[str] | None = None
        for other in sorted(self.lsh.query(sketch)):
            if self.spool is None:
                sim = float(np.mean(self.kept_sigs[other] == signature))
            else:
                own = own or frozenset(shingle_set(text, self.config.shingle_words))
                sim = jaccard(set(self.spool.sets(other)), set(own))
            if sim >= self.config.threshold:
                self.removed[index] = (other, sim)
                return other
        self.lsh.insert(index, sketch, check_duplication=False)
        if self.spool is None:
            self.kept_sigs[index] = signature
        else:
            self.spool.add(index, text)
        return None


def dedup_texts(texts: Sequence[str], config: DedupConfig) -> dict[int, tuple[int, float]]:
    """The local engine on a list of texts (pure): removed doc -> (kept doc, similarity)."""
    dedup = Deduplicator(config)
    for i, sig in enumerate(signatures(texts, config.minhash)):
        dedup.add(i, sig, texts[i])
    return dedup.removed


def _open_output(path: Path, final: Path, stack: ExitStack) -> BinaryIO:
    fh: BinaryIO = stack.enter_context(open(path, "wb"))
    if final.suffix == ".zst":
        import zstandard

        return stack.enter_context(zstandard.ZstdCompressor().stream_writer(fh))  # type: ignore[return-value]
    return fh


def _check_output(output: Path, files: list[Path]) -> None:
    refuse_existing(output)
    refuse_existing(report_path(output))
    if any(output.resolve() == f.resolve() for f in files):
        raise ConfigError(f"{output}: output must differ from the inputs")


def dedup_file(
    input: Path | Sequence[Path],
    output: Path,
    config: DedupConfig = DedupConfig(),
    *,
    engine: str = "local",
    ray: RayOptions | None = None,
) -> dict[str, Any]:
    """Deduplicate `.jsonl(.zst)` input(s) into `output` (+ `output.report.json`); return the
    report. `engine`: "local" (one process) or "ray" (byte-identical outputs)."""
    specs = [input] if isinstance(input, (str, Path)) else list(input)
    files = input_files(specs)
    output = Path(output)
    if engine not in ENGINES:
        raise ConfigError(f"--engine: must be one of {', '.join(ENGINES)}, got {engine}")
    _check_output(output, files)
    with (
        claimed(output, engine),
        atomic_path(output) as tmp_out,
        atomic_path(report_path(output)) as tmp_report,
    ):
        if engine == "ray":
            from pythia_suite.corpus.dedup_ray import dedup_ray

            removed, infos, n = dedup_ray(files, tmp_out, output, config, ray or RayOptions())
        else:
            removed, infos, n = _dedup_local(files, tmp_out, output, config)
        report = build_report(files, output, config, removed, infos, n)
        tmp_report.write_text(json.dumps(report, indent=1) + "\n")
    log.info("%s: kept %d of %d documents", output, report["kept"], report["input_documents"])
    return report


def _dedup_local(
    files: list[Path], tmp_out: Path, output: Path, config: DedupConfig
) -> tuple[dict[int, tuple[int, float]], dict[int, DocInfo], int]:
    dedup = Deduplicator(config)
    compute = SignatureComputer(config.minhash)
    infos: list[DocInfo] = []
    progress = Progress("dedup (local)")
    with ExitStack() as stack:
        out = _open_output(tmp_out, output, stack)
        stack.callback(progress.close)
        docs = iter_corpus(files)
        while chunk := list(itertools.islice(docs, config.chunk_docs)):
            sigs = compute([d.text for _, d in chunk])
            for (k, doc), sig in zip(chunk, sigs):
                if dedup.add(len(infos), sig, doc.text) is None:
                    out.write(doc.raw + b"\n")
                infos.append(DocInfo(file=k, line=doc.line, id=doc.meta.get("id")))
            progress.update(len(chunk), sum(len(d.raw) + 1 for _, d in chunk))
    return dedup.removed, dict(enumerate(infos)), len(infos)


def build_report(
    files: list[Path],
    output: Path,
    config: DedupConfig,
    removed: dict[int, tuple[int, float]],
    infos: dict[int, DocInfo],
    n: int,
) -> dict[str, Any]:
    """The report: parameters, bands, the rule, and every duplicate group (engine-free)."""

    def info(i: int) -> dict[str, Any]:
        d = infos[i]
        return {"doc": i, "file": d.file, "line": d.line, "id": d.id}

    groups: dict[int, list[dict[str, Any]]] = {}
    for doc, (kept, sim) in sorted(removed.items()):
        groups.setdefault(kept, []).append({**info(doc), "jaccard": sim})
    b, r = config.bands
    return {
        "inputs": [str(f) for f in files],
        "output": output.name,  # the report sits beside it
        "input_documents": n,
        "kept": n - len(removed),
        "removed": len(removed),
        "parameters": {
            "threshold": config.threshold,
            "num_perm": config.num_perm,
            "seed": config.seed,
            "shingle_words": config.shingle_words,
            "verify": config.verify,
        },
        "lsh": {
            "b": b,
            "r": r,
            "candidate_recall_at_threshold": round(
                candidate_probability(config.threshold, b, r), 6
            ),
        },
        "minhash": config.minhash.describe(),
        "rule": RULES[config.verify],
        "groups": [{"kept": info(k), "removed": v} for k, v in sorted(groups.items())],
    }
