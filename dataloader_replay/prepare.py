"""`prepare`: corpus (Pile-schema jsonl[.zst]) -> a data directory in training order.

Streams: documents are tokenized in batches straight into megatron-core's builder; training
rows are materialized in chunks, gathering their tokens from a fresh memory map of
`documents.bin` per chunk (so resident pages are released), and written row by row. Memory
holds per-document and per-sample index arrays only, never the corpus. The directory is
built under a temporary name and renamed when complete (`atomic_path`).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import mmap
import shutil
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dataloader_replay.batch_hashes import BATCH_HASHES, compute_batch_hashes, write_batch_hashes
from dataloader_replay.engine_ray import RayOptions, claimed
from dataloader_replay.indexed import IndexedWriter, document_arrays, token_dtype
from dataloader_replay.inputs import Progress, input_files, iter_corpus
from dataloader_replay.manifest import FORMAT, write_manifest
from dataloader_replay.mapping import (
    IndexMapping,
    build_index_mapping,
    num_epochs,
    row_token_positions,
    stream_ends,
)
from dataloader_replay.tokenizer import LoadedTokenizer, encode, load_tokenizer
from suite_core import ConfigError, DataError
from suite_core.atomic import atomic_path, refuse_existing
from suite_core.hashing import sha256_file
from suite_core.layout import MANIFEST
from suite_core.records import Manifest, compute_fingerprint

log = logging.getLogger(__name__)
ENCODE_BATCH = 256  # documents per `encode_batch` call
CHUNK_TOKENS = 1 << 18  # at most this many tokens per chunk of training rows ...
CHUNK_ROWS = 32  # ... and at most this many rows (bounds the pages they touch)


def _check_positive(**fields: int | None) -> None:
    for name, value in fields.items():
        if value is not None and (not isinstance(value, int) or value < 1):
            raise DataError(f"--{name.replace('_', '-')}: must be a positive integer, got {value}")


def _check_fits(*, seq_length: int, num_samples: int, out: Path) -> None:
    """Refuse, before any tokenizing, sizes whose arrays cannot fit in memory or on disk.

    In memory: sample_idx (2 x int64) and shuffle_idx (int64) per row, and the int64 token
    positions of one chunk of rows (at least one row of seq_length + 1 tokens). On disk:
    train.bin at 2 bytes per token at least.
    """
    import psutil

    width = seq_length + 1
    # ~32 bytes per token of a chunk: int64 positions, the arange and sum behind them, the block
    memory = num_samples * 24 + width * 32 * max(1, min(CHUNK_ROWS, CHUNK_TOKENS // width))
    available = psutil.virtual_memory().available
    if memory > available:
        raise ConfigError(
            f"--seq-length {seq_length} / {num_samples:,} rows: the index arrays "
            f"need {memory / 2**30:,.1f} GiB of memory, {available / 2**30:,.1f} "
            "GiB is available"
        )
    disk = num_samples * width * 2
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    free = shutil.disk_usage(parent).free
    if disk > free:
        raise ConfigError(
            f"{out}: train.bin needs {disk / 2**30:,.1f} GiB "
            f"({num_samples:,} rows of {width:,} tokens), {free / 2**30:,.1f} GiB "
            "is free there"
        )


def _check_epochs(sizes: np.ndarray, *, seq_length: int, num_samples: int) -> None:
    """Refuse a corpus too small for the rows asked: doc_idx holds every document per epoch."""
    import psutil

    epochs = num_epochs(int(sizes.sum(dtype=np.int64)), seq_length, num_samples)
    memory = epochs * len(sizes) * 16  # doc_idx (int32), sizes[doc_idx], its int64 cumsum
    available = psutil.virtual_memory().available
    if memory > available:
        raise ConfigError(
            f"--seq-length {seq_length} / {num_samples:,} rows: the corpus would be "
            f"repeated {epochs:,} times; doc_idx needs {memory / 2**30:,.1f} GiB of "
            f"memory, {available / 2**30:,.1f} GiB is available"
        )


def _encoded_local(
    files: list[Path], tokenizer: Any, eod_id: int, dtype: np.dtype
) -> Iterator[tuple[list[np.ndarray], list[str], list[int]]]:
    """(token arrays, sources, lines) per batch of documents, in input order, in this process."""
    progress = Progress("tokenize (local)")
    docs = iter_corpus(files)
    try:
        while batch := [d for _, d in itertools.islice(docs, ENCODE_BATCH)]:
            yield (
                encode(tokenizer, [d.text for d in batch], eod_id, dtype),
                [d.source for d in batch],
                [d.line for d in batch],
            )
            progress.update(len(batch), sum(len(d.raw) + 1 for d in batch))
    finally:
        progress.close()


def write_documents(
    files: list[Path],
    tok: LoadedTokenizer,
    dtype: np.dtype,
    prefix: Path,
    *,
    engine: str = "local",
    ray: RayOptions | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Tokenize every document (+ EOD) into `prefix.{bin,idx}` in input order; return sources,
    per-document source ids and lines. `engine` "ray" tokenizes in parallel on Ray."""
    if engine == "ray":
        from dataloader_replay.prepare_ray import encoded_ray

        batches = encoded_ray(files, tok, dtype, ray or RayOptions())
    else:
        batches = _encoded_local(files, tok.tokenizer, tok.eod_id, dtype)
    writer = IndexedWriter(prefix, dtype)
    sources: dict[str, int] = {}
    source_ids = array("i")
    lines = array("q")
    for arrays, names, numbers in batches:
        for tokens in arrays:
            writer.add(tokens)
        source_ids.extend(sources.setdefault(name, len(sources)) for name in names)
        lines.extend(numbers)
    writer.finalize()
    return list(sources), np.asarray(source_ids, dtype=np.int32), np.asarray(lines, np.int64)


