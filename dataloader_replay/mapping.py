"""GPT-NeoX's packed index mapping, as pure functions (megatron/data/gpt2_dataset.py).

Given per-document token counts `sizes` (EOD included) and one `np.random.RandomState(seed)`:

1. `num_epochs`: the fewest passes over the corpus giving `num_samples` samples of
   `seq_length + 1` tokens, consecutive samples sharing one token.
2. `doc_idx`: `arange(num_documents)` repeated `num_epochs` times, then shuffled ONCE over all
   epochs (int32, as GPT-NeoX). megatron-core's `GPTDataset` differs here: with
   `separate_final_epoch` it shuffles the last, partial epoch on its own; GPT-NeoX (and so Pythia)
   does not, and neither do we.
3. `sample_idx` [n + 1, 2]: sample j starts at (index into doc_idx, token offset) and ends at the
   start of sample j + 1, inclusive, so each sample has `seq_length + 1` tokens and overlaps the
   next one by one token. n = (num_epochs * tokens_per_epoch - 1) // seq_length. In the stream of
   documents concatenated in doc_idx order, sample j starts at token `j * seq_length`.
4. `shuffle_idx`: `arange(n)` (uint32) shuffled with the SAME generator, after doc_idx.

Training row i is sample `shuffle_idx[i]`; only the first `num_samples` rows are used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from suite_core import DataError


def num_epochs(tokens_per_epoch: int, seq_length: int, num_samples: int) -> int:
    """Smallest number of epochs with `(epochs * tokens - 1) // seq_length >= num_samples`."""
    if tokens_per_epoch < 2:
        raise DataError(f"tokens_per_epoch: need at least 2 tokens, got {tokens_per_epoch}")
    epochs = max(1, -(-(num_samples * seq_length + 1) // tokens_per_epoch))
    while epochs > 1 and ((epochs - 1) * tokens_per_epoch - 1) // seq_length >= num_samples:
        epochs -= 1
    while (epochs * tokens_per_epoch - 1) // seq_length < num_samples:
        epochs += 1
    return epochs


def build_doc_idx(num_documents: int, epochs: int, rng: np.random.RandomState) -> np.ndarray:
    """All documents, `epochs` times, shuffled together (int32), consuming `rng`."""
    doc_idx = np.tile(np.arange(num_documents, dtype=np.int32), epochs)
    rng.shuffle(doc_idx)
    return doc_idx


def stream_ends(sizes: np.ndarray, doc_idx: np.ndarray) -> np.ndarray:
    """Cumulative token count (int64) at the end of each doc_idx entry."""
    return np.cumsum(sizes[doc_idx], dtype=np.int64)


def build_sample_idx(
    sizes: np.ndarray, doc_idx: np.ndarray, seq_length: int, epochs: int, tokens_per_epoch: int
) -> np.ndarray:
    """[n + 1, 2] int64 (doc_idx index, offset) of each sample start (vectorized)."""
    n = (epochs * tokens_per_epoch - 1) // seq_length
    ends = stream_ends(sizes, doc_idx)
    starts = np.arange(n + 1, dtype=np.int64) * seq_length
    k = np.searchsorted(ends, starts, side="right")
    sample_idx = np.empty((n + 1, 2), dtype=np.int64)
    sample_idx[:, 0] = k
    sample_idx[:, 1] = starts - (ends[k] - sizes[doc_idx[k]])
    return sample_idx


def build_shuffle_idx(size: int, rng: np.random.RandomState) -> np.ndarray:
    """`arange(size)` shuffled (uint32, int64 when too large), consuming `rng`."""
    dtype = np.uint32 if size < np.iinfo(np.uint32).max - 1 else np.int64
    shuffle_idx = np.arange(size, dtype=dtype)
    rng.shuffle(shuffle_idx)
    return shuffle_idx


@dataclass(frozen=True, kw_only=True)
class IndexMapping:
    doc_idx: np.ndarray  # [epochs * num_documents] int32
    sample_idx: np.ndarray  # [n + 1, 2] int64
    shuffle_idx: np.ndarray  # [n] uint32
    num_epochs: int
    tokens_per_epoch: int


def build_index_mapping(
    sizes: np.ndarray, *, seq_length: int, num_samples: int, seed: int
) -> IndexMapping:
    """doc_idx, sample_idx and shuffle_idx from one `RandomState(seed)`, in GPT-NeoX's order."""
    sizes = np.asarray(sizes, dtype=np.int32)
    tokens = int(sizes.sum(dtype=np.int64))
    epochs = num_epochs(tokens, seq_length, num_samples)
    rng = np.random.RandomState(seed=seed)
    doc_idx = build_doc_idx(len(sizes), epochs, rng)
    sample_idx = build_sample_idx(sizes, doc_idx, seq_length, epochs, tokens)
    shuffle_idx = build_shuffle_idx(sample_idx.shape[0] - 1, rng)
    return IndexMapping(
        doc_idx=doc_idx,
        sample_idx=sample_idx,
        shuffle_idx=shuffle_idx,
        num_epochs=epochs,
        tokens_per_epoch=tokens,
    )


def row_token_positions(
    mapping: IndexMapping,
    sizes: np.ndarray,
    doc_starts: np.ndarray,
    ends: np.ndarray,
    rows: np.ndarray,
    seq_length: int,
) -> np.ndarray:
    """Token offsets into the documents file for each of `rows`: [len(rows), seq_length + 1].

    `doc_starts[d]` is document d's first token offset, `ends` is `stream_ends(sizes, doc_idx)`.
    """
    samples = mapping.shuffle_idx[rows].astype(np.int64)
    k0 = mapping.sample_idx[samples, 0]
    first = ends[k0] - sizes[mapping.doc_idx[k0]] + mapping.sample_idx[samples, 1]
    k1 = mapping.sample_idx[samples + 1, 0]
    last = ends[k1] - sizes[mapping.doc_idx[k1]] + mapping.sample_idx[samples + 1, 1]
    assert np.all(last - first == seq_length), "sample_idx is not a packed mapping"
    pos = first[:, None] + np.arange(seq_length + 1, dtype=np.int64)[None, :]
    k = np.searchsorted(ends, pos, side="right")
    docs = mapping.doc_idx[k]
    return doc_starts[docs] + (pos - (ends[k] - sizes[docs]))
