"""`prepare`'s tokenization on Ray: chunks of documents tokenized in parallel, in input order.

The driver streams the input in chunks of raw lines (about `CHUNK_BYTES`), a task validates and
tokenizes each one with the same `tokenizer.encode` as the local engine, and the driver writes
the results in chunk order into megatron-core's builder, with at most `workers` chunks in
flight: the bytes written do not depend on the number of workers. The tokenizer travels as its
JSON text (one object in the object store), so workers need no shared file system.
Memory per process: a task holds one chunk and its token arrays; the driver `workers` of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from dataloader_replay.engine_ray import RayOptions, chaos, connect, ordered
from dataloader_replay.inputs import Progress, RawChunk, iter_raw_chunks, parse_chunk
from dataloader_replay.tokenizer import LoadedTokenizer, encode

CHUNK_BYTES = 1 << 20
_TOKENIZERS: dict[int, Any] = {}  # per worker process: tokenizer by the hash of its JSON


def _tokenizer(text: str) -> Any:
    from tokenizers import Tokenizer

    key = hash(text)
    if key not in _TOKENIZERS:
        _TOKENIZERS.clear()
        _TOKENIZERS[key] = Tokenizer.from_str(text)
    return _TOKENIZERS[key]


def _tokenize(
    chunk: RawChunk, path: str, tokenizer_json: str, eod_id: int, dtype: str
) -> tuple[list[np.ndarray], list[str], list[int]]:
    """One chunk: (token arrays with EOD, sources, lines)."""
    chaos("tokenize")
    docs = parse_chunk(Path(path), chunk)
    arrays = encode(_tokenizer(tokenizer_json), [d.text for d in docs], eod_id, np.dtype(dtype))
    return arrays, [d.source for d in docs], chunk.lines


@cache
def _remote(retries: int) -> Any:
    import ray

    return ray.remote(num_cpus=1, max_retries=retries)(_tokenize)


def encoded_ray(
    files: list[Path], tok: LoadedTokenizer, dtype: np.dtype, options: RayOptions
) -> Iterator[tuple[list[np.ndarray], list[str], list[int]]]:
    """(token arrays, sources, lines) per chunk, in input order, tokenized on Ray."""
    import ray

    workers = connect(options)
    task = _remote(options.max_retries)
    text = ray.put(tok.tokenizer.to_str())
    progress = Progress("tokenize (ray)")
    sizes: list[tuple[int, int]] = []

    def submit() -> Iterator[Any]:
        for chunk in iter_raw_chunks(files, CHUNK_BYTES):
            sizes.append((len(chunk.raw), chunk.nbytes))
            yield task.remote(chunk, str(files[chunk.file]), text, tok.eod_id, dtype.name)

    try:
        for n, result in enumerate(ordered(submit(), workers, "tokenize")):
            progress.update(*sizes[n])
            yield result
    finally:
        progress.close()
