"""The dedup rule on a Ray cluster, byte-identical to the local engine.

Stages (driver streams; at most `workers` tasks run at once; results consumed in input order):
1. sign: per chunk of raw lines (about `chunk_bytes`), validate, compute MinHash signatures
   (the vectorized affine32 path) and a digest of each document's word sequence; emit one
   record per (document, band): key = (band, the band's r signature values, exactly), hash-
   partitioned into P shuffle partitions.
2. buckets: per partition, group records by key. Within a bucket, documents with equal digests
   (equal shingle sets) collapse to their smallest index, the group's representative; member
   -> representative links come from band 0 only (every document is in one band-0 bucket), so a
   cluster of n identical documents costs n links, not n^2 / 2 pairs. Candidate pairs are all
   pairs of distinct representatives in a bucket, partitioned by (chunk of j, chunk of i).
3. verify: per partition, unique candidate pairs, each verified by exact Jaccard of the two
   shingle sets (or the estimate): texts are fetched from the chunk objects, two at a time.
4. resolve: connected components of the verified edges (driver, scipy on the edge arrays),
   then the rule per component (`dedup.resolve`) in tasks. A member inherits its
   representative's fate: duplicate of it if it was kept, else of its kept match.
5. write: the driver walks the chunks in order and writes the kept raw lines.

Memory, per process: a sign task holds one chunk and its `[num_perm, shingles]` block
(`iter_signatures` caps it at 200,000 words, ~100 MB); a bucket task one partition of
records (4*(r+1) + 24 bytes per document and band, / P); a verify task its partition's pairs
and two chunks; the driver the verified edges (~40 bytes each), the removed documents (~100
bytes each, Python dicts) and one chunk. No process holds the corpus or all signatures.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from dataloader_replay.engine_ray import RayOptions, bounded, chaos, connect, get
from dataloader_replay.inputs import Progress, RawChunk, iter_raw_chunks, parse_chunk
from pythia_suite.corpus.dedup_rule import DedupConfig, DocInfo, open_output, resolve
from pythia_suite.corpus.minhash import iter_signatures, jaccard, shingle_set, word_digest

log = logging.getLogger(__name__)
CHUNK_BYTES = 1 << 20
_EMPTY_PAIRS = np.empty((0, 2), dtype=np.int64)


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Everything a task needs besides its data."""

    config: DedupConfig
    files: tuple[str, ...]
    partitions: int  # P: band shuffle partitions (and verify partitions)
    retries: int  # task retries after a lost worker


def _remote(fn: Any, num_returns: int, retries: int) -> Any:
    import ray

    return ray.remote(num_cpus=1, max_retries=retries, num_returns=num_returns)(fn)


@cache
def _remotes(partitions: int, retries: int) -> tuple[Any, Any, Any, Any]:
    return (
        _remote(_sign, 2 + partitions, retries),
        _remote(_buckets, 1 + partitions, retries),
        _remote(_verify, 1, retries),
        _remote(_resolve_part, 1, retries),
    )


def _partition(values: np.ndarray, salt: np.ndarray, n: int) -> np.ndarray:
    mixed = (values ^ (salt * np.uint32(0x9E3779B1))).astype(np.uint64)
    return (mixed % np.uint64(n)).astype(np.int64)


def _sign(chunk: RawChunk, plan: Plan) -> tuple[Any, ...]:
    """Stage 1 on one chunk: (documents, signatures or None, P record partitions)."""
    chaos("sign")
    docs = parse_chunk(Path(plan.files[chunk.file]), chunk)
    texts = [d.text for d in docs]
    sigs = np.concatenate(list(iter_signatures(texts, plan.config.minhash)))
    digests = np.frombuffer(b"".join(map(word_digest, texts)), dtype="V16")
    b, r = plan.config.bands
    n = len(texts)
    band = np.repeat(np.arange(b, dtype=np.uint32), n)
    keys = np.empty((b * n, r + 1), dtype=np.uint32)
    keys[:, 0] = band
    keys[:, 1:] = sigs[:, : b * r].reshape(n, b, r).transpose(1, 0, 2).reshape(b * n, r)
    doc = np.tile(np.arange(chunk.first_doc, chunk.first_doc + n, dtype=np.int64), b)
    dig = np.tile(digests, b)
    part = _partition(keys[:, 1], band, plan.partitions)
    parts = [(keys[part == p], doc[part == p], dig[part == p]) for p in range(plan.partitions)]
    keep = sigs if plan.config.verify == "estimate" else None
    return (n, keep, *parts)


def _bucket_pairs(docs: np.ndarray, digests: np.ndarray, band: int) -> tuple[list, list]:
    """(member -> representative links if band 0, pairs of representatives) of one bucket."""
    order = np.argsort(docs, kind="stable")
    rep_of: dict[bytes, int] = {}
    links, reps = [], []
    for d, g in zip(docs[order].tolist(), digests[order].tolist()):
        if g in rep_of:
            if band == 0:
                links.append((d, rep_of[g]))
        else:
            rep_of[g] = d
            reps.append(d)
    pairs = [(reps[a], reps[c]) for c in range(len(reps)) for a in range(c)]
    return links, pairs


