"""Exact term counts in training rows: the pure core (numpy, no I/O).

An occurrence of a term is a start position inside one row where the row's tokens equal the
term's tokens; a term never spans two rows (each row is a separate training sample, and the
one-token overlap between consecutive samples is counted in both rows, as both were trained).

`Matcher.find(chunk)` returns, per term, the flat positions of its occurrences in a chunk of
rows [n, W]: one table look-up over the chunk finds candidate starts (tokens that begin some
term), then the remaining tokens of each term are compared at those candidates only. The cost is
one pass over the tokens plus work proportional to the candidates, whatever the number of terms.

Pairs: two occurrences (of the same or different terms) in one row whose start positions differ
by at most `window` tokens make one co-occurrence of their terms; each unordered pair of
occurrences counts once, stored at [min(term), max(term)].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis.term_frequency.terms import Term
from suite_core import DataError


@dataclass(frozen=True, kw_only=True)
class Matcher:
    """Terms compiled into a first-token look-up table."""

    terms: tuple[Term, ...]
    lut: np.ndarray  # token -> 1 + group of terms starting with it (0: starts none)
    groups: tuple[tuple[int, ...], ...]  # group -> indices of its terms

    @classmethod
    def build(cls, terms: Sequence[Term], *, lut_size: int = 1 << 16) -> Matcher:
        if not terms:
            raise DataError("terms: nothing to count (give --tokens, --text or --terms-file)")
        size = max(lut_size, 2 + max(t for term in terms for t in term.tokens))
        firsts = sorted({term.tokens[0] for term in terms})
        # uint16 group ids when they fit: a cheaper gather, and numpy's stable argsort of 16-bit
        # integers is a radix sort
        dtype = np.uint16 if len(firsts) < (1 << 16) else np.int32
        lut = np.zeros(size, dtype=dtype)
        lut[firsts] = np.arange(1, len(firsts) + 1)
        groups = tuple(
            tuple(i for i, term in enumerate(terms) if term.tokens[0] == first) for first in firsts
        )
        return cls(terms=tuple(terms), lut=lut, groups=groups)

    def _candidates(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(flat tokens, flat positions starting some term, their group + 1)."""
        flat = chunk.reshape(-1)
        # uint16 tokens index the table directly; wider ids past its end start no term
        index = flat if flat.dtype.itemsize <= 2 else np.minimum(flat, len(self.lut) - 1)
        hits = self.lut[index]
        cand = np.flatnonzero(hits != 0)  # a bool mask: faster than nonzero on integers
        return flat, cand, hits[cand]

    def _complete(
        self, flat: np.ndarray, starts: np.ndarray, tokens: tuple[int, ...], width: int
    ) -> np.ndarray:
        """The starts (of a term's first token) where the whole term follows inside the row."""
        ok = (starts % width) + len(tokens) <= width
        last = flat.size - 1
        for j, tok in enumerate(tokens[1:], start=1):
            ok &= flat[np.minimum(starts + j, last)] == tok
        return starts[ok]

    def count(self, chunk: np.ndarray) -> np.ndarray:
        """Occurrences of each term in rows `chunk` [n, W], int64 [T] (no positions kept)."""
        flat, cand, group = self._candidates(chunk)
        per_group = np.bincount(group, minlength=len(self.groups) + 1)
        out = np.zeros(len(self.terms), dtype=np.int64)
        for g, members in enumerate(self.groups):
            starts = None
            for i in members:
                tokens = self.terms[i].tokens
                if len(tokens) == 1:
                    out[i] = per_group[g + 1]
                    continue
                if starts is None:
                    starts = cand[group == g + 1].astype(np.int64)
                out[i] = len(self._complete(flat, starts, tokens, chunk.shape[1]))
        return out

    def find(self, chunk: np.ndarray) -> list[np.ndarray]:
        """Flat positions (int64, ascending) of each term's occurrences in rows `chunk` [n, W]."""
        width = chunk.shape[1]
        flat, cand, group = self._candidates(chunk)
        order = np.argsort(group, kind="stable")
        cand, group = cand[order], group[order]
        cuts = np.searchsorted(group, np.arange(1, len(self.groups) + 2, dtype=group.dtype))
        out: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(self.terms)
        for g, members in enumerate(self.groups):
            starts = cand[cuts[g] : cuts[g + 1]].astype(np.int64)
            for i in members:
                tokens = self.terms[i].tokens
                out[i] = starts if len(tokens) == 1 else self._complete(flat, starts, tokens, width)
        return out


def term_counts(positions: Sequence[np.ndarray]) -> np.ndarray:
    """Occurrences per term, int64 [T]."""
    return np.array([len(p) for p in positions], dtype=np.int64)


def pair_counts(positions: Sequence[np.ndarray], *, width: int, window: int) -> np.ndarray:
    """Co-occurrences within `window` tokens in one row, int64 [T, T] (upper triangle)."""
    if window < 1:
        raise DataError(f"--window: must be >= 1, got {window}")
    n_terms = len(positions)
    out = np.zeros((n_terms, n_terms), dtype=np.int64)
    sizes = [len(p) for p in positions]
    if sum(sizes) < 2:
        return out
    key = np.concatenate([np.asarray(p, dtype=np.int64) for p in positions])
    term = np.repeat(np.arange(n_terms, dtype=np.int64), sizes)
    order = np.argsort(key, kind="stable")
    key, term = key[order], term[order]
    row_end = (key // width + 1) * width
    hi = np.minimum(
        np.searchsorted(key, key + window, side="right"), np.searchsorted(key, row_end, side="left")
    )
    idx = np.arange(len(key))
    partners = hi - idx - 1
    total = int(partners.sum())
    if total == 0:
        return out
    first = np.repeat(idx, partners)
    offset = np.arange(total) - np.repeat(np.cumsum(partners) - partners, partners)
    second = first + 1 + offset
    a, b = term[first], term[second]
    lo, hi_t = np.minimum(a, b), np.maximum(a, b)
    out += np.bincount(lo * n_terms + hi_t, minlength=n_terms * n_terms).reshape(n_terms, n_terms)
    return out


def step_bounds(steps: Sequence[int], batch_size: int) -> list[int]:
    """Row boundaries s * B of sorted steps: the count at step s covers rows [0, s * B)."""
    return [s * batch_size for s in steps]


def work_units(
    steps: Sequence[int], batch_size: int, *, chunk_rows: int
) -> list[tuple[int, int, int]]:
    """(start, end, bin) row ranges covering [0, max(step) * B): bin i holds the rows between
    the boundaries of steps i-1 and i, no range crosses a boundary, none exceeds chunk_rows."""
    units: list[tuple[int, int, int]] = []
    lo = 0
    for i, bound in enumerate(step_bounds(steps, batch_size)):
        for start in range(lo, bound, chunk_rows):
            units.append((start, min(bound, start + chunk_rows), i))
        lo = max(lo, bound)
    return units


def cumulate(per_bin: np.ndarray) -> np.ndarray:
    """Counts per bin [m, ...] -> counts at each step (rows before it) [m, ...]."""
    return np.cumsum(per_bin, axis=0)
