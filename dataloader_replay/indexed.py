"""Megatron indexed datasets (`.bin/.idx`, legacy MMapIndexedDataset format, version 1).

Writing and reading go through megatron-core's `IndexedDatasetBuilder` / `IndexedDataset`.
Before megatron-core touches a file, `validate_index` checks the `.idx` header (magic, version,
dtype code), the `.idx` size implied by its counts and the `.bin` size implied by its sequence
lengths, so that a damaged file gives one `ValueError` naming the file and the field instead of
an `AssertionError` (or a crash) deep inside megatron-core.

`.idx` layout: magic `MMIDIDX\\0\\0` (9 bytes), version `<Q` = 1, dtype code `<B`, sequence
count `<Q`, document count `<Q`, then int32 lengths, int64 byte pointers, int64 document indices.
"""

from __future__ import annotations

import importlib
import struct
import warnings
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from suite_core import DataError

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
HEADER_BYTES = 9 + 8 + 1 + 8 + 8
# megatron-core's DType codes (indexed_dataset.DType)
DTYPE_CODES: dict[int, np.dtype] = {
    1: np.dtype(np.uint8),
    2: np.dtype(np.int8),
    3: np.dtype(np.int16),
    4: np.dtype(np.int32),
    5: np.dtype(np.int64),
    6: np.dtype(np.float64),
    7: np.dtype(np.float32),
    8: np.dtype(np.uint16),
}
UINT16_VOCAB_LIMIT = int(np.iinfo(np.uint16).max) + 1


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every token id fits (vocab_size <= 65536), else int32."""
    return np.dtype(np.uint16) if vocab_size <= UINT16_VOCAB_LIMIT else np.dtype(np.int32)


def megatron_indexed() -> Any:
    """Import `megatron.core.datasets.indexed_dataset` quietly (it warns about optional deps)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module("megatron.core.datasets.indexed_dataset")


@dataclass(frozen=True, kw_only=True)
class IndexHeader:
    idx_path: Path
    bin_path: Path
    dtype: np.dtype
    sequence_count: int
    document_count: int

    @property
    def lengths_offset(self) -> int:
        return HEADER_BYTES

    @property
    def pointers_offset(self) -> int:
        return HEADER_BYTES + 4 * self.sequence_count


def paths(prefix: str | Path) -> tuple[Path, Path]:
    prefix = str(prefix)
    return Path(prefix + ".idx"), Path(prefix + ".bin")


def parse_header(head: bytes, idx_size: int, where: str) -> tuple[np.dtype, int, int]:
    """(token dtype, sequence count, document count) from the first `HEADER_BYTES` of an
    `.idx` of `idx_size` bytes; `ValueError` naming `where` (a file or URL) and the field."""
    if len(head) < HEADER_BYTES:
        raise DataError(f"{where}: truncated header ({len(head)} of {HEADER_BYTES} bytes)")
    if head[:9] != MAGIC:
        raise DataError(
            f"{where}: field 'magic': expected {MAGIC!r}, found {head[:9]!r} "
            "(not a Megatron MMapIndexedDataset index)"
        )
    (version,) = struct.unpack("<Q", head[9:17])
    if version != VERSION:
        raise DataError(f"{where}: field 'version': expected {VERSION}, found {version}")
    code = head[17]
    if code not in DTYPE_CODES:
        raise DataError(f"{where}: field 'dtype': unknown dtype code {code}")
    seq_count, doc_count = struct.unpack("<QQ", head[18:34])
    expected = HEADER_BYTES + 4 * seq_count + 8 * seq_count + 8 * doc_count
    if idx_size < expected:
        raise DataError(
            f"{where}: field 'size': truncated ({idx_size} bytes, the counts need {expected})"
        )
    return DTYPE_CODES[code], seq_count, doc_count


def read_header(prefix: str | Path) -> IndexHeader:
    """Parse and check the `.idx` header and file sizes; `ValueError` names file and field."""
    idx_path, bin_path = paths(prefix)
    for p in (idx_path, bin_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such file")
    with open(idx_path, "rb") as fh:
        head = fh.read(HEADER_BYTES)
    dtype, seq_count, doc_count = parse_header(head, idx_path.stat().st_size, str(idx_path))
    return IndexHeader(
        idx_path=idx_path,
        bin_path=bin_path,
        dtype=dtype,
        sequence_count=seq_count,
        document_count=doc_count,
    )


def validate_index(prefix: str | Path) -> IndexHeader:
    """`read_header` plus: the `.bin` holds exactly the bytes the last sequence ends at."""
    header = read_header(prefix)
    n = header.sequence_count
    if n == 0:
        raise DataError(f"{header.idx_path}: field 'sequence_count': the dataset is empty")
    mm = np.memmap(header.idx_path, dtype=np.uint8, mode="r")
    last_len = int(np.frombuffer(mm, np.int32, 1, header.lengths_offset + 4 * (n - 1))[0])
    last_ptr = int(np.frombuffer(mm, np.int64, 1, header.pointers_offset + 8 * (n - 1))[0])
    docs_offset = header.pointers_offset + 8 * n
    last_doc = (
        int(np.frombuffer(mm, np.int64, 1, docs_offset + 8 * (header.document_count - 1))[0])
        if header.document_count
        else None
    )
    del mm
    if last_doc != n:  # megatron-core asserts this
        raise DataError(
            f"{header.idx_path}: field 'document_indices': the last is {last_doc}, "
            f"expected the sequence count {n}"
        )
    need = last_ptr + last_len * header.dtype.itemsize
    have = header.bin_path.stat().st_size
    if have != need:
        what = "truncated" if have < need else "longer than its index"
        raise DataError(
            f"{header.bin_path}: field 'size': {what} ({have} bytes, "
            f"{header.idx_path.name} needs {need})"
        )
    return header


def open_indexed(prefix: str | Path) -> Any:
    """Validate, then open with megatron-core's `IndexedDataset` (memory-mapped)."""
    validate_index(prefix)
    return megatron_indexed().IndexedDataset(str(prefix))


def document_arrays(prefix: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(sequence lengths int32, first-token offsets int64) as copies, read by megatron-core.

    Copies, because megatron-core unmaps its index when the `IndexedDataset` is collected and
    views into it would then point at unmapped memory.
    """
    ds = open_indexed(prefix)
    lengths = np.array(ds.sequence_lengths, dtype=np.int32)
    starts = np.array(ds.index.sequence_pointers, dtype=np.int64) // ds.index.dtype_size
    del ds
    return lengths, starts


class IndexedWriter:
    """Thin wrapper over megatron-core's `IndexedDatasetBuilder`: one document per `add`."""

    def __init__(self, prefix: str | Path, dtype: np.dtype) -> None:
        self.idx_path, self.bin_path = paths(prefix)
        self.dtype = np.dtype(dtype)
        module = megatron_indexed()
        self._builder = module.IndexedDatasetBuilder(str(self.bin_path), dtype=self.dtype.type)
        # The builder keeps one Python int per sequence in two lists; typed arrays hold the same
        # values in 12 bytes instead of ~70 (its writer converts them with numpy.array either way).
        self._builder.sequence_lengths = array("i")
        self._builder.document_indices = array("q", [0])
        self.count = 0

    def add(self, tokens: np.ndarray) -> None:
        """Append one document (one sequence) of tokens."""
        self._builder.add_document(tokens, [int(tokens.size)])
        self.count += 1

    def finalize(self) -> None:
        self._builder.finalize(str(self.idx_path))
