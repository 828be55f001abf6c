"""`find`: every occurrence of a token sequence in the training data, in training order.

Streams over `train.bin` a chunk of rows at a time: a vectorized search for the first token,
then the remaining tokens are compared at the candidate positions. An occurrence that spans
two rows (the end of one row and the start of the next) is NOT reported: rows are separate
training samples.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from dataloader_replay.replay import TrainData
from suite_core import DataError

CHUNK_TOKENS = 1 << 22  # tokens scanned per chunk


@dataclass(frozen=True, kw_only=True)
class Occurrence:
    row: int
    step: int
    offset: int  # index of the first matching token within the row

    def as_dict(self) -> dict[str, int]:
        return {"row": self.row, "step": self.step, "offset": self.offset}


def find_tokens(data: TrainData, pattern: Sequence[int]) -> Iterator[Occurrence]:
    """Yield occurrences of `pattern` ordered by (row, offset)."""
    if any(t < 0 or t > np.iinfo(np.int64).max for t in pattern):
        return  # an id no array can hold (e.g. 20 digits) occurs nowhere
    pat = np.asarray(pattern, dtype=np.int64)
    width = data.seq_length + 1
    if pat.size == 0:
        raise DataError("--tokens: empty pattern")
    if pat.size > width:
        return
    if pat.min() < 0 or pat.max() > np.iinfo(data.dtype).max:
        return  # no stored token can equal an id outside the dtype's range
    chunk = max(1, CHUNK_TOKENS // width)
    span = width - pat.size + 1  # valid start offsets per row
    bar = tqdm(total=data.num_rows, desc="find", unit="row", disable=None)
    for start in range(0, data.num_rows, chunk):
        block = data.rows(start, min(start + chunk, data.num_rows))
        rows, cols = np.nonzero(block[:, :span] == pat[0])
        keep = np.ones(rows.size, dtype=bool)
        for j in range(1, pat.size):
            keep &= block[rows, cols + j] == pat[j]
        for r, c in zip(rows[keep].tolist(), cols[keep].tolist()):
            row = start + r
            yield Occurrence(row=row, step=row // data.batch_size, offset=c)
        bar.update(block.shape[0])
    bar.close()
