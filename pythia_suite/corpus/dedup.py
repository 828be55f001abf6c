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

Engines: "local" streams the input through datasketch's MinHashLSH in one process (the index
holds kept documents only, so a document is verified against kept candidates, in ascending
order, up to its first match); "ray" (`dedup_ray`) computes the same decisions, and the same
verified pairs, on a Ray cluster, per connected component of the candidate graph. Their outputs
and reports (with `verified_pairs`, the number of similarities the rule computed) are
byte-identical.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
from datasketch import LeanMinHash, MinHashLSH

from dataloader_replay.engine_ray import RayOptions, claimed
from dataloader_replay.inputs import Progress, input_files, iter_corpus
from pythia_suite.corpus.dedup_rule import (
    VERIFY,
    DedupConfig,
    DocInfo,
    open_output,
    report_path,
)
from pythia_suite.corpus.minhash import (
    SCHEME,
    SignatureComputer,
    candidate_probability,
    jaccard,
    shingle_set,
    signatures,
)
from suite_core import ConfigError
from suite_core.atomic import atomic_path, refuse_existing
from suite_core.hashing import sha256_file

# the rule's names are the engines' shared ones (dedup_rule); this module is the local engine
__all__ = [
    "VERIFY",
    "DedupConfig",
    "DocInfo",
    "dedup_file",
    "dedup_texts",
    "report_path",
]

log = logging.getLogger(__name__)
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
        self.verified = 0  # pairs whose similarity was computed

    def add(self, index: int, signature: np.ndarray, text: str) -> int | None:
        """Decide on document `index`; return the kept document it duplicates, or None if kept."""
        sketch = LeanMinHash(seed=self.config.seed, hashvalues=signature, scheme=SCHEME)
        own: frozenset[str] | None = None
        for other in sorted(self.lsh.query(sketch)):
            self.verified += 1
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

            removed, infos, n, verified = dedup_ray(
                files, tmp_out, output, config, ray or RayOptions()
            )
        else:
            removed, infos, n, verified = _dedup_local(files, tmp_out, output, config)
        report = build_report(files, output, config, removed, infos, n, verified)
        tmp_report.write_text(json.dumps(report, indent=1) + "\n")
    log.info("%s: kept %d of %d documents", output, report["kept"], report["input_documents"])
    return report


def _dedup_local(
    files: list[Path], tmp_out: Path, output: Path, config: DedupConfig
) -> tuple[dict[int, tuple[int, float]], dict[int, DocInfo], int, int]:
    start = time.perf_counter()
    dedup = Deduplicator(config)
    compute = SignatureComputer(config.minhash)
    infos: list[DocInfo] = []
    progress = Progress("dedup (local)")
    with ExitStack() as stack:
        out = open_output(tmp_out, output, stack)
        stack.callback(progress.close)
        docs = iter_corpus(files)
        while chunk := list(itertools.islice(docs, config.chunk_docs)):
            sigs = compute([d.text for _, d in chunk])
            for (k, doc), sig in zip(chunk, sigs):
                if dedup.add(len(infos), sig, doc.text) is None:
                    out.write(doc.raw + b"\n")
                infos.append(DocInfo(file=k, line=doc.line, id=doc.meta.get("id")))
            progress.update(len(chunk), sum(len(d.raw) + 1 for _, d in chunk))
    log.info(
        "local: %d verified pairs; engine time %.2f s", dedup.verified, time.perf_counter() - start
    )
    return dedup.removed, dict(enumerate(infos)), len(infos), dedup.verified


def build_report(
    files: list[Path],
    output: Path,
    config: DedupConfig,
    removed: dict[int, tuple[int, float]],
    infos: dict[int, DocInfo],
    n: int,
    verified: int,
) -> dict[str, Any]:
    """The report: parameters, bands, the rule, and every duplicate group (engine-free).
    `verified`: the candidate pairs whose similarity the rule computes (each document against
    its kept candidates in ascending order, up to its first match)."""

    def info(i: int) -> dict[str, Any]:
        d = infos[i]
        return {"doc": i, "file": d.file, "line": d.line, "id": d.id}

    groups: dict[int, list[dict[str, Any]]] = {}
    for doc, (kept, sim) in sorted(removed.items()):
        groups.setdefault(kept, []).append({**info(doc), "jaccard": sim})
    b, r = config.bands
    return {
        "inputs": [str(f) for f in files],
        "input_sha256": [sha256_file(f) for f in files],  # name the corpus a truth.json describes
        "output": output.name,  # the report sits beside it
        "input_documents": n,
        "kept": n - len(removed),
        "removed": len(removed),
        "verified_pairs": verified,
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
