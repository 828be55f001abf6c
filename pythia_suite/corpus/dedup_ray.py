"""The dedup rule on a Ray cluster, byte-identical to the local engine.

The driver plans and routes; every stage is a set of tasks on numpy arrays (`dedup_tasks`), at
most `workers` running at once, P = 2 x workers shuffle partitions:
1. sign, per chunk (a ~1 MB byte range of a `.jsonl` that the task reads itself; a `.jsonl.zst`
   is decompressed by the driver into chunks, as it cannot be cut by bytes): validate, MinHash
   (vectorized affine32), a digest of the word sequence; one record per (document, band), keyed
   by (band, its r values), hash-partitioned. Documents are named `chunk << 24 | index`, so no
   task needs the global numbering; the driver learns per-chunk counts only.
2. buckets, per band partition: documents with equal digests collapse to the first (member ->
   representative links, from band 0); a bucket of k representatives gives k - 1 star edges and
   k memberships (bucket, document), never its k^2 / 2 pairs.
3. components: alternating large-star / small-star rounds (Kiveris et al., "Connected
   Components in MapReduce and Beyond", 2014) over P hash partitions of the edges, until a
   round changes nothing; each document's component is its smallest document.
4. label: memberships and links tagged with their component, routed to P resolve partitions.
5. gather, per group of chunks: the texts of component documents only (other chunks unread).
6. resolve, per partition of whole components: the rule, lazily, in input order: a document is
   checked against the kept documents of its buckets in ascending order, up to its first match
   (what the local engine's LSH of kept documents does: the same pairs, the same count,
   `verified_pairs` in the report); an exact copy takes its representative's fate unverified.
   A cluster of n near-identical documents costs about n verifications. Worst case, as for the
   local engine: n mutually-candidate documents that are all kept (pairwise below the
   threshold yet sharing a band) cost n^2 / 2 verifications.
7. split + write, per chunk in order: the kept lines; the driver appends them to the output.

Memory per process. Driver: the chunk plan, per-chunk counts and object refs, O(chunks + P^2)
(P^2 refs per shuffle), plus the report's duplicate groups (O(removed documents), ~150 bytes
each: the report lists them) and one chunk's kept lines at a time; never the edges, the
signatures or the texts. A task: one ~1 MB chunk and its signature block (capped at 200,000
words x num_perm uint32, ~100 MB), or one partition of a shuffle (band records ~(4 (r + 1) +
24) bytes per document and band, / P; edges 16 bytes), or one resolve partition: its whole
components' memberships and texts (a component is never split: the largest component's texts
bound that task).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from dataloader_replay.engine_ray import RayOptions, bounded, connect, get, ordered
from dataloader_replay.inputs import Progress, iter_raw_chunks
from dataloader_replay.jsonl import parse_line
from pythia_suite.corpus import dedup_tasks as T
from pythia_suite.corpus.dedup_rule import DedupConfig, DocInfo, open_output
from suite_core import DataError

log = logging.getLogger(__name__)
CHUNK_BYTES = 1 << 20
MAX_ROUNDS = 200
Refs = list[Any]


@cache
def _remote(name: str, num_returns: int, retries: int) -> Any:
    import ray

    fn = getattr(T, name)
    return ray.remote(num_cpus=1, max_retries=retries, num_returns=num_returns)(fn)


def _specs(files: list[Path], chunk_bytes: int) -> Iterator[T.ChunkSpec]:
    """The chunks in input order: byte ranges of plain files (nothing read), decompressed
    chunks of `.zst` files (put in the object store)."""
    import ray

    index = 0
    for k, path in enumerate(files):
        if path.name.endswith(".zst"):
            for chunk in iter_raw_chunks([path], chunk_bytes):
                yield T.ChunkSpec(index=index, file=k, raw=ray.put(chunk))
                index += 1
            continue
        size = path.stat().st_size
        for start in range(0, max(size, 1), chunk_bytes):
            yield T.ChunkSpec(index=index, file=k, start=start, end=min(start + chunk_bytes, size))
            index += 1


class _Numbering:
    """Per-chunk first document and first line, from the sign tasks' counts taken in input
    order; raises the first bad line or empty file, as the local engine would."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self.first_doc: list[int] = []
        self.line_base: list[int] = []
        self.docs = 0
        self.file = -1
        self.file_docs = self.file_lines = 0

    def add(self, spec: T.ChunkSpec, meta: T.SignMeta) -> None:
        if spec.file != self.file:
            self.close()
            self.file, self.file_docs, self.file_lines = spec.file, 0, 0
        base = self.file_lines if spec.raw is None else 0
        if meta.bad is not None:
            number, raw = meta.bad
            parse_line(self.files[spec.file], base + number, raw)  # raises the local error
            raise DataError(f"{self.files[spec.file]}:{base + number}: bad line")
        self.first_doc.append(self.docs)
        self.line_base.append(base)
        self.docs += meta.docs
        self.file_docs += meta.docs
        self.file_lines += meta.lines

    def close(self) -> None:
        if self.file >= 0 and self.file_docs == 0:
            raise DataError(f"{self.files[self.file]}: empty corpus (no documents)")


