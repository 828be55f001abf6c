"""Every occurrence of many token patterns in training rows, in one vectorized pass.

`find_patterns(rows, patterns, end_row=...)` streams rows [0, end_row) a chunk at a time (as the
run's model saw them when `rows` is a run's view: transforms applied). Per chunk it extends a
polynomial hash of every window by one token per round (uint64 arithmetic, wrapping), so after
round L it holds the hash of every window of L tokens; at each length that some pattern has,
the window hashes are looked up among the patterns' hashes (`np.searchsorted`) and each hit is
verified token by token, so the result is exact whatever the hash collides on. The cost is
O(longest pattern x tokens) whatever the number of patterns.

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
_BASES = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9)


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


def _hash(pattern: np.ndarray, base: np.uint64) -> np.uint64:
    h = np.zeros(1, dtype=np.uint64)
    for t in pattern.astype(np.uint64):
        h = h * base + t
    return np.uint64(h[0])


@dataclass(frozen=True, kw_only=True)
class _Group:
    """The patterns of one length: their sorted hashes and tokens."""

    hashes: np.ndarray  # uint64 [m], sorted
    index: np.ndarray  # int64 [m]: pattern index of each sorted hash
    tokens: np.ndarray  # int64 [m, L]


def _groups(patterns: Sequence[np.ndarray], base: np.uint64) -> dict[int, _Group] | None:
    """Patterns grouped by length; None if two distinct patterns share a hash (try another base)."""
    groups: dict[int, _Group] = {}
    lengths = np.array([len(p) for p in patterns], dtype=np.int64)
    for length in np.unique(lengths).tolist():
        idx = np.flatnonzero(lengths == length)
        tokens = np.stack([np.asarray(patterns[int(i)], dtype=np.int64) for i in idx])
        hashes = np.array([_hash(t, base) for t in tokens], dtype=np.uint64)
        order = np.argsort(hashes, kind="stable")
        if np.unique(hashes).size < np.unique(tokens, axis=0).shape[0]:
            return None
        groups[int(length)] = _Group(hashes=hashes[order], index=idx[order], tokens=tokens[order])
    return groups


def _match(block: np.ndarray, h: np.ndarray, group: _Group, length: int) -> tuple[np.ndarray, ...]:
    """(pattern, row in block, offset) of the verified hits of one length's windows."""
    pos = np.searchsorted(group.hashes, h)
    pos[pos == group.hashes.size] = 0
    rows, cols = np.nonzero(group.hashes[pos] == h)
    # equal patterns (the same tokens under two indices) share a hash: expand to every one of them
    first = pos[rows, cols]
    last = np.searchsorted(group.hashes, h[rows, cols], side="right")
    reps = last - first
    rows, cols = np.repeat(rows, reps), np.repeat(cols, reps)
    cand = np.repeat(first - np.cumsum(np.r_[0, reps[:-1]]), reps) + np.arange(reps.sum())
    window = block[rows[:, None], cols[:, None] + np.arange(length)]
    ok = (window == group.tokens[cand]).all(axis=1)
    return group.index[cand[ok]], rows[ok], cols[ok]


def find_patterns(
    rows: Rows, patterns: Sequence[np.ndarray], *, end_row: int, start_row: int = 0
) -> Matches:
    """Every (pattern, row, offset) with `rows[row, offset:offset + len(pattern)] == pattern`,
    rows in [start_row, end_row)."""
    width = rows.seq_length + 1
    if any(len(p) == 0 for p in patterns):
        raise ValueError("patterns: an empty token pattern occurs everywhere")
    fitting = [p if len(p) <= width else np.zeros(0, dtype=np.int64) for p in patterns]
    live = [i for i, p in enumerate(fitting) if len(p)]
    out: list[tuple[np.ndarray, ...]] = []
    if live and end_row > start_row:
        base, groups = next(
            (np.uint64(b), g)
            for b in _BASES
            if (g := _groups([fitting[i] for i in live], np.uint64(b))) is not None
        )
        chunk = max(1, CHUNK_TOKENS // width)
        bar = tqdm(total=end_row - start_row, desc="scan", unit="row", disable=None, leave=False)
        for start in range(start_row, end_row, chunk):
            block = rows.rows(start, min(end_row, start + chunk)).astype(np.int64)
            for p, r, c in _scan_block(block, groups, base):
                out.append((np.asarray(live)[p], r + start, c))
            bar.update(block.shape[0])
        bar.close()
    if not out:
        empty = np.zeros(0, dtype=np.int64)
        return Matches(pattern=empty, row=empty, offset=empty)
    pattern, row, offset = (np.concatenate([o[i] for o in out]).astype(np.int64) for i in range(3))
    order = np.lexsort((pattern, offset, row))
    return Matches(pattern=pattern[order], row=row[order], offset=offset[order])


def _scan_block(
    block: np.ndarray, groups: dict[int, _Group], base: np.uint64
) -> list[tuple[np.ndarray, ...]]:
    """Rolling hash over the block's windows, matched at every length that has patterns."""
    width = block.shape[1]
    tokens = block.astype(np.uint64)
    h = np.zeros((block.shape[0], width), dtype=np.uint64)
    found = []
    for length in range(1, max(groups) + 1):
        n = width - length + 1
        h = h[:, :n] * base + tokens[:, length - 1 : length - 1 + n]  # uint64: wraps
        if length in groups:
            found.append(_match(block, h, groups[length], length))
    return found


def count_windows(rows: Rows, windows: np.ndarray, *, end_row: int) -> np.ndarray:
    """How often each window (a row of `windows` [n, L]) occurs in rows [0, end_row), at any
    offset (the natural duplication of a window in the trained rows)."""
    windows = np.asarray(windows, dtype=np.int64)
    matches = find_patterns(rows, list(windows), end_row=end_row)
    return matches.counts(len(windows))
