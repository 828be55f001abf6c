"""Test data in EleutherAI's layouts: a merged train-style `.bin/.idx` written by megatron-core,
cut into `STEM-KKKKK-of-NNNNN.bin` shards at chosen byte offsets, optionally laid out as a
Hugging Face cache snapshot (`datasets--O--N/snapshots/REV/` of symlinks into `blobs/`)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np

from dataloader_replay.indexed import IndexedWriter


def random_rows(n: int, width: int, *, seed: int, dtype: str = "uint16") -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 50_000, size=(n, width)).astype(dtype)


def write_merged(prefix: Path, rows: np.ndarray) -> Path:
    """`prefix.{bin,idx}`, one sequence per row, through megatron-core's builder."""
    writer = IndexedWriter(prefix, rows.dtype)
    for row in rows:
        writer.add(row)
    writer.finalize()
    return prefix


def cut_points_to_sizes(total: int, cuts: list[int]) -> list[int]:
    edges = [0, *cuts, total]
    return [b - a for a, b in zip(edges, edges[1:])]


def write_shards(
    prefix: Path, folder: Path, cuts: list[int], *, stem: str = "document"
) -> list[Path]:
    """Cut `prefix.bin` at byte offsets `cuts` into shards in `folder`; copy the idx."""
    folder.mkdir(parents=True, exist_ok=True)
    data = Path(f"{prefix}.bin").read_bytes()
    sizes = cut_points_to_sizes(len(data), cuts)
    last = len(sizes) - 1
    out, at = [], 0
    for k, size in enumerate(sizes):
        path = folder / f"{stem}-{k:05d}-of-{last:05d}.bin"
        path.write_bytes(data[at : at + size])
        out.append(path)
        at += size
    shutil.copyfile(f"{prefix}.idx", folder / f"{stem}.idx")
    return out


def uniform_cuts(total: int, shard_bytes: int) -> list[int]:
    return list(range(shard_bytes, total, shard_bytes))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def as_hf_snapshot(folder: Path, cache_root: Path, repo_id: str, revision: str) -> Path:
    """Move `folder`'s files into an HF cache layout; return the snapshot folder."""
    repo = cache_root / ("datasets--" + repo_id.replace("/", "--"))
    blobs, snap = repo / "blobs", repo / "snapshots" / revision
    blobs.mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True)
    for f in sorted(folder.iterdir()):
        blob = blobs / sha256_of(f)
        shutil.move(f, blob)
        os.symlink(os.path.relpath(blob, snap), snap / f.name)
    return snap
