"""Ledger speed: every planted item found in one hashing pass (`analysis.windows.find_patterns`)
vs one search per item (`dataloader_replay.find.find_tokens`, a vectorized scan of the rows for
each item, as a per-item ledger would be built).

Writes a train file of random rows (uint16, rows of 257 tokens) with ITEMS planted patterns of
1 to 32 tokens (canary-, term- and passage-like lengths), each copied into a few rows, then
finds every occurrence both ways, checks that they agree, and prints seconds and the ratio.
Timings depend on the machine and its load; nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import print_machine

from analysis.windows import find_patterns
from dataloader_replay.find import find_tokens
from dataloader_replay.replay import TrainData

WIDTH, VOCAB = 257, 50_000


def write_rows(prefix: Path, rows: int, patterns: list[np.ndarray], seed: int) -> None:
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, VOCAB, (rows, WIDTH), dtype=np.uint16)
    for p in patterns:
        for r in rng.integers(0, rows, 4):
            off = int(rng.integers(0, WIDTH - len(p) + 1))
            tokens[r, off : off + len(p)] = p
    builder = IndexedDatasetBuilder(str(prefix) + ".bin", dtype=np.uint16)
    for row in tokens:
        builder.add_document(row, [row.size])
    builder.finalize(str(prefix) + ".idx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=32_768, help="rows (default 32768: 8.4M tokens)"
    )
    parser.add_argument("--items", type=int, default=400)
    args = parser.parse_args()
    print_machine()
    rng = np.random.default_rng(0)
    lengths = rng.choice([1, 2, 3, 8, 12, 16, 32], size=args.items)
    patterns = [rng.integers(0, VOCAB, n).astype(np.int64) for n in lengths]
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "train"
        write_rows(prefix, args.rows, patterns, seed=1)
        data = TrainData.open(prefix, batch_size=1024)
        t0 = time.perf_counter()
        m = find_patterns(data, patterns, end_row=data.num_rows)
        one_pass = time.perf_counter() - t0
        t0 = time.perf_counter()
        per_item = set()
        for i, p in enumerate(patterns):
            per_item |= {(i, o.row, o.offset) for o in find_tokens(data, p.tolist())}
        each = time.perf_counter() - t0
    got = set(zip(m.pattern.tolist(), m.row.tolist(), m.offset.tolist()))
    assert got == per_item, "the two searches disagree"
    tokens = args.rows * WIDTH
    print(
        f"{args.items} items (1-32 tokens) in {args.rows} rows x {WIDTH} ({tokens / 1e6:.1f}M tokens)"
    )
    print(f"  one hashing pass (analysis.windows): {one_pass:7.2f} s, {len(got)} occurrences")
    print(f"  one find_tokens scan per item:       {each:7.2f} s")
    print(f"  ratio: {each / one_pass:.1f}x faster in one pass")


if __name__ == "__main__":
    main()
