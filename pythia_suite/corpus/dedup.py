"""Near-duplicate removal with MinHash + datasketch's MinHashLSH (the Pile-deduped recipe).

Rule, in input order: a document is dropped if the LSH index (which holds only kept documents)
returns a candidate whose estimated Jaccard similarity (fraction of equal signature slots) is
`>= threshold`; it is recorded as a duplicate of the earliest such kept document. Otherwise it
is kept and inserted. So the first document of every duplicate group survives, and a removed
document never causes later removals. Kept lines are written unchanged (their raw bytes), in
input order; `OUTPUT.report.json` describes the run and every duplicate group.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from datasketch import LeanMinHash, MinHashLSH
from tqdm import tqdm

from dataloader_replay.jsonl import Document, iter_documents
from pythia_suite.corpus.minhash import SCHEME, MinHashParams, SignatureComputer
from suite_core.atomic import atomic_path, refuse_existing

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DedupConfig:
    threshold: float = 0.87
    num_perm: int = 128
    seed: int = 1
    shingle_words: int = 5
    # datasketch picks (b, r) minimising fp_weight*FP + fn_weight*FN; candidates are verified
    # by their estimated Jaccard, so LSH false positives cost only time: favour recall.
    # At threshold 0.87 and 128 permutations this gives b=10, r=12.
    false_negative_weight: float = 0.9
    chunk_docs: int = 2048

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold: must be in (0, 1], got {self.threshold}")
        if not 0.0 <= self.false_negative_weight <= 1.0:
            raise ValueError(
                f"false_negative_weight: must be in [0, 1], got {self.false_negative_weight}"
            )

    @property
    def weights(self) -> tuple[float, float]:
        """(false positive weight, false negative weight) for datasketch's parameter search."""
        return (round(1.0 - self.false_negative_weight, 12), self.false_negative_weight)

    @property
    def minhash(self) -> MinHashParams:
        return MinHashParams(
            num_perm=self.num_perm, seed=self.seed, shingle_words=self.shingle_words
        )


@dataclass(kw_only=True)
class DedupResult:
    """Outcome of deduplicating one stream: which lines were kept and the duplicate groups."""

    kept: list[int] = field(default_factory=list)  # 0-based document indices, input order
    removed: dict[int, tuple[int, float]] = field(default_factory=dict)  # doc -> (kept doc, est. J)
    b: int = 0
    r: int = 0


def report_path(output: Path) -> Path:
    """Where the report of a dedup run writing `output` goes."""
    return output.with_name(output.name + ".report.json")


class Deduplicator:
    """Streaming near-duplicate detector; feed signatures in input order."""

    def __init__(self, config: DedupConfig) -> None:
        self.config = config
        self.lsh = MinHashLSH(
            threshold=config.threshold, num_perm=config.num_perm, weights=config.weights
        )
        self.kept_sigs: dict[int, np.ndarray] = {}
        self.result = DedupResult(b=self.lsh.b, r=self.lsh.r)

    def add(self, index: int, signature: np.ndarray) -> int | None:
        """Decide on document `index`; return the kept document it duplicates, or None if kept."""
        sketch = LeanMinHash(seed=self.config.seed, hashvalues=signature, scheme=SCHEME)
        best: tuple[int, float] | None = None
        for other in sorted(self.lsh.query(sketch)):
            estimate = float(np.mean(self.kept_sigs[other] == signature))
            if estimate >= self.config.threshold:
                best = (other, estimate)
                break
        if best is not None:
            self.result.removed[index] = best
            return best[0]
        self.lsh.insert(index, sketch, check_duplication=False)
        self.kept_sigs[index] = signature
        self.result.kept.append(index)
        return None


def dedup_signatures(signatures: np.ndarray, config: DedupConfig) -> DedupResult:
    """Apply the dedup rule to precomputed signatures `[n, num_perm]` (pure, no I/O)."""
    dedup = Deduplicator(config)
    for i, sig in enumerate(signatures):
        dedup.add(i, sig)
    return dedup.result


def _chunks(docs: Iterator[Document], size: int) -> Iterator[list[Document]]:
    chunk: list[Document] = []
    for doc in docs:
        chunk.append(doc)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _open_output(path: Path, final: Path, stack: ExitStack) -> BinaryIO:
    fh: BinaryIO = stack.enter_context(open(path, "wb"))
    if final.suffix == ".zst":
        import zstandard

        return stack.enter_context(zstandard.ZstdCompressor().stream_writer(fh))  # type: ignore[return-value]
    return fh


def dedup_file(input: Path, output: Path, config: DedupConfig = DedupConfig()) -> dict[str, Any]:
    """Deduplicate a `.jsonl(.zst)` corpus into `output` (+ `output.report.json`); return the report."""
    input, output = Path(input), Path(output)
    report_file = report_path(output)
    refuse_existing(output)
    refuse_existing(report_file)
    if output.resolve() == input.resolve():
        raise ValueError(f"{output}: output must differ from the input")
    dedup = Deduplicator(config)
    compute = SignatureComputer(config.minhash)
    meta_ids: list[Any] = []  # per document: meta id and 1-based line, for the report
    lines: list[int] = []
    index = 0
    with atomic_path(output) as tmp_out, atomic_path(report_file) as tmp_report:
        with ExitStack() as stack:
            out = _open_output(tmp_out, output, stack)
            bar = stack.enter_context(tqdm(desc=f"dedup {input.name}", unit="doc", disable=None))
            for chunk in _chunks(iter_documents(input), config.chunk_docs):
                sigs = compute([d.text for d in chunk])
                for doc, sig in zip(chunk, sigs):
                    lines.append(doc.line)
                    meta_ids.append(doc.meta.get("id"))
                    if dedup.add(index, sig) is None:
                        out.write(doc.raw + b"\n")
                    index += 1
                bar.update(len(chunk))
        report = _report(input, output, config, dedup.result, lines, meta_ids)
        tmp_report.write_text(json.dumps(report, indent=1) + "\n")
    log.info("%s: kept %d of %d documents", output, report["kept"], report["input_documents"])
    return report


def _report(
    input: Path,
    output: Path,
    config: DedupConfig,
    result: DedupResult,
    lines: list[int],
    ids: list[Any],
) -> dict[str, Any]:
    def info(i: int) -> dict[str, Any]:
        return {"doc": i, "line": lines[i], "id": ids[i]}

    groups: dict[int, list[dict[str, Any]]] = {}
    for doc, (kept, est) in sorted(result.removed.items()):
        groups.setdefault(kept, []).append({**info(doc), "estimated_jaccard": est})
    return {
        "input": str(input),
        "output": str(output),
        "input_documents": len(lines),
        "kept": len(result.kept),
        "removed": len(result.removed),
        "parameters": {
            "threshold": config.threshold,
            "num_perm": config.num_perm,
            "seed": config.seed,
        },
        "lsh": {
            "library": "datasketch.MinHashLSH",
            "b": result.b,
            "r": result.r,
            "weights": list(config.weights),
        },
        "minhash": config.minhash.describe(),
        "rule": "input order; a document is removed if an LSH candidate among kept documents has "
        "estimated Jaccard >= threshold (duplicate of the earliest such); doc = 0-based index, "
        "line = 1-based line in the input",
        "groups": [{"kept": info(k), "removed": v} for k, v in sorted(groups.items())],
    }
