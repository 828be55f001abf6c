"""An independent, plain-Python reference of GPT-NeoX's packed index mapping.

Straightforward loops transcribing GPT-NeoX's `_num_epochs`, `_build_doc_idx`,
`_build_sample_idx`, `_build_shuffle_idx` and `GPT2Dataset.__getitem__`; shares no code with
`dataloader_replay`. Only the random generator is shared, as it must be:
`np.random.RandomState(seed).shuffle` on Python lists.
"""

from __future__ import annotations

import numpy as np


def ref_num_epochs(tokens_per_epoch: int, seq_length: int, num_samples: int) -> int:
    epochs, total = 0, 0
    while True:
        epochs += 1
        total += tokens_per_epoch
        if (total - 1) // seq_length >= num_samples:
            return epochs


def ref_mapping(docs: list[list[int]], seq_length: int, num_samples: int, seed: int):
    sizes = [len(d) for d in docs]
    tokens = sum(sizes)
    epochs = ref_num_epochs(tokens, seq_length, num_samples)
    rng = np.random.RandomState(seed)
    doc_idx = []
    for _ in range(epochs):
        doc_idx.extend(range(len(docs)))
    rng.shuffle(doc_idx)

    n = (epochs * tokens - 1) // seq_length
    sample_idx = [(0, 0)]
    k, offset = 0, 0
    while len(sample_idx) <= n:
        remaining = seq_length + 1
        while remaining != 0:
            length = sizes[doc_idx[k]] - offset
            remaining -= length
            if remaining <= 0:
                offset += remaining + length - 1
                remaining = 0
            else:
                k += 1
                offset = 0
        sample_idx.append((k, offset))

    shuffle_idx = list(range(n))
    rng.shuffle(shuffle_idx)
    return epochs, doc_idx, sample_idx, shuffle_idx


def ref_sample(docs, doc_idx, sample_idx, i: int) -> list[int]:
    """GPT2Dataset.__getitem__ for sample i (before shuffling)."""
    (k0, o0), (k1, o1) = sample_idx[i], sample_idx[i + 1]
    if k0 == k1:
        return docs[doc_idx[k0]][o0 : o1 + 1]
    out = list(docs[doc_idx[k0]][o0:])
    for k in range(k0 + 1, k1):
        out.extend(docs[doc_idx[k]])
    out.extend(docs[doc_idx[k1]][: o1 + 1])
    return out


def ref_rows(docs: list[list[int]], seq_length: int, num_samples: int, seed: int):
    """(epochs, rows in training order) for the first `num_samples` rows."""
    epochs, doc_idx, sample_idx, shuffle_idx = ref_mapping(docs, seq_length, num_samples, seed)
    rows = [ref_sample(docs, doc_idx, sample_idx, shuffle_idx[r]) for r in range(num_samples)]
    return epochs, rows
