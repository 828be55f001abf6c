"""`prepare`: corpus (Pile-schema jsonl[.zst]) -> a data directory in training order.

Streams: documents are tokenized in batches straight into megatron-core's builder; training
rows are materialized in chunks, gathering their tokens from a fresh memory map of
`documents.bin` per chunk (so resident pages are released), and written row by row. Memory
holds per-document and per-sample index arrays only, never the corpus. The directory is
built under a temporary name and renamed when complete (`atomic_path`).
"""

from __future__ import annotations

import logging
import math
import mmap
import shutil
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dataloader_replay.batch_hashes import BATCH_HASHES, compute_batch_hashes, write_batch_hashes
from dataloader_replay.indexed import IndexedWriter, document_arrays, token_dtype
from dataloader_replay.jsonl import Document, iter_documents
from dataloader_replay.manifest import FORMAT, write_manifest
from dataloader_replay.mapping import (
    IndexMapping,
    build_index_mapping,
    num_epochs,
    row_token_positions,
    stream_ends,
)
from dataloader_replay.tokenizer import PIECE_CHARS, LoadedTokenizer, load_tokenizer, split_text
from suite_core import ConfigError
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
            raise ValueError(f"--{name.replace('_', '-')}: must be a positive integer, got {value}")


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


def _batches(docs: Iterator[Document], size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def write_documents(
    input: Path, tokenizer: Any, eod_id: int, dtype: np.dtype, prefix: Path
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Tokenize every document (+ EOD) into `prefix.{bin,idx}`; return sources, ids, lines."""
    writer = IndexedWriter(prefix, dtype)
    sources: dict[str, int] = {}
    source_ids = array("i")
    lines = array("q")
    bar = tqdm(desc="tokenize", unit="doc", disable=None)
    for batch in _batches(iter_documents(input), ENCODE_BATCH):
        short = [d.text for d in batch if len(d.text) <= PIECE_CHARS]
        encodings = iter(tokenizer.encode_batch(short, add_special_tokens=False))
        for doc in batch:
            if len(doc.text) <= PIECE_CHARS:
                ids = next(encodings).ids
            else:  # a huge document: encode it piece by piece (same ids, bounded memory)
                ids = array("i")
                for piece in split_text(doc.text):
                    ids.extend(tokenizer.encode(piece, add_special_tokens=False).ids)
            tokens = np.empty(len(ids) + 1, dtype=dtype)
            tokens[:-1] = ids
            tokens[-1] = eod_id
            writer.add(tokens)
            source_ids.append(sources.setdefault(doc.source, len(sources)))
            lines.append(doc.line)
        bar.update(len(batch))
    bar.close()
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


def prepare(
    input: Path,
    tokenizer: Path,
    out: Path,
    *,
    seq_length: int,
    batch_size: int,
    steps: int,
    seed: int = 1234,
    num_samples: int | None = None,
) -> Manifest:
    """Tokenize INPUT and write DIR in GPT-NeoX's packed training order; return the manifest."""
    input, tokenizer, out = Path(input), Path(tokenizer), Path(out)
    _check_positive(
        seq_length=seq_length, batch_size=batch_size, steps=steps, num_samples=num_samples
    )
    needed = steps * batch_size
    num_samples = default_num_samples(steps, batch_size) if num_samples is None else num_samples
    if num_samples < needed:
        raise ValueError(
            f"--num-samples: {num_samples} is fewer than steps * batch_size = {needed}"
        )
    if not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"--seed: must be an integer in [0, 2**32), got {seed}")
    if not input.is_file():
        raise FileNotFoundError(f"{input}: no such file (INPUT)")
    refuse_existing(out)
    _check_fits(seq_length=seq_length, num_samples=num_samples, out=out)
    tok = load_tokenizer(tokenizer)
    dtype = token_dtype(tok.vocab_size)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        sources, source_ids, lines = write_documents(
            input, tok.tokenizer, tok.eod_id, dtype, tmp / "documents"
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
        manifest = _manifest(
            tmp, tok, mapping, sizes, sources, input=input, tokenizer=tokenizer,
            seq_length=seq_length, batch_size=batch_size, steps=steps, seed=seed,
            num_samples=num_samples, dtype=dtype,
        )  # fmt: skip
        write_manifest(tmp, manifest)
    log.info("wrote %s: %d rows, %d epochs", out, num_samples, mapping.num_epochs)
    return Manifest.from_dict(manifest, out / MANIFEST)


def _manifest(
    tmp: Path, tok: LoadedTokenizer, mapping: IndexMapping, sizes: np.ndarray,
    sources: list[str], *,
    input: Path, tokenizer: Path, seq_length: int, batch_size: int, steps: int, seed: int,
    num_samples: int, dtype: np.dtype,
) -> dict[str, Any]:  # fmt: skip
    """The manifest of the directory being written at `tmp` (its fingerprint included)."""
    manifest = {
        "format": FORMAT,
        "seq_length": seq_length,
        "batch_size": batch_size,
        "steps": steps,
        "seed": seed,
        "num_samples": num_samples,
        "num_epochs": mapping.num_epochs,
        "tokens_per_epoch": mapping.tokens_per_epoch,
        "num_documents": len(sizes),
        "eod_id": tok.eod_id,
        "pad_id": tok.pad_id,
        "vocab_size": tok.vocab_size,
        "dtype": dtype.name,
        "sources": sources,
        "input": {"path": str(input), "sha256": sha256_file(input)},
        "tokenizer": {"path": str(tokenizer), "sha256": sha256_file(tokenizer)},
        "files": {p.name: sha256_file(p) for p in sorted(tmp.iterdir())},
    }
    manifest["fingerprint"] = compute_fingerprint(manifest)
    return manifest
