"""The suite's one sha256 of a file (and of bytes and canonical JSON): every hash it records."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def sha256_file(
    path: str | Path, chunk: int = CHUNK, *, on_chunk: Callable[[int], Any] | None = None
) -> str:
    """sha256 hex of a file's bytes, read in chunks (`on_chunk(len)` after each, for progress)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
            if on_chunk is not None:
                on_chunk(len(block))
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """sha256 hex of `data`."""
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> str:
    """Compact JSON with sorted keys: the text hashed when a JSON value is named by content."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
