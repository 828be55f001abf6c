"""The Ray engine's tasks for dedup (`dedup_ray` drives them); pure functions on numpy arrays.

A document's key is `chunk << KEY_BITS | index in its chunk`: ordered like the input, known to
the task that reads the chunk, so no task needs the global numbering (the driver turns keys
into global indices at the end, from the per-chunk counts). Rows are routed between stages by
`hash_part` of a document key, or by `chunk % P` when they go back to the chunk's reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dataloader_replay.engine_ray import chaos
from dataloader_replay.jsonl import parse_line
from pythia_suite.corpus.dedup_rule import DedupConfig
from pythia_suite.corpus.minhash import iter_signatures, jaccard, shingle_set, word_digest
from suite_core import DataError

KEY_BITS = 24  # documents per chunk < 2**24 (a chunk is ~1 MB of lines of >= 2 bytes)
_MASK = (1 << KEY_BITS) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_E2 = np.empty((0, 2), dtype=np.int64)
_E3 = np.empty((0, 3), dtype=np.int64)


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Everything a task needs besides its data."""

    config: DedupConfig
    files: tuple[str, ...]
    partitions: int  # P: shuffle partitions of every stage
    retries: int  # task retries after a lost worker


@dataclass(frozen=True, kw_only=True)
class ChunkSpec:
    """A unit of reading: a byte range of a plain `.jsonl` (read by the task itself) or, for a
    compressed input, an object ref to a `RawChunk` the driver decompressed."""

    index: int  # chunk number, input order
    file: int  # index into Plan.files
    start: int = 0
    end: int = 0
    raw: Any = None  # ObjectRef[RawChunk] for .zst inputs


@dataclass(frozen=True, kw_only=True)
class SignMeta:
    """What the driver learns from a sign task: counts, and the first bad line if any."""

    docs: int
    lines: int  # lines owned, blank ones included (0 for driver-read chunks: absolute numbers)
    nbytes: int
    bad: tuple[int, bytes] | None  # (line number as the task saw it, raw line)


def hash_part(keys: np.ndarray, n: int) -> np.ndarray:
    """The partition (0..n-1) of each document key."""
    mixed = keys.astype(np.uint64) * _GOLDEN
    return ((mixed >> np.uint64(29)) % np.uint64(n)).astype(np.int64)


def chunk_of(keys: np.ndarray) -> np.ndarray:
    return keys >> KEY_BITS


def split_rows(rows: np.ndarray, part: np.ndarray, n: int) -> list[np.ndarray]:
    """`rows` cut into n arrays by `part` (stable)."""
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(n + 1))
    return [rows[order[bounds[p] : bounds[p + 1]]] for p in range(n)]


def read_chunk(spec: ChunkSpec, files: tuple[str, ...]) -> tuple[list[int], list[bytes], int]:
    """(line numbers, non-blank lines, lines owned) of a chunk. A byte range owns the lines that
    start in [start, end); its numbers count from 1 at its first line (the driver adds the
    lines owned by earlier chunks). A driver-read chunk has absolute numbers and owns 0."""
    if spec.raw is not None:
        import ray

        chunk = ray.get(spec.raw)
        return chunk.lines, chunk.raw, 0
    with open(files[spec.file], "rb") as fh:
        pos = spec.start
        if pos > 0:
            fh.seek(pos - 1)
            if fh.read(1) != b"\n":
                pos += len(fh.readline())  # the line that started before belongs to the last chunk
        data = fh.read(max(0, spec.end - pos))
        if data and not data.endswith(b"\n"):
            data += fh.readline()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    numbers, raw = [], []
    for number, line in enumerate(lines, start=1):
        line = line.rstrip(b"\r\n")
        if line.strip():
            numbers.append(number)
            raw.append(line)
    return numbers, raw, len(lines)


