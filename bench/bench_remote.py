"""Pythia's rows three ways: shards in place, remote by range request, the merged file.

Writes a Pythia-shaped train file (steps of 1024 rows x 2049 uint16 tokens), cuts it into
EleutherAI's layout (`document.idx` + `document-000KK-of-000NN.bin`, shards of an odd byte size
so that batches and tokens straddle shard boundaries), serves the shards on loopback in the
hub's URL layout (tests/hub_server.py), and reads random steps:
  - merged:   `TrainData.batch` on the memory-mapped merged file (the reference);
  - shards:   `open_source(FOLDER).batch`, the shards read in place (target within 1.2x);
  - remote:   `open_source("hf://datasets/...").batch` against the loopback server with an
              empty range cache (every step cold): bytes transferred per step / batch bytes
              (target <= 1.05 plus the idx reads: 12 bytes per row), and ms per batch; then
              the same steps again, served from the on-disk range cache.
Every batch is checked equal to the merged file's. Timings depend on the machine and its load;
nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from machine import print_machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataloader_replay.replay import PYTHIA_BATCH_SIZE, TrainData
from dataloader_replay.sources import open_source
from tests.hub_server import HubServer, publish

ROW = 2049
VOCAB = 50_277
COMMIT = "b" * 40


def write_train(prefix: Path, steps: int) -> None:
    """Rows through megatron-core's builder, one batch per `add_document` call."""
    from dataloader_replay.indexed import megatron_indexed

    builder = megatron_indexed().IndexedDatasetBuilder(f"{prefix}.bin", dtype=np.uint16)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        batch = rng.integers(0, VOCAB, (PYTHIA_BATCH_SIZE, ROW), dtype=np.uint16)
        builder.add_document(batch.reshape(-1), [ROW] * PYTHIA_BATCH_SIZE)
    builder.finalize(f"{prefix}.idx")


def cut(prefix: Path, folder: Path, shard_bytes: int) -> None:
    folder.mkdir()
    total = os.path.getsize(f"{prefix}.bin")
    last = (total - 1) // shard_bytes
    with open(f"{prefix}.bin", "rb") as src:
        for k in range(last + 1):
            (folder / f"document-{k:05d}-of-{last:05d}.bin").write_bytes(src.read(shard_bytes))
    (folder / "document.idx").write_bytes(Path(f"{prefix}.idx").read_bytes())


def median_ms(fn: Callable[[int], np.ndarray], steps: list[int]) -> float:
    times = []
    for s in steps:
        t = time.perf_counter()
        fn(s)
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


def interleaved_ms(
    fns: list[Callable[[int], np.ndarray]], steps: list[int], rounds: int
) -> list[float]:
    """Median ms per call of each reader, the readers alternating call by call (a loaded
    machine's slow moments then fall on all of them alike)."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for s in steps:
            for fn, out in zip(fns, times):
                t = time.perf_counter()
                fn(s)
                out.append(time.perf_counter() - t)
    return [float(np.median(t)) * 1e3 for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 steps on disk, 6 reads")
    args = parser.parse_args()
    print_machine()
    steps, reads = (8, 6) if args.quick else (24, 20)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_train(root / "train", steps)
        cut(root / "train", root / "shards", shard_bytes=10_000_019)
        files = {p.name: p for p in (root / "shards").iterdir()}
        publish(root / "hub", "datasets", "bench/pythia-shaped", files, commit=COMMIT)
        merged = TrainData.open(root / "train")
        sharded = open_source(root / "shards")
        order = np.random.default_rng(1).permutation(steps)[:reads].tolist()
        for s in order:
            assert np.array_equal(sharded.batch(s), merged.batch(s))
        t_merged, t_sharded = interleaved_ms([merged.batch, sharded.batch], order, rounds=10)
        with HubServer(root / "hub") as hub:
            os.environ["HF_ENDPOINT"] = hub.url
            os.environ.pop("HF_HUB_OFFLINE", None)
            spec = "hf://datasets/bench/pythia-shaped"
            remote = open_source(spec, cache=root / "cache")
            opened = hub.stats.body_bytes
            hub.stats.reset()
            t_remote = median_ms(remote.batch, order)
            per_step = hub.stats.body_bytes / len(order)
            for s in order:
                assert np.array_equal(remote.batch(s), merged.batch(s))
            t_cached = median_ms(remote.batch, order)  # every range now in the cache
    batch = PYTHIA_BATCH_SIZE * ROW * 2
    idx_entries = PYTHIA_BATCH_SIZE * 12
    print(
        f"batch {PYTHIA_BATCH_SIZE} x {ROW} uint16 = {batch:,} bytes; {steps} steps on disk in "
        f"shards of 10,000,019 bytes; {reads} random steps"
    )
    print(f"merged file (mmap)     {t_merged:8.2f} ms/batch")
    print(
        f"shards in place        {t_sharded:8.2f} ms/batch   ({t_sharded / t_merged:.2f}x the "
        "merged file; target <= 1.2x)"
    )
    print(
        f"remote, cold (loopback){t_remote:8.2f} ms/batch   ({t_remote / t_merged:.1f}x the "
        "merged file)"
    )
    print(
        f"remote, range cache    {t_cached:8.2f} ms/batch   ({t_cached / t_merged:.1f}x the "
        "merged file)"
    )
    print(
        f"remote bytes per step  {per_step:,.0f} = {per_step / batch:.4f} x batch "
        f"(batch + idx entries {idx_entries:,} = {(batch + idx_entries) / batch:.4f}; "
        f"target <= 1.05 + idx); open read {opened} bytes (idx header)"
    )


if __name__ == "__main__":
    main()
