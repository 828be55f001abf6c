"""Which rows and which checkpoints to score (pure functions of their arguments)."""

from __future__ import annotations

import numpy as np

from suite_core import DataError


def stratified_rows(num_rows: int, n: int | None, *, seed: int = 0) -> np.ndarray:
    """`n` distinct row indices, sorted, one drawn with `seed` from each of `n` equal blocks of
    training order (every row when `n` is None or >= num_rows)."""
    if n is not None and n < 1:
        raise DataError(f"--rows: must be a positive integer or 'all', got {n}")
    if n is None or n >= num_rows:
        return np.arange(num_rows, dtype=np.int64)
    edges = np.floor(np.linspace(0, num_rows, n + 1)).astype(np.int64)
    rng = np.random.default_rng(seed)
    return (edges[:-1] + rng.integers(0, edges[1:] - edges[:-1])).astype(np.int64)


def parse_rows(text: str) -> int | None:
    """`--rows N|all` -> N or None."""
    if text == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        raise DataError(f"--rows: expected a positive integer or 'all', got {text!r}") from None
    if n < 1:
        raise DataError(f"--rows: must be a positive integer or 'all', got {n}")
    return n


def shard(n: int, rank: int, world: int) -> slice:
    """Contiguous share of `n` items for `rank` of `world` (the first n % world get one more)."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))