def sign(spec: ChunkSpec, plan: Plan) -> tuple[Any, ...]:
    """Stage 1 on one chunk: (SignMeta, P band-record partitions (keys, doc keys, digests))."""
    chaos("sign")
    path = Path(plan.files[spec.file])
    numbers, raw, owned = read_chunk(spec, plan.files)
    nbytes = sum(len(r) + 1 for r in raw)
    texts = []
    for number, line in zip(numbers, raw):
        try:
            texts.append(parse_line(path, number, line).text)
        except DataError:
            return (SignMeta(docs=0, lines=owned, nbytes=nbytes, bad=(number, line)),) + tuple(
                _band_records([], spec.index, plan)
            )
    meta = SignMeta(docs=len(texts), lines=owned, nbytes=nbytes, bad=None)
    return (meta, *_band_records(texts, spec.index, plan))


def _band_records(texts: list[str], chunk: int, plan: Plan) -> list[tuple[np.ndarray, ...]]:
    """Per partition: band keys [m, r+1] (band, its r values), document keys, digests [m, 2]."""
    b, r = plan.config.bands
    n = len(texts)
    sigs = (
        np.concatenate(list(iter_signatures(texts, plan.config.minhash)))
        if n
        else np.empty((0, plan.config.num_perm), dtype=np.uint32)
    )
    digests = np.frombuffer(b"".join(map(word_digest, texts)), dtype="<u8").reshape(n, 2)
    band = np.repeat(np.arange(b, dtype=np.uint32), n)
    keys = np.empty((b * n, r + 1), dtype=np.uint32)
    keys[:, 0] = band
    keys[:, 1:] = sigs[:, : b * r].reshape(n, b, r).transpose(1, 0, 2).reshape(b * n, r)
    doc = np.tile((np.int64(chunk) << KEY_BITS) + np.arange(n, dtype=np.int64), b)
    dig = np.tile(digests, (b, 1))
    mixed = (keys[:, 1] ^ (band * np.uint32(0x9E3779B1))).astype(np.uint64)
    part = (mixed % np.uint64(plan.partitions)).astype(np.int64)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(plan.partitions + 1))
    return [
        (keys[o], doc[o], dig[o])
        for o in (order[bounds[p] : bounds[p + 1]] for p in range(plan.partitions))
    ]


def buckets(plan: Plan, p: int, *parts: tuple[np.ndarray, ...]) -> tuple[Any, ...]:
    """Stage 2 on one band partition. Within a bucket, documents with equal digests (equal
    word sequences) collapse to the first, their representative: member -> representative
    links (band 0 only: every document is in one band-0 bucket). Buckets with >= 2
    representatives give star edges (first representative, each other one): k - 1 edges for
    k representatives, not k^2 / 2 pairs (contracted per local component, `_contract`); and
    memberships (bucket id, representative).
    Returns 3 x P partitions: edges (both ways, by hash of the first node), memberships (by
    hash of the document), links (by hash of the representative)."""
    chaos("buckets")
    keys = np.concatenate([x[0] for x in parts])
    docs = np.concatenate([x[1] for x in parts])
    digs = np.concatenate([x[2] for x in parts])
    void = np.ascontiguousarray(keys).view(f"V{keys.shape[1] * 4}").ravel()
    _, inverse, counts = np.unique(void, return_inverse=True, return_counts=True)
    shared = np.flatnonzero(counts[inverse.ravel()] > 1)
    bucket, doc, dig = inverse.ravel()[shared], docs[shared], digs[shared]
    band = keys[shared, 0]
    order = np.lexsort((doc, dig[:, 1], dig[:, 0], bucket))
    bucket, doc, dig, band = bucket[order], doc[order], dig[order], band[order]
    first = np.ones(len(doc), dtype=bool)
    first[1:] = (bucket[1:] != bucket[:-1]) | (dig[1:] != dig[:-1]).any(axis=1)
    rep = doc[first][np.cumsum(first) - 1]
    is_link = ~first & (band == 0)
    links = np.stack([doc[is_link], rep[is_link]], axis=1)
    rb, rd = bucket[first], doc[first]
    order = np.lexsort((rd, rb))
    rb, rd = rb[order], rd[order]
    starts = np.ones(len(rb), dtype=bool)
    starts[1:] = rb[1:] != rb[:-1]
    group = np.cumsum(starts) - 1
    multi = np.bincount(group)[group] >= 2 if len(group) else starts
    centre = rd[starts][group]
    leaf = multi & ~starts
    edges = _contract(np.stack([centre[leaf], rd[leaf]], axis=1))
    both = np.concatenate([edges, edges[:, ::-1]])
    members = np.stack([(np.int64(p) << 40) + rb[multi], rd[multi]], axis=1)
    P = plan.partitions
    e = split_rows(both, hash_part(both[:, 0], P), P)
    m = split_rows(members, hash_part(members[:, 1], P), P)
    k = split_rows(links, hash_part(links[:, 1], P), P)
    return (*e, *m, *k)


