"""One pass over the training rows gives the counts of every term at every requested step.

The rows [0, max(step) * B) are cut into work units that never cross a step boundary; each
unit's counts go to its step bin, and the counts at step s are the sum of the bins before it
(`counting.cumulate`). Units are shared among `processes` worker processes, each opening the
rows itself; integer sums make the merged counts equal to one process's, in any order.

Engines (see bench/bench_count.py for the measurement behind the default):
- "numpy": `counting.Matcher`, streaming, constant memory, any rows (a run's transforms too);
- "tokengrams": EleutherAI's suffix-array index over the same rows; `positions()` of each
  term, filtered to starts whose term fits in the row, binned by row // B.
"""

from __future__ import annotations

import logging
import multiprocessing
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from analysis.sources import Rows, data_fingerprint, open_rows
from analysis.term_frequency.counting import Matcher, cumulate, pair_counts, work_units
from analysis.term_frequency.terms import Term
from suite_core import DataError

log = logging.getLogger(__name__)

ENGINES = ("numpy", "tokengrams")
# workers inherit the parent's imports (megatron-core takes seconds to import); they only run
# numpy, so forking is safe where it exists
_START_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


@dataclass(frozen=True, kw_only=True)
class CountConfig:
    """What to count and how."""

    steps: tuple[int, ...]  # sorted, distinct
    pairs: bool = False
    window: int = 16
    processes: int = 1
    engine: str = "numpy"
    batch_size: int | None = None  # bare prefix only; default 1024 (Pythia)
    chunk_tokens: int = 1 << 22  # tokens per work unit


@dataclass(kw_only=True)
class CountResult:
    """Counts at each step [S, T] (and pairs [S, T, T]) of terms in rows [0, s * B)."""

    terms: list[Term]
    steps: list[int]
    counts: np.ndarray
    pairs: np.ndarray | None
    source: str
    batch_size: int
    seq_length: int
    fingerprint: str
    tokens: int  # tokens scanned
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)

    def records(self) -> Iterator[dict[str, Any]]:
        """One JSON-ready object per term and step: {"term", "tokens", "step", "count"}."""
        for t, term in enumerate(self.terms):
            for s, step in enumerate(self.steps):
                yield {
                    "term": term.name,
                    "tokens": list(term.tokens),
                    "step": step,
                    "count": int(self.counts[s, t]),
                }

    def pair_records(self) -> Iterator[dict[str, Any]]:
        """{"terms": [a, b], "tokens": [[...], [...]], "step", "count"} for a <= b."""
        if self.pairs is None:
            return
        for a in range(len(self.terms)):
            for b in range(a, len(self.terms)):
                for s, step in enumerate(self.steps):
                    yield {
                        "terms": [self.terms[a].name, self.terms[b].name],
                        "tokens": [list(self.terms[a].tokens), list(self.terms[b].tokens)],
                        "step": step,
                        "count": int(self.pairs[s, a, b]),
                    }

    def frame(self) -> Any:
        """pandas DataFrame: term, tokens, step, count."""
        import pandas as pd

        return pd.DataFrame.from_records(
            [{**r, "tokens": ",".join(map(str, r["tokens"]))} for r in self.records()]
        )


def check_steps(rows: Rows, steps: Sequence[int]) -> None:
    """ValueError if a step needs rows past the data's end."""
    if not steps:
        raise DataError("--steps: no steps given")
    rows.check_step(max(steps), "steps", seen=True)


def count_terms(source: str | Path, terms: Sequence[Term], config: CountConfig) -> CountResult:
    """Counts of `terms` at `config.steps` in the rows of a RUN, a prepared DIR or a prefix."""
    if config.engine not in ENGINES:
        raise DataError(f"--engine: unknown {config.engine!r} (choose from {', '.join(ENGINES)})")
    if config.processes < 1:
        raise DataError(f"--processes: must be >= 1, got {config.processes}")
    if config.window < 1:
        raise DataError(f"--window: must be >= 1, got {config.window}")
    rows = open_rows(source, batch_size=config.batch_size)
    steps = list(config.steps)
    check_steps(rows, steps)
    matcher = Matcher.build(terms)
    width = rows.seq_length + 1
    chunk_rows = max(1, config.chunk_tokens // width)
    units = work_units(steps, rows.batch_size, chunk_rows=chunk_rows)
    t0 = time.perf_counter()
    if config.engine == "tokengrams":
        per_bin, pairs_bin = _tokengrams(rows, matcher, steps, config)
    else:
        per_bin, pairs_bin = _numpy(str(source), matcher, units, len(steps), width, config)
    seconds = time.perf_counter() - t0
    scanned = max(steps) * rows.batch_size * width
    log.info(
        "%s: %d terms at %d steps over %d tokens in %.2f s (%.3g tokens/s)",
        source,
        len(terms),
        len(steps),
        scanned,
        seconds,
        scanned / max(seconds, 1e-9),
    )
    return CountResult(
        terms=list(terms),
        steps=steps,
        counts=cumulate(per_bin),
        pairs=None if pairs_bin is None else cumulate(pairs_bin),
        source=str(source),
        batch_size=rows.batch_size,
        seq_length=rows.seq_length,
        fingerprint=data_fingerprint(rows),
        tokens=scanned,
        seconds=seconds,
        config={k: v for k, v in asdict(config).items() if k != "chunk_tokens"},
    )


# -- numpy engine: worker processes over work units ------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(
    source: str, batch_size: int | None, matcher: Matcher, pairs: bool, window: int
) -> None:
    _WORKER.update(
        rows=open_rows(source, batch_size=batch_size), matcher=matcher, pairs=pairs, window=window
    )


