"""analysis/windows.py: the one-pass window hashing against planted duplicates and a naive scan."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from analysis.windows import count_windows, find_patterns

WIDTH, VOCAB = 33, 50  # a small vocabulary: short patterns also occur by chance


@dataclass
class ArrayRows:
    """The `Rows` protocol over an in-memory [rows, WIDTH] array."""

    tokens: np.ndarray
    batch_size: int = 8

    @property
    def seq_length(self) -> int:
        return self.tokens.shape[1] - 1

    @property
    def num_rows(self) -> int:
        return self.tokens.shape[0]

    def rows(self, start: int, end: int) -> np.ndarray:
        return self.tokens[start:end].copy()


def planted(seed: int = 0) -> tuple[ArrayRows, np.ndarray, list[int]]:
    """300 random rows with window j (16 tokens, ids >= VOCAB: never by chance) copied
    `counts[j]` times at random rows and offsets (never overlapping)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, VOCAB, size=(300, WIDTH)).astype(np.uint16)
    counts = [0, 1, 2, 3, 5, 8, 13]
    windows = rng.integers(VOCAB, 2 * VOCAB, size=(len(counts), 16))
    slots = rng.permutation(300)  # one window per row: copies never overlap
    used = 0
    for j, c in enumerate(counts):
        for r in slots[used : used + c]:
            off = int(rng.integers(0, WIDTH - 16 + 1))
            tokens[r, off : off + 16] = windows[j]
        used += c
    return ArrayRows(tokens), windows, counts


def naive(rows: np.ndarray, patterns: list[list[int]]) -> set[tuple[int, int, int]]:
    found = set()
    for r, row in enumerate(rows.tolist()):
        for p, pat in enumerate(patterns):
            for off in range(len(row) - len(pat) + 1):
                if row[off : off + len(pat)] == pat:
                    found.add((p, r, off))
    return found


def test_counts_equal_the_planted_duplicates() -> None:
    rows, windows, counts = planted()
    assert count_windows(rows, windows, end_row=rows.num_rows).tolist() == counts


def test_counts_only_rows_before_end_row() -> None:
    rows, windows, _ = planted()
    expected = [
        sum(1 for p, r, _ in naive(rows.tokens[:100], [w.tolist()]) if p == 0) for w in windows
    ]
    assert count_windows(rows, windows, end_row=100).tolist() == expected


def test_mixed_lengths_and_repeated_patterns_match_a_naive_scan() -> None:
    rows, windows, _ = planted(1)
    rng = np.random.default_rng(2)
    patterns = [
        rows.tokens[5, 3:4],
        rows.tokens[7, 0:2],
        rows.tokens[9, 10:13],
    ]  # short: by chance too
    patterns += [windows[4], windows[4][:9], rng.integers(0, VOCAB, 3), rows.tokens[7, 0:2]]
    patterns += [np.arange(WIDTH + 1) % VOCAB]  # longer than a row: never
    m = find_patterns(rows, [np.asarray(p) for p in patterns], end_row=rows.num_rows)
    got = set(zip(m.pattern.tolist(), m.row.tolist(), m.offset.tolist()))
    assert got == naive(rows.tokens, [list(map(int, p)) for p in patterns])
    assert len(got) == len(m.row) > 50
    order = list(zip(m.row.tolist(), m.offset.tolist(), m.pattern.tolist()))
    assert order == sorted(order)
    first = m.first_row(len(patterns))
    assert first[-1] == -1 and first[0] == min(r for p, r, _ in got if p == 0)


def test_chunked_scan_gives_the_same_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    rows, windows, counts = planted(3)
    monkeypatch.setattr("analysis.windows.CHUNK_TOKENS", WIDTH * 7)  # 7 rows a chunk
    assert count_windows(rows, windows, end_row=rows.num_rows).tolist() == counts


def test_empty_pattern_is_refused() -> None:
    rows, _, _ = planted()
    with pytest.raises(ValueError, match="empty token pattern"):
        find_patterns(rows, [np.zeros(0, dtype=np.int64)], end_row=10)