def _contract(edges: np.ndarray) -> np.ndarray:
    """The same connectivity as `edges`, as stars on each local component's smallest node
    (scipy, on this partition's edges only): fewer edges and fewer global rounds."""
    if not len(edges):
        return edges
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    nodes, flat = np.unique(edges, return_inverse=True)
    local = flat.reshape(edges.shape)
    graph = coo_matrix((np.ones(len(local)), (local[:, 0], local[:, 1])), (len(nodes),) * 2)
    _, comp = connected_components(graph, directed=False)
    smallest = np.full(comp.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(smallest, comp, nodes)
    root = smallest[comp]
    leaf = nodes != root
    return np.stack([root[leaf], nodes[leaf]], axis=1)


def _groups(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start of each run of equal values in sorted `u`, run index of each row)."""
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]]) if len(u) else np.empty(0, np.int64)
    group = np.cumsum(np.r_[True, u[1:] != u[:-1]]) - 1 if len(u) else starts
    return starts, group


def large_star(plan: Plan, *parts: np.ndarray) -> tuple[Any, ...]:
    """Connected components, large-star step (Kiveris et al. 2014) on edges grouped by their
    first node u (both directions present): each neighbour v > u is linked to the smallest of
    u's neighbourhood. Returns (groups changed, P partitions of (v, m) by hash of v)."""
    e = np.unique(np.concatenate(parts), axis=0) if parts else _E2
    if not len(e):
        return (0, *[_E2] * plan.partitions)
    u, v = e[:, 0], e[:, 1]
    starts, group = _groups(u)
    gmin = np.minimum(np.minimum.reduceat(v, starts), u[starts])
    bigger = v > u
    changed = int(np.count_nonzero((gmin < u[starts]) & np.logical_or.reduceat(bigger, starts)))
    out = np.stack([v[bigger], gmin[group][bigger]], axis=1)
    return (changed, *split_rows(out, hash_part(out[:, 0], plan.partitions), plan.partitions))


def small_star(plan: Plan, *parts: np.ndarray) -> tuple[Any, ...]:
    """Small-star step on edges (u, v), v < u, grouped by u: u and its smaller neighbours are
    linked to the smallest of them. Returns (groups changed, P partitions, both directions)."""
    e = np.unique(np.concatenate(parts), axis=0) if parts else _E2
    if not len(e):
        return (0, *[_E2] * plan.partitions)
    u, v = e[:, 0], e[:, 1]
    starts, group = _groups(u)
    gmin = np.minimum.reduceat(v, starts)
    changed = int(np.count_nonzero(np.diff(np.r_[starts, len(u)]) >= 2))
    m = gmin[group]
    keep = v != m
    out = np.concatenate([np.stack([v[keep], m[keep]], axis=1), np.stack([u[starts], gmin], 1)])
    both = np.concatenate([out, out[:, ::-1]])
    return (changed, *split_rows(both, hash_part(both[:, 0], plan.partitions), plan.partitions))


def label(plan: Plan, n_star: int, *parts: np.ndarray) -> tuple[Any, ...]:
    """Stage 4 on one partition of documents: each document's component (its smallest
    document, from the converged star forest). Inputs: `n_star` star-edge parts, P membership
    parts, P link parts. Returns P resolve inputs (memberships (bucket, doc, root), links
    (member, rep, root), both by hash of the root) then P gather inputs ((doc, root) of the
    component documents, by chunk modulo P)."""
    P = plan.partitions
    stars = np.concatenate([_E2, *parts[:n_star]])
    members = np.concatenate([_E2, *parts[n_star : n_star + P]])
    links = np.concatenate([_E2, *parts[n_star + P :]])
    x, y = stars[:, 0], stars[:, 1]
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    starts, _ = _groups(x)
    nodes = x[starts]
    roots = np.minimum(np.minimum.reduceat(y, starts), nodes) if len(x) else nodes

    def root(d: np.ndarray) -> np.ndarray:
        at = np.clip(np.searchsorted(nodes, d), 0, max(len(nodes) - 1, 0))
        hit = (nodes[at] == d) if len(nodes) else np.zeros(len(d), dtype=bool)
        return np.where(hit, roots[at] if len(nodes) else d, d)

    mrows = np.concatenate([members, root(members[:, 1])[:, None]], axis=1)
    lrows = np.concatenate([links, root(links[:, 1])[:, None]], axis=1)
    node_docs = np.unique(members[:, 1])
    nrows = np.stack([node_docs, root(node_docs)], axis=1)
    m = split_rows(mrows, hash_part(mrows[:, 2], P), P)
    k = split_rows(lrows, hash_part(lrows[:, 2], P), P)
    g = split_rows(nrows, chunk_of(nrows[:, 0]) % P, P)
    return (*zip(m, k), *g)


def gather(plan: Plan, specs: list[ChunkSpec], *parts: np.ndarray) -> tuple[Any, ...]:
    """Stage 5 on one group of chunks: the texts (or, for `--verify estimate`, signatures) of
    the documents that are in a component, sent to their component's resolve partition.
    Chunks without such documents are not read."""
    chaos("gather")
    rows = np.concatenate(parts) if parts else _E2
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    docs: list[np.ndarray] = []
    texts: list[str] = []
    for spec in specs:
        lo, hi = np.searchsorted(rows[:, 0], [spec.index << KEY_BITS, (spec.index + 1) << KEY_BITS])
        if lo == hi:
            continue
        numbers, raw, _ = read_chunk(spec, plan.files)
        path = Path(plan.files[spec.file])
        for key in rows[lo:hi, 0].tolist():
            at = key & _MASK
            texts.append(parse_line(path, numbers[at], raw[at]).text)
        docs.append(rows[lo:hi])
    got = np.concatenate(docs) if docs else _E2
    part = hash_part(got[:, 1], plan.partitions)
    index = split_rows(np.arange(len(got)), part, plan.partitions)
    if plan.config.verify == "estimate":
        sigs = np.concatenate(
            [np.empty((0, plan.config.num_perm), np.uint32)]
            + list(iter_signatures(texts, plan.config.minhash))
        )
        return tuple((got[i, 0], sigs[i]) for i in index)
    return tuple((got[i, 0], [texts[k] for k in i.tolist()]) for i in index)


class _Similarity:
    """The verified similarity of two documents of a resolve partition (shingle sets cached)."""

    def __init__(self, config: DedupConfig, docs: np.ndarray, payloads: list[Any]) -> None:
        self.config = config
        self.payload = dict(zip(docs.tolist(), payloads))
        self.sets: dict[int, frozenset[str]] = {}

    def _set(self, doc: int) -> frozenset[str]:
        if doc not in self.sets:
            self.sets[doc] = frozenset(shingle_set(self.payload[doc], self.config.shingle_words))
        return self.sets[doc]

    def __call__(self, j: int, i: int) -> float:
        if self.config.verify == "estimate":
            return float(np.mean(self.payload[j] == self.payload[i]))
        return jaccard(set(self._set(j)), set(self._set(i)))


def resolve_rule(
    members: np.ndarray, sim: Any, threshold: float
) -> tuple[dict[int, tuple[int, float]], dict[int, int]]:
    """The rule, lazily, on whole components given by memberships (bucket, doc, ...): in input
    order, each document is checked against the kept documents of its buckets in ascending
    order, up to the first match (as the local engine's LSH of kept documents does). Returns
    (removed doc -> (kept, similarity), verifications per document)."""
    members = members[np.lexsort((members[:, 0], members[:, 1]))]
    starts, _ = _groups(members[:, 1])
    ends = np.r_[starts[1:], len(members)].astype(np.int64)
    kept: dict[int, list[int]] = {}
    removed: dict[int, tuple[int, float]] = {}
    count: dict[int, int] = {}
    for s, e in zip(starts.tolist(), ends.tolist()):
        i = int(members[s, 1])
        mine = members[s:e, 0].tolist()
        candidates = sorted({j for b in mine for j in kept.get(b, ())})
        n = 0
        for j in candidates:
            n += 1
            value = sim(j, i)
            if value >= threshold:
                removed[i] = (j, value)
                break
        else:
            for b in mine:
                kept.setdefault(b, []).append(i)
        count[i] = n
    return removed, count


def resolve(plan: Plan, n_label: int, *parts: Any) -> tuple[Any, ...]:
    """Stage 6 on one partition of components: the rule (`resolve_rule`), then each exact copy
    takes its representative's fate. Returns (verifications the rule counts, P partitions by
    chunk modulo P of (removed rows (doc, kept, similarity bits), targets (kept docs)))."""
    chaos("resolve")
    members = np.concatenate([x[0] for x in parts[:n_label]])
    links = np.concatenate([x[1] for x in parts[:n_label]])
    docs = np.concatenate([x[0] for x in parts[n_label:]])
    payloads = [p for x in parts[n_label:] for p in x[1]]
    sim = _Similarity(plan.config, docs, payloads)
    removed, count = resolve_rule(members, sim, plan.config.threshold)
    for member, rep in links[:, :2].tolist():
        fate = removed.get(rep)
        count[member] = count.get(rep, 0) + (fate is None)  # what the rule verifies for a copy
        removed[member] = fate or (rep, 1.0)
    rows = np.asarray(
        [(d, k, np.float64(s).view(np.int64)) for d, (k, s) in removed.items()], dtype=np.int64
    ).reshape(-1, 3)
    P = plan.partitions
    out = split_rows(rows, chunk_of(rows[:, 0]) % P, P)
    targets = np.unique(rows[:, 1])
    tgt = split_rows(targets, chunk_of(targets) % P, P)
    return (sum(count.values()), *zip(out, tgt))


def split(chunks: list[int], *parts: Any) -> tuple[Any, ...]:
    """Stage 7 on one group of chunks: the resolve rows cut per chunk (one return each)."""
    rows = np.concatenate([x[0] for x in parts]) if parts else _E3
    targets = np.concatenate([x[1] for x in parts]) if parts else np.empty(0, np.int64)
    rc, tc = chunk_of(rows[:, 0]), chunk_of(targets)
    out = tuple((rows[rc == c], np.unique(targets[tc == c])) for c in chunks)
    return out if len(out) != 1 else out[0]


def write(spec: ChunkSpec, plan: Plan, cut: tuple[np.ndarray, np.ndarray]) -> tuple[Any, ...]:
    """Stage 8 on one chunk: (its kept lines as bytes, removed rows (doc, kept, similarity
    bits), (local index, line number as read, meta.id) of each document in a group)."""
    chaos("write")
    rows, targets = cut
    numbers, raw, _ = read_chunk(spec, plan.files)
    gone = set((rows[:, 0] & _MASK).tolist())
    data = b"".join(line + b"\n" for at, line in enumerate(raw) if at not in gone)
    path = Path(plan.files[spec.file])
    wanted = sorted(gone | set((targets & _MASK).tolist()))
    infos = [
        (at, numbers[at], parse_line(path, numbers[at], raw[at]).meta.get("id")) for at in wanted
    ]
    return data, rows, infos
