"""Replay: batch s is rows [sB, (s+1)B), read directly; Pythia's preshuffled layout; runs."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from dataloader_replay.batch_hashes import batch_sha256
from dataloader_replay.replay import PYTHIA_BATCH_SIZE, TrainData
from dataloader_replay.sources import open_run
from dataloader_replay.verify import verify_run
from tests.dataloader_replay.conftest import PREPARED, Corpus
from tests.dataloader_replay.neox_reference import ref_rows


def test_batch_is_rows_of_its_step(prepared: Path, corpus: Corpus) -> None:
    td = TrainData.open(prepared)
    B, steps = PREPARED["batch_size"], PREPARED["steps"]
    assert (td.batch_size, td.seq_length, td.num_steps, td.num_rows) == (
        B,
        PREPARED["seq_length"],
        steps,
        161,
    )  # ceil(steps * B * 1.005): one held-out row
    _, rows = ref_rows(corpus.docs, PREPARED["seq_length"], steps * B, PREPARED["seed"])
    for step in (steps - 1, 0, 17, 3):  # out of order: no earlier batch is needed
        batch = td.batch(step)
        assert batch.dtype == np.uint16 and batch.shape == (B, PREPARED["seq_length"] + 1)
        assert batch.tolist() == rows[step * B : (step + 1) * B]
        assert batch.flags.writeable and batch.flags.owndata  # a copy, not a view
    assert td.rows(5, 11).tolist() == rows[5:11]


@pytest.mark.parametrize("step", [-1, PREPARED["steps"], 10**6])
def test_step_outside_the_data(prepared: Path, step: int) -> None:
    with pytest.raises(ValueError, match=f"field 'step': {step} is past the end"):
        TrainData.open(prepared).batch(step)


def test_batch_sha256_is_int32_little_endian_bytes() -> None:
    a = np.array([[1, 2, 300], [4, 65535, 6]], dtype=np.uint16)
    expected = hashlib.sha256(np.array([1, 2, 300, 4, 65535, 6], "<i4").tobytes()).hexdigest()
    assert batch_sha256(a) == expected == batch_sha256(a.astype(np.int64))
    assert batch_sha256(np.asfortranarray(a.astype(">i4"))) == expected
    assert batch_sha256(a[::-1]) != expected


def _write_preshuffled(prefix: Path, rows: np.ndarray) -> None:
    """Pythia's layout: one document per row, all rows seq_length + 1 tokens, uint16."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder
    builder = IndexedDatasetBuilder(str(prefix) + ".bin", dtype=np.uint16)
    for row in rows:
        builder.add_document(row, [row.size])
    builder.finalize(str(prefix) + ".idx")


def test_pythia_preshuffled_layout(tmp_path: Path) -> None:
    width, steps = 2049, 2
    rows = np.random.default_rng(0).integers(
        0, 50_277, (steps * PYTHIA_BATCH_SIZE, width), dtype=np.uint16
    )
    prefix = tmp_path / "document"
    _write_preshuffled(prefix, rows)
    td = TrainData.open(prefix)
    assert (td.batch_size, td.seq_length, td.num_steps, td.vocab_size) == (1024, 2048, 2, None)
    np.testing.assert_array_equal(td.batch(1), rows[1024:2048])
    small = TrainData.open(str(prefix) + ".bin", batch_size=256)
    assert small.num_steps == 8
    np.testing.assert_array_equal(small.batch(5), rows[1280:1536])
    with pytest.raises(ValueError, match="provenance needs a prepared data directory"):
        td.provenance(0)


def test_ragged_file_is_not_train_style(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder
    builder = IndexedDatasetBuilder(str(tmp_path / "x.bin"), dtype=np.uint16)
    for n in (5, 6, 5):
        builder.add_document(np.arange(n), [n])
    builder.finalize(str(tmp_path / "x.idx"))
    with pytest.raises(ValueError, match=r"x\.idx: field 'sequence_lengths'"):
        TrainData.open(tmp_path / "x")


def make_run(run: Path, data: Path, transform: dict | None, steps: int) -> list[str]:
    """A run directory as the trainer writes it; returns the logged hashes."""
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"data": {"path": str(data), "transform": transform}}))
    td = TrainData.open(data)
    from dataloader_replay.transforms import apply_transform

    hashes = [
        batch_sha256(apply_transform(transform, td.batch(n - 1), n - 1))
        for n in range(1, steps + 1)
    ]
    lines = [
        json.dumps({"step": n, "loss": 1.0, "batch_sha256": h})
        for n, h in enumerate(hashes, start=1)
    ]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return hashes


def test_run_replay_applies_transform_and_verifies(prepared: Path, tmp_path: Path) -> None:
    td = TrainData.open(prepared)
    a, b = int(td.batch(5)[0, 0]), int(td.batch(5)[0, 1])
    spec = {"name": "token_swap", "pairs": [[a, b]], "start_step": 5}
    make_run(tmp_path / "run", prepared, spec, steps=8)
    view = open_run(tmp_path / "run")
    assert view.batch(4).tolist() == td.batch(4).tolist()  # before start_step
    seen = view.batch(5)
    assert (seen[0, 0], seen[0, 1]) == (b, a)
    raw = td.batch(5)
    assert np.array_equal(seen == a, raw == b) and np.array_equal(seen == b, raw == a)
    result = verify_run(tmp_path / "run")
    assert result.checked == 8 and result.mismatch is None


def test_verify_names_first_mismatch(prepared: Path, tmp_path: Path) -> None:
    hashes = make_run(tmp_path / "run", prepared, None, steps=6)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    lines[3] = lines[3].replace(hashes[3], hashes[2])  # step 4 logs step 3's batch
    lines[5] = lines[5].replace(hashes[5], "0" * 64)
    (tmp_path / "run" / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    result = verify_run(tmp_path / "run")
    assert result.checked == 3 and result.mismatch is not None
    assert (result.mismatch.step, result.mismatch.line) == (4, 4)
    assert result.mismatch.replayed == hashes[3]


def test_run_with_bad_transform(prepared: Path, tmp_path: Path) -> None:
    make_run(tmp_path / "run", prepared, None, steps=1)
    (tmp_path / "run" / "run.json").write_text(
        json.dumps(
            {"data": {"path": str(prepared), "transform": {"name": "token_swap", "pairs": [[1]]}}}
        )
    )
    with pytest.raises(ValueError, match=r"run\.json: data\.transform: field 'pairs\[0\]'"):
        open_run(tmp_path / "run")


@pytest.mark.parametrize("shape", [(1, 7), (3, 5), (1027, 1031)])  # below and above the 1 MiB split
def test_parallel_copy_is_an_exact_contiguous_copy(shape: tuple[int, int]) -> None:
    from dataloader_replay.replay import parallel_copy

    src = np.random.default_rng(0).integers(0, 60_000, shape, dtype=np.uint16)
    out = parallel_copy(src[:, :])
    assert out.flags.c_contiguous and out.dtype == src.dtype and np.array_equal(out, src)
    assert not np.shares_memory(out, src)