def _gather(bin_path: Path, dtype: np.dtype, positions: np.ndarray) -> np.ndarray:
    """Tokens at `positions` read through a fresh memory map that is unmapped afterwards.

    Rows gather from random documents, so every row faults in pages of its own (with the
    kernel's fault-around, up to ~64 KiB each); a map per small chunk of rows, closed after
    use, bounds the resident pages by the chunk, however large the corpus.
    """
    with open(bin_path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        mm.madvise(mmap.MADV_RANDOM)
        tokens = np.frombuffer(mm, dtype=dtype)
        block = tokens[positions]
        del tokens  # release the buffer so the map can close
    return block


def write_train(
    documents_prefix: Path,
    mapping: IndexMapping,
    sizes: np.ndarray,
    doc_starts: np.ndarray,
    *,
    num_samples: int,
    seq_length: int,
    dtype: np.dtype,
    prefix: Path,
) -> None:
    """Materialize rows [0, num_samples) in training order into `prefix.{bin,idx}`."""
    ends = stream_ends(sizes, mapping.doc_idx)
    writer = IndexedWriter(prefix, dtype)
    chunk = max(1, min(CHUNK_ROWS, CHUNK_TOKENS // (seq_length + 1)))
    bin_path = Path(str(documents_prefix) + ".bin")
    with tqdm(total=num_samples, desc="materialize", unit="row", disable=None) as bar:
        for start in range(0, num_samples, chunk):
            rows = np.arange(start, min(start + chunk, num_samples), dtype=np.int64)
            pos = row_token_positions(mapping, sizes, doc_starts, ends, rows, seq_length)
            block = _gather(bin_path, dtype, pos)
            for row in block:
                writer.add(row)
            bar.update(len(rows))
    writer.finalize()


def default_num_samples(steps: int, batch_size: int) -> int:
    """GPT-NeoX's training sample count with `train-data-paths`: ceil(S * B * weight * 1.005).

    (`get_normalized_weights_and_num_samples`, one path of weight 1.0; Pythia: 147,164,160.)
    The rows past S * B are never trained: a held-out control group. The extra 0.5% can add an
    epoch to the shuffled order and so change every row of it, as it did for GPT-NeoX.
    """
    return math.ceil(steps * batch_size * 1.0 * 1.005)


def write_train_hashes(
    directory: Path, *, batch_size: int, seq_length: int, dtype: np.dtype, num_samples: int
) -> None:
    """`DIR/batch_sha256.txt`: the hash of every full batch of `DIR/train.bin`."""
    from dataloader_replay.replay import map_rows

    tokens = map_rows(directory / "train.bin", dtype, num_samples, seq_length + 1)
    write_batch_hashes(directory / BATCH_HASHES, compute_batch_hashes(tokens, batch_size))


def _contents(
    tok: LoadedTokenizer,
    mapping: IndexMapping,
    sizes: np.ndarray,
    sources: list[str],
    *,
    num_samples: int,
    dtype: np.dtype,
) -> dict[str, Any]:
    """The manifest fields that describe what was written (in the manifest's key order)."""
    return {
        "num_samples": num_samples,
        "num_epochs": mapping.num_epochs,
        "tokens_per_epoch": mapping.tokens_per_epoch,
        "num_documents": len(sizes),
        "eod_id": tok.eod_id,
        "pad_id": tok.pad_id,
        "vocab_size": tok.vocab_size,
        "dtype": dtype.name,
        "sources": sources,
    }


def input_record(specs: Sequence[Path], files: list[Path]) -> dict[str, Any]:
    """The manifest's `input`: one file as before ({path, sha256}); several files: the sha256 of
    their bytes read in order, and each file's sha256 in `files`."""
    if len(files) == 1 and len(specs) == 1 and files[0] == Path(specs[0]):
        return {"path": str(files[0]), "sha256": sha256_file(files[0])}
    digest = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    paths: Any = str(specs[0]) if len(specs) == 1 else [str(s) for s in specs]
    return {"path": paths, "sha256": digest.hexdigest(), "files": [sha256_file(f) for f in files]}


def prepare(
    input: Path | Sequence[Path],
    tokenizer: Path,
    out: Path,
    *,
    seq_length: int,
    batch_size: int,
    steps: int,
    seed: int = 1234,
    num_samples: int | None = None,
    engine: str = "local",
    ray: RayOptions | None = None,
) -> Manifest:
    """Tokenize INPUT (files or folders, read in order) and write DIR in GPT-NeoX's packed
    training order; return the manifest. `engine`: "local" or "ray" (byte-identical DIR)."""
    specs = [Path(input)] if isinstance(input, (str, Path)) else [Path(p) for p in input]
    tokenizer, out = Path(tokenizer), Path(out)
    _check_positive(
        seq_length=seq_length, batch_size=batch_size, steps=steps, num_samples=num_samples
    )
    needed = steps * batch_size
    num_samples = default_num_samples(steps, batch_size) if num_samples is None else num_samples
    if num_samples < needed:
        raise DataError(f"--num-samples: {num_samples} is fewer than steps * batch_size = {needed}")
    if not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"--seed: must be an integer in [0, 2**32), got {seed}")
    if engine not in ("local", "ray"):
        raise ConfigError(f"--engine: must be local or ray, got {engine}")
    files = input_files(specs)
    refuse_existing(out)
    _check_fits(seq_length=seq_length, num_samples=num_samples, out=out)
    tok = load_tokenizer(tokenizer)
    dtype = token_dtype(tok.vocab_size)
    with claimed(out, engine), atomic_path(out) as tmp:
        tmp.mkdir()
        sources, source_ids, lines = write_documents(
            files, tok, dtype, tmp / "documents", engine=engine, ray=ray
        )
        sizes, doc_starts = document_arrays(tmp / "documents")
        _check_epochs(sizes, seq_length=seq_length, num_samples=num_samples)
        log.info("%d documents, %d tokens", len(sizes), int(sizes.sum(dtype=np.int64)))
        mapping = build_index_mapping(
            sizes, seq_length=seq_length, num_samples=num_samples, seed=seed
        )
        for name, arr in (
            ("doc_idx", mapping.doc_idx),
            ("sample_idx", mapping.sample_idx),
            ("shuffle_idx", mapping.shuffle_idx),
            ("doc_sources", source_ids),
            ("doc_lines", lines),
        ):
            np.save(tmp / f"{name}.npy", arr, allow_pickle=False)
        write_train(
            tmp / "documents",
            mapping,
            sizes,
            doc_starts,
            num_samples=num_samples,
            seq_length=seq_length,
            dtype=dtype,
            prefix=tmp / "train",
        )
        shutil.copyfile(tokenizer, tmp / "tokenizer.json")
        write_train_hashes(
            tmp, batch_size=batch_size, seq_length=seq_length, dtype=dtype, num_samples=num_samples
        )
        manifest = {
            "format": FORMAT,
            "seq_length": seq_length,
            "batch_size": batch_size,
            "steps": steps,
            "seed": seed,
            **_contents(tok, mapping, sizes, sources, num_samples=num_samples, dtype=dtype),
            "input": input_record(specs, files),
            "tokenizer": {"path": str(tokenizer), "sha256": sha256_file(tokenizer)},
            "files": {p.name: sha256_file(p) for p in sorted(tmp.iterdir())},
        }
        manifest["fingerprint"] = compute_fingerprint(manifest)
        write_manifest(tmp, manifest)
    log.info("wrote %s: %d rows, %d epochs", out, num_samples, mapping.num_epochs)
    return Manifest.from_dict(manifest, out / MANIFEST)
