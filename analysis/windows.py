"""Every occurrence of many token patterns in training rows, in one vectorized pass.

`find_patterns(rows, patterns, end_row=...)` streams rows [0, end_row) a chunk at a time (as the
run's model saw them when `rows` is a run's view: transforms applied). A pattern is anchored by
its first `ANCHOR` tokens (all of them when shorter). Per chunk, a polynomial hash of every
window is extended by one token per round (uint64 arithmetic, wrapping) up to `ANCHOR` rounds;
at each anchor length a bit table indexed by the hash's top bits drops almost every window at
once, the rest are looked up among the anchors' sorted hashes (`np.searchsorted`), and every
candidate is verified token by token against each pattern with that anchor. The result is exact
whatever the hash collides on, and the cost is O(ANCHOR x tokens) whatever the number and the
length of the patterns.

An occurrence lies inside one row (rows are separate training samples; a pattern cut by a row's
end does not occur there), as in `dataloader_replay.find`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from analysis.sources import Rows

CHUNK_TOKENS = 1 << 22  # tokens hashed per chunk (a uint64 hash each: 32 MiB)
ANCHOR = 4  # tokens of a pattern hashed to find its candidates (all of a shorter pattern)
FILTER_BITS = 20  # top hash bits of the bit table that drops non-candidates
BASE = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the polynomial hash


@dataclass(frozen=True, kw_only=True)
class Matches:
    """Occurrences, sorted by (row, offset, pattern): pattern index, row, offset in the row."""

    pattern: np.ndarray  # int64 [n]
    row: np.ndarray  # int64 [n]
    offset: np.ndarray  # int64 [n]

    def counts(self, num_patterns: int) -> np.ndarray:
        """Occurrences per pattern."""
        return np.bincount(self.pattern, minlength=num_patterns).astype(np.int64)

    def first_row(self, num_patterns: int) -> np.ndarray:
        """The first row each pattern occurs in (-1 where it never does)."""
        first = np.full(num_patterns, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, self.pattern, self.row)
        first[first == np.iinfo(np.int64).max] = -1
        return first


def _hash(pattern: np.ndarray) -> np.uint64:
    h = np.zeros(1, dtype=np.uint64)
    for t in pattern.astype(np.uint64):
        h = h * BASE + t
    return np.uint64(h[0])


@dataclass(frozen=True, kw_only=True)
class _Anchors:
    """The patterns whose anchor has one length: anchor hashes (sorted) and a bit table."""

    hashes: np.ndarray  # uint64 [m], sorted
    index: np.ndarray  # int64 [m]: the pattern of each sorted hash
    table: np.ndarray  # bool [2 ** FILTER_BITS]: some anchor hash has these top bits


def _anchors(patterns: Sequence[np.ndarray], live: list[int]) -> dict[int, _Anchors]:
    """Live patterns grouped by anchor length (min(len, ANCHOR))."""
    length = {i: min(len(patterns[i]), ANCHOR) for i in live}
    groups = {}
    for a in sorted(set(length.values())):
        idx = np.array([i for i in live if length[i] == a], dtype=np.int64)
        hashes = np.array([_hash(np.asarray(patterns[i][:a])) for i in idx], dtype=np.uint64)
        order = np.argsort(hashes, kind="stable")
        table = np.zeros(1 << FILTER_BITS, dtype=bool)
        table[(hashes >> np.uint64(64 - FILTER_BITS)).astype(np.intp)] = True
        groups[a] = _Anchors(hashes=hashes[order], index=idx[order], table=table)
    return groups


def _candidates(h: np.ndarray, g: _Anchors) -> tuple[np.ndarray, ...]:
    """(pattern, row, col) of every window whose anchor hash equals some pattern's."""
    rows, cols = np.nonzero(g.table[(h >> np.uint64(64 - FILTER_BITS)).astype(np.intp)])
    hv = h[rows, cols]
    lo = np.searchsorted(g.hashes, hv, side="left")
    reps = np.searchsorted(g.hashes, hv, side="right") - lo  # patterns sharing the anchor
    rows, cols = np.repeat(rows, reps), np.repeat(cols, reps)
    k = np.repeat(lo - np.cumsum(np.r_[0, reps[:-1]]), reps) + np.arange(reps.sum())
    return g.index[k], rows, cols