def _stage_sign(
    files: list[Path], plan: T.Plan, workers: int
) -> tuple[list[T.ChunkSpec], list[Refs], _Numbering]:
    """Stage 1: (chunk specs, sign outputs per chunk, numbering). Errors surface in input
    order: a driver-side read error waits until every earlier chunk is checked."""
    sign = _remote("sign", 1 + plan.partitions, plan.retries)
    specs: list[T.ChunkSpec] = []
    outs: list[Refs] = []
    numbering = _Numbering(files)
    progress = Progress("dedup (ray) sign")

    def submit() -> Iterator[Any]:
        for spec in _specs(files, CHUNK_BYTES):
            specs.append(spec)
            yield sign.remote(spec, plan)

    def check(upto: int) -> None:
        while len(numbering.first_doc) < upto:
            c = len(numbering.first_doc)
            meta: T.SignMeta = get(outs[c][0], "sign")
            numbering.add(specs[c], meta)
            progress.update(meta.docs, meta.nbytes)

    try:
        try:
            for out in bounded(submit(), workers):
                outs.append(out)
                check(max(0, len(outs) - 2 * workers))
        except Exception:
            check(len(outs))  # an earlier bad line or empty file comes first
            numbering.close()
            raise
        check(len(outs))
        numbering.close()
    finally:
        progress.close()
    return specs, outs, numbering


def _run(tasks: Iterator[Any], workers: int) -> list[Any]:
    return list(bounded(tasks, workers))


def _stage_components(plan: T.Plan, workers: int, edges: list[Refs]) -> list[Refs]:
    """Stage 3: alternate large-star and small-star until neither changes the graph; returns
    the star forest (each component a star on its smallest document), P partitions."""
    P = plan.partitions
    large = _remote("large_star", 1 + P, plan.retries)
    small = _remote("small_star", 1 + P, plan.retries)
    for rounds in range(1, MAX_ROUNDS + 1):
        ls = _run((large.remote(plan, *edges[p]) for p in range(P)), workers)
        mid = [[x[1 + q] for x in ls] for q in range(P)]
        ss = _run((small.remote(plan, *mid[q]) for q in range(P)), workers)
        edges = [[x[1 + q] for x in ss] for q in range(P)]
        changed = sum(get([x[0] for x in ls + ss], "components"))
        if changed == 0:
            log.info("ray: components converged in %d rounds", rounds)
            return edges
    raise DataError(f"ray: components did not converge in {MAX_ROUNDS} rounds")