def _count_units(units: list[tuple[int, int, int]]) -> tuple[list[tuple[int, Any, Any]], int]:
    """Counts per unit: [(bin, term counts [T], pair counts [T, T] or None)], tokens read."""
    rows, matcher = _WORKER["rows"], _WORKER["matcher"]
    out, tokens = [], 0
    for start, end, b in units:
        chunk = rows.rows(start, end)
        pairs = None
        if _WORKER["pairs"]:
            positions = matcher.find(chunk)
            counts = np.array([len(p) for p in positions], dtype=np.int64)
            pairs = pair_counts(positions, width=chunk.shape[1], window=_WORKER["window"])
        else:
            counts = matcher.count(chunk)
        out.append((b, counts, pairs))
        tokens += chunk.size
    return out, tokens


def _numpy(
    source: str,
    matcher: Matcher,
    units: list[tuple[int, int, int]],
    n_steps: int,
    width: int,
    config: CountConfig,
) -> tuple[np.ndarray, np.ndarray | None]:
    n_terms = len(matcher.terms)
    per_bin = np.zeros((n_steps, n_terms), dtype=np.int64)
    pairs_bin = np.zeros((n_steps, n_terms, n_terms), dtype=np.int64) if config.pairs else None
    total = sum(end - start for start, end, _ in units) * width
    tasks = _tasks(units, config.processes)
    init = (source, config.batch_size, matcher, config.pairs, config.window)
    bar = tqdm(total=total, unit="tok", unit_scale=True, desc="count", disable=None)
    with bar:
        if config.processes == 1:
            _init_worker(*init)
            results: Iterator[Any] = map(_count_units, tasks)
            yield_from = results
        else:
            pool = multiprocessing.get_context(_START_METHOD).Pool(
                config.processes, initializer=_init_worker, initargs=init
            )
            yield_from = pool.imap_unordered(_count_units, tasks)
        try:
            for done, tokens in yield_from:
                for b, counts, pairs in done:
                    per_bin[b] += counts
                    if pairs_bin is not None:
                        pairs_bin[b] += pairs
                bar.update(tokens)
        finally:
            if config.processes > 1:
                pool.close()
                pool.join()
            _WORKER.clear()
    return per_bin, pairs_bin


def _tasks(units: list[tuple[int, int, int]], processes: int) -> list[list[tuple[int, int, int]]]:
    """Units grouped into tasks: a few per process, so that the bar moves and work balances."""
    per_task = max(1, len(units) // (4 * processes)) if processes > 1 else 1
    return [units[i : i + per_task] for i in range(0, len(units), per_task)]


# -- tokengrams engine --------------------------------------------------------------------------


def _tokengrams(
    rows: Rows, matcher: Matcher, steps: list[int], config: CountConfig
) -> tuple[np.ndarray, np.ndarray | None]:
    from tokengrams import InMemoryIndex

    width = rows.seq_length + 1
    n_rows = max(steps) * rows.batch_size
    bounds = np.array([s * rows.batch_size for s in steps])
    with tempfile.TemporaryDirectory(prefix="count-tokengrams-") as tmp:
        token_file = Path(tmp) / "tokens.bin"
        vocab = write_tokens(rows, n_rows, token_file)
        index = InMemoryIndex.from_token_file(str(token_file), None, vocab)
    positions = []
    for term in matcher.terms:
        pos = np.sort(np.asarray(index.positions(list(term.tokens)), dtype=np.int64))
        positions.append(pos[(pos % width) + len(term.tokens) <= width])
    n_terms = len(positions)
    bins = [np.searchsorted(bounds, p // width, side="right") for p in positions]
    per_bin = np.stack([np.bincount(b, minlength=len(steps))[: len(steps)] for b in bins], axis=1)
    if not config.pairs:
        return per_bin.astype(np.int64), None
    pairs_bin = np.zeros((len(steps), n_terms, n_terms), dtype=np.int64)
    for i in range(len(steps)):
        pairs_bin[i] = pair_counts(
            [p[b == i] for p, b in zip(positions, bins)], width=width, window=config.window
        )
    return per_bin.astype(np.int64), pairs_bin


def write_tokens(rows: Rows, n_rows: int, path: Path, *, chunk_rows: int = 1 << 14) -> int:
    """Rows [0, n_rows) as one little-endian token stream (u16, or u32 for wide ids); the vocab
    size tokengrams needs for that width."""
    wide = np.dtype(rows.rows(0, min(1, n_rows)).dtype).itemsize > 2
    dtype, vocab = ("<u4", 1 << 32) if wide else ("<u2", 1 << 16)
    with open(path, "wb") as fh:
        fh.writelines(
            np.ascontiguousarray(
                rows.rows(start, min(n_rows, start + chunk_rows)), dtype=dtype
            ).tobytes()
            for start in range(0, n_rows, chunk_rows)
        )
    return vocab
