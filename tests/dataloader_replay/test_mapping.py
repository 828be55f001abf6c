"""The pure index mapping against the plain-Python reference and megatron-core's helpers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dataloader_replay.mapping import (
    build_index_mapping,
    build_sample_idx,
    num_epochs,
    row_token_positions,
    stream_ends,
)
from tests.dataloader_replay.neox_reference import ref_mapping, ref_num_epochs, ref_sample

CASES = [  # (number of docs, max doc length, seq_length, num_samples, seed)
    (1, 5, 2, 3, 0),
    (7, 4, 3, 20, 1),
    (30, 40, 16, 50, 1234),
    (50, 3, 7, 200, 9),
    (12, 60, 5, 10, 42),
]


def _docs(n: int, high: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    docs, next_id = [], 1
    for length in rng.integers(1, high + 1, size=n):
        docs.append(list(range(next_id, next_id + int(length))) + [0])
        next_id += int(length)
    return docs


@pytest.mark.parametrize(
    "tokens,seq_length,num_samples",
    [
        (2, 1, 1),
        (10, 3, 3),
        (10, 3, 4),
        (100, 16, 6),
        (7, 9, 100),
        (1000, 2048, 1),
        (12345, 128, 100_000),
    ],
)
def test_num_epochs_equals_neox_loop(tokens: int, seq_length: int, num_samples: int) -> None:
    assert num_epochs(tokens, seq_length, num_samples) == ref_num_epochs(
        tokens, seq_length, num_samples
    )


@pytest.mark.parametrize("n,high,seq_length,num_samples,seed", CASES)
def test_mapping_equals_reference(
    n: int, high: int, seq_length: int, num_samples: int, seed: int
) -> None:
    docs = _docs(n, high, seed)
    sizes = np.array([len(d) for d in docs], dtype=np.int32)
    m = build_index_mapping(sizes, seq_length=seq_length, num_samples=num_samples, seed=seed)
    epochs, doc_idx, sample_idx, shuffle_idx = ref_mapping(docs, seq_length, num_samples, seed)
    assert m.num_epochs == epochs
    assert m.doc_idx.dtype == np.int32 and m.doc_idx.tolist() == doc_idx
    assert [tuple(x) for x in m.sample_idx.tolist()] == sample_idx
    assert m.shuffle_idx.dtype == np.uint32 and m.shuffle_idx.tolist() == shuffle_idx
    # every row, as token positions into the flat documents array, is the reference sample
    flat = np.concatenate([np.array(d) for d in docs])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    rows = np.arange(num_samples)
    pos = row_token_positions(m, sizes, starts, stream_ends(sizes, m.doc_idx), rows, seq_length)
    for r in rows:
        assert flat[pos[r]].tolist() == ref_sample(docs, doc_idx, sample_idx, shuffle_idx[r])


@pytest.mark.parametrize("n,high,seq_length,num_samples,seed", CASES)
def test_sample_idx_equals_megatron_helpers(
    n: int, high: int, seq_length: int, num_samples: int, seed: int
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.datasets import helpers_cpp
    sizes = np.array([len(d) for d in _docs(n, high, seed)], dtype=np.int32)
    m = build_index_mapping(sizes, seq_length=seq_length, num_samples=num_samples, seed=seed)
    tokens = int(sizes.sum())
    theirs = helpers_cpp.build_sample_idx_int64(
        sizes, m.doc_idx, seq_length, m.num_epochs, tokens, True, 1
    )
    np.testing.assert_array_equal(theirs, m.sample_idx)
    np.testing.assert_array_equal(
        build_sample_idx(sizes, m.doc_idx, seq_length, m.num_epochs, tokens), theirs
    )


def test_seed_changes_order_and_is_deterministic() -> None:
    sizes = np.array([len(d) for d in _docs(20, 10, 0)], dtype=np.int32)
    a = build_index_mapping(sizes, seq_length=4, num_samples=30, seed=1)
    b = build_index_mapping(sizes, seq_length=4, num_samples=30, seed=1)
    c = build_index_mapping(sizes, seq_length=4, num_samples=30, seed=2)
    assert a.shuffle_idx.tolist() == b.shuffle_idx.tolist()
    assert a.doc_idx.tolist() != c.doc_idx.tolist()