def _stage_resolve(
    plan: T.Plan, workers: int, specs: list[T.ChunkSpec], signed: list[Refs]
) -> tuple[list[Refs], int]:
    """Stages 2 to 6: (resolve outputs, the number of verifications the rule counts)."""
    P = plan.partitions
    buckets = _remote("buckets", 3 * P, plan.retries)
    bucketed = _run(
        (buckets.remote(plan, p, *[s[1 + p] for s in signed]) for p in range(P)), workers
    )
    stars = _stage_components(plan, workers, [[b[p] for b in bucketed] for p in range(P)])
    label = _remote("label", 2 * P, plan.retries)
    labels = _run(
        (
            label.remote(
                plan, P, *stars[p], *[b[P + p] for b in bucketed], *[b[2 * P + p] for b in bucketed]
            )
            for p in range(P)
        ),
        workers,
    )
    gather = _remote("gather", P, plan.retries)
    groups = [[s for s in specs if s.index % P == g] for g in range(P)]
    gathered = _run(
        (gather.remote(plan, groups[g], *[x[P + g] for x in labels]) for g in range(P)), workers
    )
    resolve = _remote("resolve", 1 + P, plan.retries)
    resolved = _run(
        (
            resolve.remote(plan, P, *[x[q] for x in labels], *[x[q] for x in gathered])
            for q in range(P)
        ),
        workers,
    )
    return resolved, int(sum(get([r[0] for r in resolved], "resolve")))


def _cuts(plan: T.Plan, specs: list[T.ChunkSpec], resolved: list[Refs]) -> list[Any]:
    """Stage 7: per chunk, a ref to its removed rows and targets."""
    P = plan.partitions
    cuts: list[Any] = [None] * len(specs)
    for g in range(P):
        chunks = [s.index for s in specs if s.index % P == g]
        if not chunks:
            continue
        task = _remote("split", 1, plan.retries).options(num_returns=len(chunks))
        refs = task.remote(chunks, *[r[1 + g] for r in resolved])
        for c, ref in zip(chunks, refs if len(chunks) > 1 else [refs]):
            cuts[c] = ref
    return cuts


def _stage_write(
    plan: T.Plan,
    workers: int,
    specs: list[T.ChunkSpec],
    numbering: _Numbering,
    cuts: list[Any],
    out: Any,
) -> tuple[dict[int, tuple[int, float]], dict[int, DocInfo]]:
    """Stage 8: kept lines in input order; the removed documents and the report's facts."""
    write = _remote("write", 1, plan.retries)
    first = np.asarray(numbering.first_doc, dtype=np.int64)
    removed: dict[int, tuple[int, float]] = {}
    infos: dict[int, DocInfo] = {}
    tasks = (write.remote(spec, plan, cuts[spec.index]) for spec in specs)
    for spec, (data, rows, facts) in zip(specs, ordered(tasks, workers, "write")):
        out.write(data)
        c = spec.index
        for d, k, bits in rows.tolist():
            kept = int(first[k >> T.KEY_BITS]) + (k & ((1 << T.KEY_BITS) - 1))
            sim = float(np.int64(bits).view(np.float64))
            removed[int(first[c]) + (d & ((1 << T.KEY_BITS) - 1))] = (kept, sim)
        for at, line, ident in facts:
            doc = int(first[c]) + at
            infos[doc] = DocInfo(file=spec.file, line=numbering.line_base[c] + line, id=ident)
    return removed, infos


def dedup_ray(
    files: list[Path], tmp: Path, output: Path, config: DedupConfig, options: RayOptions
) -> tuple[dict[int, tuple[int, float]], dict[int, DocInfo], int, int]:
    """The dedup rule on Ray; writes `tmp` (compressed if `output` ends in .zst), returns
    (removed, infos, documents, verified pairs)."""
    workers = connect(options)
    plan = T.Plan(
        config=config,
        files=tuple(map(str, files)),
        partitions=max(2, 2 * workers),
        retries=options.max_retries,
    )
    t0 = time.perf_counter()
    specs, signed, numbering = _stage_sign(files, plan, workers)
    t1 = time.perf_counter()
    resolved, verified = _stage_resolve(plan, workers, specs, signed)
    del signed
    cuts = _cuts(plan, specs, resolved)
    t2 = time.perf_counter()
    with ExitStack() as stack:
        out = open_output(tmp, output, stack)
        removed, infos = _stage_write(plan, workers, specs, numbering, cuts, out)
    t3 = time.perf_counter()
    log.info(
        "ray: %d chunks, %d verified pairs, %d removed; engine time %.2f s: sign %.1f s, "
        "buckets to resolve %.1f s, write %.1f s",
        len(specs),
        verified,
        len(removed),
        t3 - t0,
        t1 - t0,
        t2 - t1,
        t3 - t2,
    )
    return dict(sorted(removed.items())), infos, numbering.docs, verified
