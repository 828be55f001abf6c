"""`DIR/batch_sha256.txt`: the `batch_sha256` of every full batch of `train.bin`, one per line.

`batch_sha256(batch)` is the sha256 hex digest of
`np.ascontiguousarray(batch, dtype='<i4').tobytes()`: the batch as little-endian int32,
row-major, whatever dtype it is stored in.

Line `s + 1` holds the hash of the batch at step s (rows `[s*B, (s+1)*B)`, as stored, before
any transform), for s in `0 .. num_rows // B - 1`: the same digest the trainer logs for an
untransformed run. `prepare` writes it (and lists it in the manifest's file hashes); the trainer
checks each batch against it before the update that uses it; `pythia-suite verify` rechecks all.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from suite_core import DataError
from suite_core.hashing import sha256_bytes

BATCH_HASHES = "batch_sha256.txt"
_HEX = re.compile(r"^[0-9a-f]{64}$")


def batch_sha256(batch: np.ndarray) -> str:
    """sha256 hex of the batch as row-major little-endian int32 bytes."""
    return sha256_bytes(np.ascontiguousarray(batch, dtype="<i4").tobytes())


def compute_batch_hashes(tokens: np.ndarray, batch_size: int) -> list[str]:
    """batch_sha256 of each full batch of the [rows, L+1] matrix `tokens`."""
    steps = len(tokens) // batch_size
    return [
        batch_sha256(tokens[s * batch_size : (s + 1) * batch_size])
        for s in tqdm(range(steps), desc="batch hashes", unit="step", disable=None)
    ]


def write_batch_hashes(path: Path, hashes: list[str]) -> None:
    Path(path).write_text("".join(h + "\n" for h in hashes), encoding="ascii")


def read_batch_hashes(path: Path) -> list[str]:
    """The hashes of `path`; ValueError naming file:line for a malformed line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (per-step batch hashes written by prepare)")
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not an ASCII list of sha256 digests") from None
    lines = text.split("\n")
    if lines[-1] != "":
        raise DataError(f"{path}:{len(lines)}: last line is not terminated (file truncated?)")
    hashes = lines[:-1]
    for number, digest in enumerate(hashes, start=1):
        if not _HEX.match(digest):
            raise DataError(f"{path}:{number}: expected a sha256 hex digest, got {digest[:80]!r}")
    return hashes