def _buckets(first_docs: np.ndarray, plan: Plan, *parts: Any) -> tuple[Any, ...]:
    """Stage 2 on one partition: (links [m, 2], P candidate-pair partitions)."""
    chaos("buckets")
    keys = np.concatenate([p[0] for p in parts])
    docs = np.concatenate([p[1] for p in parts])
    digests = np.concatenate([p[2] for p in parts])
    void = np.ascontiguousarray(keys).view(f"V{keys.shape[1] * 4}").ravel()
    _, inverse, counts = np.unique(void, return_inverse=True, return_counts=True)
    shared = np.flatnonzero(counts[inverse] > 1)
    shared = shared[np.argsort(inverse[shared], kind="stable")]
    bounds = np.flatnonzero(np.diff(inverse[shared])) + 1
    links: list[tuple[int, int]] = []
    pairs: list[tuple[int, int]] = []
    for group in np.split(shared, bounds) if len(shared) else []:
        link, pair = _bucket_pairs(docs[group], digests[group], int(keys[group[0], 0]))
        links += link
        pairs += pair
    pair_arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    chunk_j = np.searchsorted(first_docs, pair_arr[:, 0], side="right") - 1
    chunk_i = np.searchsorted(first_docs, pair_arr[:, 1], side="right") - 1
    q = (chunk_j * 1_000_003 + chunk_i) % plan.partitions
    out = [pair_arr[q == p] for p in range(plan.partitions)]
    return (np.asarray(links, dtype=np.int64).reshape(-1, 2), *out)


class _Fetch:
    """Texts or signatures of documents by global index, fetching one chunk object at a time."""

    def __init__(self, plan: Plan, first_docs: np.ndarray, chunks: list[Any], sigs: list[Any]):
        self.plan, self.first, self.chunks, self.sigs = plan, first_docs, chunks, sigs
        self.cache: dict[int, tuple[list[str] | None, np.ndarray | None]] = {}

    def __call__(self, doc: int) -> tuple[str, np.ndarray]:
        c = int(np.searchsorted(self.first, doc, side="right") - 1)
        if c not in self.cache:
            if len(self.cache) >= 2:
                self.cache.pop(min(self.cache))
            self.cache[c] = self._load(c)
        texts, sigs = self.cache[c]
        at = doc - int(self.first[c])
        return (texts[at] if texts else ""), (sigs[at] if sigs is not None else _EMPTY_PAIRS)

    def _load(self, c: int) -> tuple[list[str] | None, np.ndarray | None]:
        if self.plan.config.verify == "estimate":
            return None, get(self.sigs[c], "verify")
        chunk: RawChunk = get(self.chunks[c], "verify")
        return [d.text for d in parse_chunk(Path(self.plan.files[chunk.file]), chunk)], None


