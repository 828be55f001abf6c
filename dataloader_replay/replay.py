"""Exact replay: the batch any step trained on, read directly (no earlier batch is touched).

`TrainData.open(DIR)` reads a prepared directory; `TrainData.open(PREFIX)` reads a bare
`train`-style `.bin/.idx` pair such as EleutherAI's preshuffled Pythia files (rows of
`seq_length + 1` tokens, default batch size `PYTHIA_BATCH_SIZE`). All rows have one length, so
the `.bin` is memory-mapped as a [rows, seq_length + 1] matrix and a batch is one slice.
Readers open any SOURCE through `sources.open_source`, which also builds a `TrainData` over
EleutherAI's shards in place or over HTTP (its `store`, a `RowStore`, reads the rows).

Every batch is checked against `batch_sha256` (dataloader_replay.batch_hashes) as recorded by
prepare; trainers log it per step; `verify_run` checks it.
"""

from __future__ import annotations

import logging
import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dataloader_replay.batch_hashes import BATCH_HASHES, batch_sha256, read_batch_hashes
from dataloader_replay.indexed import document_arrays, open_indexed, token_dtype
from dataloader_replay.transforms import apply_transform
from suite_core import DataError
from suite_core.records import Manifest

log = logging.getLogger(__name__)
PYTHIA_BATCH_SIZE = 1024  # EleutherAI's preshuffled Pythia data: 1024 rows per step


def map_rows(bin_path: Path, dtype: np.dtype, rows: int, width: int) -> np.ndarray:
    """A read-only [rows, width] view of the memory-mapped file (a plain ndarray over an
    `mmap`, which copies out faster than an `np.memmap` slice; the map lives as long as it)."""
    with open(bin_path, "rb") as fh:
        buffer = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(buffer, dtype=dtype, count=rows * width).reshape(rows, width)


PARALLEL_COPY_BYTES = 1 << 20  # below this, one thread copies faster than several
_copy_pool: ThreadPoolExecutor | None = None


def parallel_copy(src: np.ndarray) -> np.ndarray:
    """A contiguous copy of `src` [rows, width], split by rows across the CPU's cores."""
    out = np.empty_like(src)
    parallel_copy_into(out, src)
    return out


def _pool() -> ThreadPoolExecutor:
    global _copy_pool
    if _copy_pool is None:
        _copy_pool = ThreadPoolExecutor(max_workers=7, thread_name_prefix="replay-copy")
    return _copy_pool


def parallel_copy_into(out: np.ndarray, src: np.ndarray) -> None:
    """`out[...] = src`, split along the first axis across the CPU's cores.

    One thread cannot saturate memory bandwidth: on 2 cores a Pythia batch (4 MiB) copies out
    of the page cache about 1.5x faster in two halves (numpy releases the GIL while copying)."""
    parts = min(len(src), len(os.sched_getaffinity(0)), 8)
    if src.nbytes < PARALLEL_COPY_BYTES or parts < 2:
        np.copyto(out, src)
        return
    bounds = np.linspace(0, len(src), parts + 1).astype(int)
    futures = [
        _pool().submit(np.copyto, out[a:b], src[a:b]) for a, b in zip(bounds[1:-1], bounds[2:])
    ]
    np.copyto(out[: bounds[1]], src[: bounds[1]])
    for future in futures:
        future.result()


