"""`verify_data(DIR)`: recheck everything a prepared data directory claims about itself.

1. The manifest is consistent with the files (what `TrainData.open` checks on every open:
   row length, row count, dtype, batch size against the per-step hash table, fingerprint).
2. Every file the manifest lists has its recorded sha256; no other file is present.
3. Every full batch of `train.bin` has the batch_sha256 recorded in `batch_sha256.txt`.
4. The index arrays (`doc_idx`, `sample_idx`, `shuffle_idx`) equal GPT-NeoX's mapping rebuilt
   from `documents.idx` and the manifest's seed, seq_length and num_samples; `doc_sources` and
   `doc_lines` have one entry per document.
5. Every row of `train.bin` equals the tokens of `documents.bin` that mapping points at.
Problems are collected (one message each, naming the file), not raised, so that one run of
`pythia-suite verify` reports all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dataloader_replay.batch_hashes import BATCH_HASHES, batch_sha256
from dataloader_replay.indexed import document_arrays
from dataloader_replay.mapping import build_index_mapping, row_token_positions, stream_ends
from dataloader_replay.replay import TrainData
from suite_core.hashing import sha256_file
from suite_core.layout import MANIFEST
from suite_core.records import Manifest

log = logging.getLogger(__name__)
INDEX_ARRAYS = ("doc_idx", "sample_idx", "shuffle_idx")
PER_DOCUMENT = ("doc_sources", "doc_lines")
ROWS_PER_CHUNK = 256


@dataclass(kw_only=True)
class DataReport:
    """What `verify_data` checked and the problems it found (empty: all good)."""

    directory: Path
    files: int = 0
    batches: int = 0
    rows: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.directory}: {self.files} file hashes, {self.batches} batch hashes, "
            f"{self.rows} rows against documents.bin and the index arrays"
        )


def verify_data(directory: str | Path) -> DataReport:
    """Check a prepared data directory; see the module docstring."""
    directory = Path(directory)
    report = DataReport(directory=directory)
    try:
        data = TrainData.open(directory)
    except (ValueError, OSError) as exc:
        report.problems.append(str(exc))
        _check_files(directory, report)  # still say which file is damaged, if one is
        return report
    if data.directory is None or data.manifest is None:
        report.problems.append(f"{directory}: not a prepared data directory (no {MANIFEST})")
        return report
    for check in (
        _check_files,
        lambda d, r: _check_batches(data, r),
        lambda d, r: _check_mapping(data, r),
    ):
        _guarded(check, directory, report)
    return report


def _guarded(
    check: Callable[[Path, DataReport], None], directory: Path, report: DataReport
) -> None:
    try:
        check(directory, report)
    except (ValueError, OSError) as exc:
        report.problems.append(str(exc))


def _check_files(directory: Path, report: DataReport) -> None:
    try:
        files = Manifest.read(directory).files
    except (ValueError, OSError):
        return  # already reported by the caller
    if BATCH_HASHES not in files:
        report.problems.append(
            f"{directory / MANIFEST}: field 'files': {BATCH_HASHES} is not "
            "listed (prepared by an older version: prepare it again)"
        )
    for name, expected in sorted(files.items()):
        path = directory / name
        if "/" in name or not path.is_file():
            report.problems.append(f"{path}: listed in {MANIFEST} but missing")
        elif (actual := sha256_file(path)) != expected:
            report.problems.append(
                f"{path}: sha256 mismatch with {MANIFEST} (expected "
                f"{expected[:12]}..., got {actual[:12]}...)"
            )
        report.files += 1
    for path in sorted(directory.iterdir()):
        if path.name != MANIFEST and path.name not in files:
            report.problems.append(f"{path}: not listed in {MANIFEST}")


def _check_batches(data: TrainData, report: DataReport) -> None:
    if data.batch_hashes is None:
        return
    for step in tqdm(range(data.num_steps), desc="batch hashes", unit="step", disable=None):
        if batch_sha256(data.batch(step)) != data.batch_hashes[step]:
            report.problems.append(
                f"{data.prefix}.bin: step {step}: batch_sha256 differs "
                f"from {BATCH_HASHES}:{step + 1}"
            )
        report.batches += 1


def _check_mapping(data: TrainData, report: DataReport) -> None:
    directory, manifest = data.directory, data.manifest
    assert directory is not None and manifest is not None
    sizes, doc_starts = document_arrays(directory / "documents")
    if manifest.num_documents not in (None, len(sizes)):
        report.problems.append(
            f"{directory / MANIFEST}: field 'num_documents': "
            f"{manifest.num_documents} but documents.idx holds {len(sizes)}"
        )
        return
    mapping = build_index_mapping(
        sizes,
        seq_length=manifest.seq_length,
        num_samples=manifest.num_samples,
        seed=manifest.seed,
    )
    bad = False
    for name in INDEX_ARRAYS + PER_DOCUMENT:
        path = directory / f"{name}.npy"
        stored = np.load(path, allow_pickle=False)
        if name in INDEX_ARRAYS:
            expected = getattr(mapping, name)
            same = stored.dtype == expected.dtype and np.array_equal(stored, expected)
            if not same:
                report.problems.append(
                    f"{path}: differs from the mapping rebuilt from "
                    f"documents.idx and {MANIFEST} (seed {manifest.seed})"
                )
                bad = True
        elif len(stored) != len(sizes):
            report.problems.append(f"{path}: {len(stored)} entries for {len(sizes)} documents")
    if bad:
        return
    ends = stream_ends(sizes, mapping.doc_idx)
    documents = np.memmap(directory / "documents.bin", dtype=data.dtype, mode="r")
    for start in range(0, data.num_rows, ROWS_PER_CHUNK):
        rows = np.arange(start, min(start + ROWS_PER_CHUNK, data.num_rows), dtype=np.int64)
        pos = row_token_positions(mapping, sizes, doc_starts, ends, rows, data.seq_length)
        differ = np.flatnonzero((documents[pos] != data.tokens[rows]).any(axis=1))
        if len(differ):
            report.problems.append(
                f"{data.prefix}.bin: row {int(rows[differ[0]])} differs from "
                "the documents.bin tokens the index mapping points at"
            )
            return
        report.rows += len(rows)