def _verify(
    block: np.ndarray, cand: tuple[np.ndarray, ...], padded: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, ...]:
    """The candidates whose row holds the whole pattern at their offset."""
    p, r, c = cand
    fits = c + lengths[p] <= block.shape[1]
    p, r, c = p[fits], r[fits], c[fits]
    ok = np.zeros(p.size, dtype=bool)
    for length in np.unique(lengths[p]).tolist():
        sel = np.flatnonzero(lengths[p] == length)
        window = block[r[sel, None], c[sel, None] + np.arange(length)]
        ok[sel] = (window == padded[p[sel], :length]).all(axis=1)
    return p[ok], r[ok], c[ok]


def _scan_block(
    block: np.ndarray, anchors: dict[int, _Anchors], padded: np.ndarray, lengths: np.ndarray
) -> list[tuple[np.ndarray, ...]]:
    """Rolling anchor hashes over the block's windows, candidates verified in full."""
    width = block.shape[1]
    tokens = block.astype(np.uint64)
    h = np.zeros((block.shape[0], width), dtype=np.uint64)
    found = []
    for a in range(1, max(anchors) + 1):
        n = width - a + 1
        h = h[:, :n] * BASE + tokens[:, a - 1 : a - 1 + n]  # uint64: wraps
        if a in anchors:
            found.append(_verify(block, _candidates(h, anchors[a]), padded, lengths))
    return found


def find_patterns(
    rows: Rows, patterns: Sequence[np.ndarray], *, end_row: int, start_row: int = 0
) -> Matches:
    """Every (pattern, row, offset) with `rows[row, offset:offset + len(pattern)] == pattern`,
    rows in [start_row, end_row)."""
    width = rows.seq_length + 1
    if any(len(p) == 0 for p in patterns):
        raise ValueError("patterns: an empty token pattern occurs everywhere")
    live = [i for i, p in enumerate(patterns) if len(p) <= width]  # longer: never in a row
    out: list[tuple[np.ndarray, ...]] = []
    if live and end_row > start_row:
        lengths = np.array([len(p) for p in patterns], dtype=np.int64)
        padded = np.full((len(patterns), width), -1, dtype=np.int64)
        for i in live:
            padded[i, : lengths[i]] = patterns[i]
        anchors = _anchors(patterns, live)
        chunk = max(1, CHUNK_TOKENS // width)
        bar = tqdm(total=end_row - start_row, desc="scan", unit="row", disable=None, leave=False)
        for start in range(start_row, end_row, chunk):
            block = rows.rows(start, min(end_row, start + chunk)).astype(np.int64)
            for p, r, c in _scan_block(block, anchors, padded, lengths):
                out.append((p, r + start, c))
            bar.update(block.shape[0])
        bar.close()
    if not out:
        empty = np.zeros(0, dtype=np.int64)
        return Matches(pattern=empty, row=empty, offset=empty)
    pattern, row, offset = (np.concatenate([o[i] for o in out]).astype(np.int64) for i in range(3))
    order = np.lexsort((pattern, offset, row))
    return Matches(pattern=pattern[order], row=row[order], offset=offset[order])


def count_windows(rows: Rows, windows: np.ndarray, *, end_row: int) -> np.ndarray:
    """How often each window (a row of `windows` [n, L]) occurs in rows [0, end_row), at any
    offset (the natural duplication of a window in the trained rows)."""
    windows = np.asarray(windows, dtype=np.int64)
    matches = find_patterns(rows, list(windows), end_row=end_row)
    return matches.counts(len(windows))