def parallel_copy_pairs(pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """`dst[...] = src` for each pair of 1-D byte arrays (a batch gathered from several
    shards), the total cut into one equal span per core whatever the pieces' sizes."""
    total = sum(dst.size for dst, _ in pairs)
    parts = min(len(os.sched_getaffinity(0)), 8)
    if total < PARALLEL_COPY_BYTES or parts < 2:
        for dst, src in pairs:
            np.copyto(dst, src)
        return
    span = -(-total // parts)
    tasks: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(parts)]
    at = 0
    for dst, src in pairs:
        pos = 0
        while pos < dst.size:
            take = min(dst.size - pos, (at // span + 1) * span - at)
            tasks[at // span].append((dst[pos : pos + take], src[pos : pos + take]))
            pos, at = pos + take, at + take
    futures = [_pool().submit(_copy_all, task) for task in tasks[1:]]
    _copy_all(tasks[0])
    for future in futures:
        future.result()


def _copy_all(pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    for dst, src in pairs:
        np.copyto(dst, src)


class RowStore(Protocol):
    """Where a `TrainData`'s rows come from: a mapped merged file, or shards (local/remote)."""

    @property
    def dtype(self) -> np.dtype: ...

    def read(self, start: int, end: int) -> np.ndarray:
        """Rows [start, end) as a new [end - start, width] array (bounds already checked)."""
        ...


@dataclass(frozen=True)
class MappedRows:
    """A merged `.bin` memory-mapped as one [rows, width] matrix."""

    tokens: np.ndarray

    @property
    def dtype(self) -> np.dtype:
        return self.tokens.dtype

    def read(self, start: int, end: int) -> np.ndarray:
        return parallel_copy(self.tokens[start:end])


def _as_prefix(path: Path) -> Path:
    return path.with_suffix("") if path.suffix in (".bin", ".idx") else path


class _Steps(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def num_rows(self) -> int: ...
    @property
    def num_steps(self) -> int: ...


def check_step(data: _Steps, step: int, field_name: str = "step", *, seen: bool = False) -> None:
    """See `TrainData.check_step`."""
    if seen and not 0 <= step * data.batch_size <= data.num_rows:
        raise DataError(
            f"{data.name}: field '{field_name}': step {step} needs rows [0, "
            f"{step * data.batch_size}) but the data has {data.num_rows} rows "
            f"({data.num_rows // data.batch_size} steps of {data.batch_size}): past the end "
            "of the data"
        )
    if not seen and not 0 <= step < data.num_steps:
        raise DataError(
            f"{data.name}: field '{field_name}': {step} is past the end of the "
            f"data (steps 0..{data.num_steps - 1} of {data.batch_size} rows)"
        )


@dataclass(kw_only=True)
class TrainData:
    name: str  # the path the data was opened from (for messages)
    prefix: Path  # the train .bin/.idx prefix
    directory: Path | None  # the prepared DIR, None for a bare prefix
    batch_size: int
    seq_length: int
    num_rows: int
    vocab_size: int | None
    manifest: Manifest | None
    store: RowStore = field(repr=False)  # the rows: a mapped merged file, or shards
    batch_hashes: list[str] | None = field(default=None, repr=False)  # per step, from prepare
    identity: str | None = None  # names the data without reading it: the idx sha256 (hub)

    @classmethod
    def open(cls, path: str | Path, batch_size: int | None = None) -> TrainData:
        """Open a prepared DIR (settings from its manifest) or a bare `.bin/.idx` prefix."""
        path = Path(path)
        manifest = None
        if path.is_dir():
            manifest = Manifest.read(path)
            prefix, directory = path / "train", path
        else:
            prefix, directory = _as_prefix(path), None
        ds = open_indexed(prefix)
        dtype = np.dtype(ds.index.dtype)
        lengths, pointers = ds.sequence_lengths, ds.index.sequence_pointers
        n, row, last_row = len(lengths), int(lengths[0]), int(lengths[-1])
        last_pointer = int(pointers[-1])
        del ds, lengths, pointers  # megatron-core unmaps its index when ds is collected
        bin_path = Path(str(prefix) + ".bin")
        if (
            last_row != row
            or last_pointer != (n - 1) * row * dtype.itemsize
            or bin_path.stat().st_size != n * row * dtype.itemsize
        ):
            raise DataError(
                f"{prefix}.idx: field 'sequence_lengths': rows are not all "
                f"{row} tokens (not a train-style file)"
            )
        hashes = None
        if manifest is not None:
            hashes = _batch_hashes(path, manifest, rows=n)
            _check_manifest(manifest, rows=n, row_length=row, dtype=dtype)
            manifest.check_fingerprint()
        if batch_size is None:
            batch_size = manifest.batch_size if manifest is not None else PYTHIA_BATCH_SIZE
        if batch_size < 1:
            raise DataError(f"--batch-size: must be a positive integer, got {batch_size}")
        if manifest is not None and batch_size != manifest.batch_size:
            hashes = None  # they hash batches of the manifest's size
        tokens = map_rows(bin_path, dtype, n, row)
        return cls(
            name=str(path),
            prefix=prefix,
            directory=directory,
            batch_size=batch_size,
            seq_length=row - 1,
            num_rows=n,
            vocab_size=manifest.vocab_size if manifest else None,
            manifest=manifest,
            store=MappedRows(tokens),
            batch_hashes=hashes,
        )

    @property
    def fingerprint(self) -> str | None:
        """The manifest's fingerprint (None for a bare prefix): names the data by content."""
        return None if self.manifest is None else self.manifest.fingerprint

    def checked_batch(self, step: int) -> np.ndarray:
        """`batch(step)`, refused (ValueError naming train.bin and the step) unless its
        batch_sha256 equals the one prepare recorded. Without recorded hashes: `batch(step)`."""
        batch = self.batch(step)
        if self.batch_hashes is not None:
            digest = batch_sha256(batch)
            if digest != self.batch_hashes[step]:
                raise DataError(
                    f"{self.prefix}.bin: step {step}: batch_sha256 {digest[:12]}... differs from "
                    f"{BATCH_HASHES}:{step + 1} ({self.batch_hashes[step][:12]}...); the data "
                    "changed after prepare (`pythia-suite verify` checks every file)"
                )
        return batch

    @property
    def num_steps(self) -> int:
        """Trainable steps: a prepared DIR's `steps` (the rows after them are held out), else all."""
        steps = self.num_rows // self.batch_size
        if self.manifest is not None and self.batch_size == self.manifest.batch_size:
            steps = min(steps, self.manifest.steps)
        return steps

    @property
    def dtype(self) -> np.dtype:
        return self.store.dtype

    @property
    def tokens(self) -> np.ndarray:
        """The mapped [num_rows, width] matrix of a merged file (`rows()` reads any source)."""
        if not isinstance(self.store, MappedRows):
            raise DataError(f"{self.name}: not a merged file; read it with rows(start, end)")
        return self.store.tokens

    def rows(self, start: int, end: int) -> np.ndarray:
        """Rows [start, end) as a copy in the stored dtype."""
        if not (0 <= start <= end <= self.num_rows):
            raise DataError(
                f"{self.name}: field 'rows': [{start}, {end}) is outside [0, {self.num_rows})"
            )
        return self.store.read(start, end)

    def batch(self, step: int) -> np.ndarray:
        """Rows [step * B, (step + 1) * B): the batch that takes checkpoint step to step + 1."""
        self.check_step(step)
        return self.rows(step * self.batch_size, (step + 1) * self.batch_size)

    def check_step(self, step: int, field_name: str = "step", *, seen: bool = False) -> None:
        """The one range check of a step (DataError naming `field_name`): the batch at `step`
        exists (0 <= step < num_steps); with `seen`, the checkpoint at `step` has seen rows
        [0, step * B) of the data (0 <= step <= num_rows // B)."""
        check_step(self, step, field_name, seen=seen)

    def provenance(self, row: int) -> list[dict[str, Any]]:
        """The documents row `row` is made of, in order, with their token spans."""
        return self._provenance.of_row(row)

    @cached_property
    def _provenance(self) -> _Provenance:
        if self.directory is None:
            raise DataError(f"{self.name}: provenance needs a prepared data directory")
        sources = self.manifest.sources if self.manifest is not None else ()
        return _Provenance.load(self.directory, sources, self.num_rows)


def _batch_hashes(path: Path, manifest: Manifest, *, rows: int) -> list[str] | None:
    """The recorded per-step hashes, checked against the manifest's batch_size (None for data
    prepared before they were recorded)."""
    if BATCH_HASHES not in manifest.files:
        log.warning(
            "%s: no %s (prepared by an older version): batches are not checked", path, BATCH_HASHES
        )
        return None
    hashes = read_batch_hashes(path / BATCH_HASHES)
    batch_size = manifest.batch_size
    if batch_size < 1 or len(hashes) != rows // batch_size:
        raise DataError(
            f"{manifest.path}: field 'batch_size': {batch_size} does not match {BATCH_HASHES} "
            f"({len(hashes)} batches recorded for {rows} rows)"
        )
    return hashes


def _check_manifest(manifest: Manifest, *, rows: int, row_length: int, dtype: np.dtype) -> None:
    """DataError naming the manifest's field that disagrees with the train files."""
    where = manifest.path
    for name in ("batch_size", "steps", "seq_length", "num_samples", "vocab_size"):
        if getattr(manifest, name) < 1:
            raise DataError(f"{where}: field '{name}': must be >= 1, got {getattr(manifest, name)}")
    m = manifest
    if m.steps * m.batch_size > rows:
        raise DataError(
            f"{where}: field 'steps': {m.steps} steps of "
            f"{m.batch_size} rows need more than the {rows} train rows"
        )
    if token_dtype(m.vocab_size) != dtype:
        raise DataError(
            f"{where}: field 'vocab_size': {m.vocab_size} does not fit train's {dtype} tokens"
        )
    if not 0 <= m.eod_id < m.vocab_size:
        raise DataError(
            f"{where}: field 'eod_id': {m.eod_id} is outside the vocabulary of {m.vocab_size}"
        )
    if m.seq_length + 1 != row_length:
        raise DataError(
            f"{where}: field 'seq_length': {m.seq_length} does not match "
            f"train rows of {row_length} tokens"
        )
    if m.num_samples != rows:
        raise DataError(f"{where}: field 'num_samples': {m.num_samples} but train has {rows} rows")
    if m.dtype != dtype.name:
        raise DataError(f"{where}: field 'dtype': {m.dtype} but train is {dtype}")


@dataclass(kw_only=True)
class _Provenance:
    doc_idx: np.ndarray
    sample_idx: np.ndarray
    shuffle_idx: np.ndarray
    doc_sources: np.ndarray
    doc_lines: np.ndarray
    sizes: np.ndarray
    sources: list[str]
    num_rows: int

    @classmethod
    def load(cls, directory: Path, sources: tuple[str, ...], num_rows: int) -> _Provenance:
        arrays = {}
        for name in ("doc_idx", "sample_idx", "shuffle_idx", "doc_sources", "doc_lines"):
            path = directory / f"{name}.npy"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such file (needed for provenance)")
            arrays[name] = np.load(path, mmap_mode="r", allow_pickle=False)
        sizes, _ = document_arrays(directory / "documents")
        return cls(**arrays, sizes=sizes, sources=list(sources), num_rows=num_rows)

    def of_row(self, row: int) -> list[dict[str, Any]]:
        if not (0 <= row < self.num_rows):
            raise DataError(f"field 'row': {row} is outside [0, {self.num_rows})")
        sample = int(self.shuffle_idx[row])
        (k0, o0), (k1, o1) = self.sample_idx[sample], self.sample_idx[sample + 1]
        out, at = [], 0
        for k in range(int(k0), int(k1) + 1):
            doc = int(self.doc_idx[k])
            start = int(o0) if k == k0 else 0
            end = int(o1) + 1 if k == k1 else int(self.sizes[doc])
            out.append(
                {
                    "doc": doc,
                    "line": int(self.doc_lines[doc]),
                    "pile_set_name": self.sources[int(self.doc_sources[doc])],
                    "doc_start": start,
                    "doc_end": end,
                    "row_start": at,
                    "row_end": at + end - start,
                }
            )
            at += end - start
        return out


@dataclass(kw_only=True)
class TransformedData:
    """A run's view of its data: `batch(step)` as that run's model saw it."""

    data: TrainData
    transform: dict[str, Any] | None
    run: Path

    @property
    def batch_size(self) -> int:
        return self.data.batch_size

    @property
    def seq_length(self) -> int:
        return self.data.seq_length

    @property
    def num_steps(self) -> int:
        return self.data.num_steps

    @property
    def num_rows(self) -> int:
        return self.data.num_rows

    @property
    def name(self) -> str:
        return str(self.run)

    def check_step(self, step: int, field_name: str = "step", *, seen: bool = False) -> None:
        """`TrainData.check_step` on the run's data (named by the run)."""
        check_step(self, step, field_name, seen=seen)

    def batch(self, step: int) -> np.ndarray:
        return apply_transform(self.transform, self.data.batch(step), step)

    def rows(self, start: int, end: int) -> np.ndarray:
        """Rows [start, end) as the model saw them (each row transformed at its own step)."""
        out = self.data.rows(start, end)
        if self.transform is None or start == end:
            return out
        b = self.batch_size
        for step in range(start // b, (end - 1) // b + 1):
            lo, hi = max(start, step * b) - start, min(end, (step + 1) * b) - start
            out[lo:hi] = apply_transform(self.transform, out[lo:hi], step)
        return out
