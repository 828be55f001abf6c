"""Replay speed: `TrainData.batch(step)` vs megatron-core's row reader vs a plain memory copy.

Writes a Pythia-sized train file (rows of 2048 + 1 tokens, 1024 rows per step, uint16) and reads
random steps three ways:
  - TrainData.batch: one contiguous slice of the memory-mapped .bin, copied out by all cores;
  - row by row through megatron-core's IndexedDataset (`ds[i]` per row, as Pythia's
    batch_viewer does), stacked into one array;
  - np.copy of the same batch's bytes from an in-memory array as large as the file (the floor:
    a plain memory copy from RAM at the same random steps), and, for reference, np.copy of one
    batch-sized buffer that stays hot in the CPU cache (faster than any read from RAM).
Prints ms/batch and the ratios (targets: >= 10x the row reader, within 2x of memcpy).
Timings depend on the machine and its load; nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from machine import print_machine

from dataloader_replay.replay import PYTHIA_BATCH_SIZE, TrainData

PYTHIA_SEQ_LENGTH = 2048
PYTHIA_VOCAB = 50_277


def write_train(prefix: Path, steps: int, seed: int = 0) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder
    builder = IndexedDatasetBuilder(str(prefix) + ".bin", dtype=np.uint16)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        batch = rng.integers(
            0, PYTHIA_VOCAB, (PYTHIA_BATCH_SIZE, PYTHIA_SEQ_LENGTH + 1), dtype=np.uint16
        )
        for row in batch:
            builder.add_document(row, [row.size])
    builder.finalize(str(prefix) + ".idx")


def time_per_call(fn, steps: list[int]) -> float:  # type: ignore[no-untyped-def]
    """Median ms per call (robust to a loaded machine)."""
    fn(steps[0])  # warm up
    times = []
    for s in steps:
        start = time.perf_counter()
        fn(s)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (4 steps, 8 reads)")
    args = parser.parse_args()
    print_machine()
    steps, reads = (4, 8) if args.quick else (20, 50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.datasets.indexed_dataset import IndexedDataset
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "document"
        write_train(prefix, steps)
        td = TrainData.open(prefix)
        ds = IndexedDataset(str(prefix))
        B = td.batch_size
        order = np.random.default_rng(1).integers(0, steps, reads).tolist()
        in_ram = np.array(td.rows(0, steps * B))  # the file's bytes, in anonymous memory
        hot = in_ram[:B].copy()

        def rows(s: int) -> np.ndarray:
            return np.stack([ds[i] for i in range(s * B, (s + 1) * B)])  # noqa: F821 (ds lives until timed)

        assert np.array_equal(rows(order[0]), td.batch(order[0]))
        ours = time_per_call(td.batch, order)
        megatron = time_per_call(rows, order)
        memcpy = time_per_call(lambda s: np.copy(in_ram[s * B : (s + 1) * B]), order)
        cached = time_per_call(lambda s: np.copy(hot), order)
        del ds
    mb = B * (PYTHIA_SEQ_LENGTH + 1) * 2 / 2**20
    print(
        f"batch {B} x {PYTHIA_SEQ_LENGTH + 1} uint16 ({mb:.1f} MiB), {steps} steps on disk, "
        f"{reads} random reads"
    )
    print(f"TrainData.batch          {ours:8.2f} ms/batch")
    print(
        f"IndexedDataset row by row {megatron:7.2f} ms/batch   ({megatron / ours:.1f}x slower; "
        "target >= 10x)"
    )
    print(
        f"np.copy from RAM         {memcpy:8.2f} ms/batch   (TrainData is {ours / memcpy:.2f}x "
        "memcpy; target <= 2x)"
    )
    print(f"np.copy, cache-hot       {cached:8.2f} ms/batch   (reference: one buffer reused)")
    print(
        f"row reader / single-thread memcpy from RAM: {megatron / memcpy:.1f}x "
        "(what one copying thread could reach at best)"
    )


if __name__ == "__main__":
    main()