def _verify(
    first_docs: np.ndarray, plan: Plan, refs: tuple[list[Any], list[Any]], *parts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Stage 3 on one partition of candidate pairs: verified (edges [m, 2], similarities)."""
    chaos("verify")
    pairs = np.unique(np.concatenate(parts), axis=0) if parts else _EMPTY_PAIRS
    chunk_of = np.searchsorted(first_docs, pairs, side="right") - 1
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0], chunk_of[:, 1], chunk_of[:, 0]))]
    fetch = _Fetch(plan, first_docs, *refs)
    k = plan.config.shingle_words

    @lru_cache(maxsize=8192)  # a document meets many partners: build its set once
    def sets(doc: int) -> frozenset[str]:
        return frozenset(shingle_set(fetch(doc)[0], k))

    sims = np.empty(len(pairs))
    for n, (j, i) in enumerate(pairs.tolist()):
        if plan.config.verify == "exact":
            sims[n] = jaccard(sets(j), sets(i))  # type: ignore[arg-type]
        else:
            sims[n] = plan.config.similarity(fetch(j), fetch(i))
    ok = sims >= plan.config.threshold
    return pairs[ok], sims[ok]


def _resolve_part(edges: np.ndarray, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stage 4 on whole components: removed [m, 2] (doc, kept) and their similarities."""
    chaos("resolve")
    removed = resolve(edges, sims)
    docs = np.asarray(sorted(removed), dtype=np.int64)
    kept = np.asarray([removed[d][0] for d in docs.tolist()], dtype=np.int64)
    sim = np.asarray([removed[d][1] for d in docs.tolist()], dtype=np.float64)
    return np.stack([docs, kept], axis=1).reshape(-1, 2), sim


def _components(edges: np.ndarray, parts: int) -> np.ndarray:
    """Which resolve task each edge goes to: its connected component modulo `parts`."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    nodes, flat = np.unique(edges, return_inverse=True)
    local = flat.reshape(edges.shape)
    graph = coo_matrix((np.ones(len(edges)), (local[:, 0], local[:, 1])), (len(nodes),) * 2)
    _, label = connected_components(graph, directed=False)
    return label[local[:, 0]] % parts


def _stage_sign(
    files: list[Path], plan: Plan, workers: int, sign: Any
) -> tuple[list[Any], list[Any], list[list[Any]], np.ndarray]:
    """Run stage 1: (chunk refs, signature refs, record partition refs per chunk, first docs)."""
    import ray

    chunks, sigs, records, first = [], [], [], []
    progress = Progress("dedup (ray) sign")

    def submit() -> Iterator[Any]:
        for chunk in iter_raw_chunks(files, CHUNK_BYTES):
            ref = ray.put(chunk)
            chunks.append(ref)
            first.append(chunk.first_doc)
            out = sign.remote(ref, plan)
            progress.update(len(chunk.raw), chunk.nbytes)
            yield out

    counts = []
    try:
        for out in bounded(submit(), workers):
            counts.append(out[0])
            sigs.append(out[1])
            records.append(list(out[2:]))
        get(counts, "sign")
    finally:
        progress.close()
    return chunks, sigs, records, np.asarray(first, dtype=np.int64)


def _stage_pairs(
    plan: Plan, workers: int, refs: tuple[list[Any], list[Any], list[list[Any]], np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stages 2 and 3: (member -> representative links, verified edges, similarities)."""
    _, buckets, verify, _ = _remotes(plan.partitions, plan.retries)
    chunks, sigs, records, first = refs
    P = plan.partitions
    reduced = list(
        bounded(
            (buckets.remote(first, plan, *[rec[p] for rec in records]) for p in range(P)), workers
        )
    )
    links = get([r[0] for r in reduced], "buckets")
    verified = (
        verify.remote(first, plan, (chunks, sigs), *[r[1 + q] for r in reduced]) for q in range(P)
    )
    results = get(list(bounded(verified, workers)), "verify")
    edges = np.concatenate([e for e, _ in results])
    sims = np.concatenate([s for _, s in results])
    return np.concatenate(links), edges, sims


def _stage_resolve(
    plan: Plan, workers: int, links: np.ndarray, edges: np.ndarray, sims: np.ndarray
) -> dict[int, tuple[int, float]]:
    """Stage 4: the rule per component, then members inherit their representative's fate."""
    resolve_task = _remotes(plan.partitions, plan.retries)[3]
    part = _components(edges, plan.partitions) if len(edges) else np.empty(0, np.int64)
    tasks = (resolve_task.remote(edges[part == p], sims[part == p]) for p in range(plan.partitions))
    removed: dict[int, tuple[int, float]] = {}
    for docs_kept, sim in get(list(bounded(tasks, workers)), "resolve"):
        for (d, k), s in zip(docs_kept.tolist(), sim.tolist()):
            removed[d] = (k, s)
    for member, rep in np.unique(links, axis=0).tolist() if len(links) else []:
        removed[member] = removed.get(rep, (rep, 1.0))
    return removed


def _stage_write(
    files: list[Path],
    tmp: Path,
    output: Path,
    chunks: list[Any],
    removed: dict[int, tuple[int, float]],
) -> tuple[dict[int, DocInfo], int]:
    """Stage 5: kept raw lines in input order; the report's facts about grouped documents."""
    from contextlib import ExitStack

    wanted = set(removed) | {k for k, _ in removed.values()}
    infos: dict[int, DocInfo] = {}
    n = 0
    with ExitStack() as stack:
        out = open_output(tmp, output, stack)
        for ref in chunks:
            chunk: RawChunk = get(ref, "write")
            for at, (line, raw) in enumerate(zip(chunk.lines, chunk.raw)):
                doc = chunk.first_doc + at
                if doc in wanted:
                    parsed = parse_chunk(Path(files[chunk.file]), _one(chunk, at))[0]
                    infos[doc] = DocInfo(file=chunk.file, line=line, id=parsed.meta.get("id"))
                if doc not in removed:
                    out.write(raw + b"\n")
            n += len(chunk.raw)
    return infos, n


def _one(chunk: RawChunk, at: int) -> RawChunk:
    return RawChunk(
        index=chunk.index,
        file=chunk.file,
        first_doc=chunk.first_doc + at,
        lines=[chunk.lines[at]],
        raw=[chunk.raw[at]],
    )


def dedup_ray(
    files: list[Path], tmp: Path, output: Path, config: DedupConfig, options: RayOptions
) -> tuple[dict[int, tuple[int, float]], dict[int, DocInfo], int]:
    """The dedup rule on Ray; writes `tmp` (compressed if `output` ends in .zst), returns
    (removed, infos, documents)."""
    workers = connect(options)
    plan = Plan(
        config=config,
        files=tuple(map(str, files)),
        partitions=max(2, 2 * workers),
        retries=options.max_retries,
    )
    sign = _remotes(plan.partitions, plan.retries)[0]
    refs = _stage_sign(files, plan, workers, sign)
    links, edges, sims = _stage_pairs(plan, workers, refs)
    removed = _stage_resolve(plan, workers, links, edges, sims)
    infos, n = _stage_write(files, tmp, output, refs[0], removed)
    log.info("ray: %d verified pairs, %d exact-copy links", len(edges), len(links))
    return removed, infos, n
