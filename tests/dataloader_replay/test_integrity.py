"""Prepared data verified before use: per-step batch hashes, the fingerprint, `verify_data`,
the manifest checked against the files, strict metrics for `replay --verify`, leftovers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dataloader_replay.batch_hashes import BATCH_HASHES, batch_sha256, read_batch_hashes
from dataloader_replay.integrity import verify_data
from dataloader_replay.replay import TrainData
from dataloader_replay.verify import verify_run
from suite_core.hashing import sha256_file
from suite_core.records import compute_fingerprint
from tests.dataloader_replay.conftest import PREPARED, Corpus


@pytest.fixture
def data(prepared: Path, tmp_path: Path) -> Path:
    out = tmp_path / "data"
    shutil.copytree(prepared, out)
    return out


def flip(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def edit_manifest(directory: Path, **fields: object) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest.update(fields)
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def test_prepare_records_every_batch_hash(prepared: Path) -> None:
    td = TrainData.open(prepared)
    manifest = json.loads((prepared / "manifest.json").read_text())
    hashes = read_batch_hashes(prepared / BATCH_HASHES)
    assert len(hashes) == td.num_rows // td.batch_size == 40
    assert hashes == [batch_sha256(td.batch(s)) for s in range(td.num_steps)]
    assert manifest["files"][BATCH_HASHES] == sha256_file(prepared / BATCH_HASHES)
    assert manifest["fingerprint"] == compute_fingerprint(manifest) == td.fingerprint
    report = verify_data(prepared)
    assert report.problems == []
    assert (report.files, report.batches, report.rows) == (len(manifest["files"]), 40, td.num_rows)
    assert td.num_rows == 161  # ceil(40 * 4 * 1.005): one held-out row


def test_flipped_byte_in_a_future_batch_is_refused_before_use(data: Path) -> None:
    td = TrainData.open(data)
    row_bytes = (td.seq_length + 1) * td.dtype.itemsize
    flip(data / "train.bin", 33 * td.batch_size * row_bytes + 5)  # inside the batch of step 33
    td = TrainData.open(data)  # opening does not read every batch ...
    for step in range(33):
        td.checked_batch(step)
    with pytest.raises(
        ValueError,
        match=r"train\.bin: step 33: batch_sha256 .* differs from "
        r"batch_sha256\.txt:34",
    ):
        td.checked_batch(33)  # ... each batch is checked before it is used
    problems = verify_data(data).problems
    assert any("train.bin: sha256 mismatch" in p for p in problems)
    assert any("train.bin: step 33: batch_sha256 differs" in p for p in problems)


@pytest.mark.parametrize(
    "name",
    [
        "documents.bin",
        "doc_idx.npy",
        "sample_idx.npy",
        "shuffle_idx.npy",
        "doc_sources.npy",
        "doc_lines.npy",
        "documents.idx",
        "tokenizer.json",
        BATCH_HASHES,
    ],
)
def test_verify_names_every_damaged_file(data: Path, name: str) -> None:
    path = data / name
    flip(path, path.stat().st_size - 1)
    problems = verify_data(data).problems
    assert problems and any(str(path) in p for p in problems), problems


def test_index_arrays_must_be_the_mapping_of_the_seed(data: Path) -> None:
    shuffle = np.load(data / "shuffle_idx.npy")
    shuffle[[0, 1]] = shuffle[[1, 0]]
    np.save(data / "shuffle_idx.npy", shuffle)
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["files"]["shuffle_idx.npy"] = sha256_file(data / "shuffle_idx.npy")
    manifest["fingerprint"] = compute_fingerprint(manifest)  # a consistent forgery of the hashes
    (data / "manifest.json").write_text(json.dumps(manifest))
    problems = verify_data(data).problems
    assert problems == [
        (
            f"{data / 'shuffle_idx.npy'}: differs from the mapping rebuilt from "
            f"documents.idx and manifest.json (seed {PREPARED['seed']})"
        )
    ]


@pytest.mark.parametrize(
    "fields, needle",
    [
        ({"batch_size": 8}, "field 'batch_size': 8 does not match batch_sha256.txt"),
        ({"batch_size": 5}, "field 'batch_size': 5 does not match batch_sha256.txt"),
        ({"steps": 41}, "field 'steps': 41 steps of 4 rows need more"),
        ({"seed": 99}, "field 'fingerprint': does not match"),
        ({"vocab_size": 70000}, "field 'vocab_size': 70000 does not fit"),
        ({"eod_id": 5000}, "field 'eod_id'"),
    ],
)
def test_an_edited_manifest_is_refused(data: Path, fields: dict, needle: str) -> None:
    edit_manifest(data, **fields)
    with pytest.raises(ValueError, match="manifest.json: ") as err:
        TrainData.open(data)
    assert needle in str(err.value)
    assert verify_data(data).problems == [str(err.value)]


def test_fingerprint_names_content_not_place(
    data: Path, prepared: Path, tmp_path: Path, corpus: Corpus, small_tokenizer: Path
) -> None:
    moved = tmp_path / "elsewhere" / "d"
    shutil.move(data, moved)
    assert TrainData.open(moved).fingerprint == TrainData.open(prepared).fingerprint
    from dataloader_replay.prepare import prepare

    copy = tmp_path / "corpus_copy.jsonl"  # same bytes given by another path: same data
    shutil.copyfile(corpus.path, copy)
    again = prepare(copy, small_tokenizer, tmp_path / "again", **PREPARED)
    assert again.fingerprint == TrainData.open(prepared).fingerprint
    other = prepare(copy, small_tokenizer, tmp_path / "other", **{**PREPARED, "seed": 7})
    assert other.fingerprint != again.fingerprint


def test_leftovers_of_a_killed_prepare_are_removed(
    corpus: Corpus, small_tokenizer: Path, tmp_path: Path, prepared: Path
) -> None:
    from dataloader_replay.prepare import prepare

    stale_dir = tmp_path / ".data.abcd_123.tmp"  # what a SIGKILLed prepare leaves
    stale_dir.mkdir()
    (stale_dir / "train.bin").write_bytes(b"\0" * 10)
    unrelated = tmp_path / ".database.abcdefgh.tmp"
    unrelated.mkdir()
    prepare(corpus.path, small_tokenizer, tmp_path / "data", **PREPARED)
    assert not stale_dir.exists() and unrelated.exists()
    for name in (p.name for p in prepared.iterdir()):
        assert (tmp_path / "data" / name).read_bytes() == (prepared / name).read_bytes(), name


def make_run(run: Path, data: Path, steps: int) -> list[str]:
    td = TrainData.open(data)
    run.mkdir()
    (run / "run.json").write_text(
        json.dumps({"data": {"path": str(data), "transform": None, "fingerprint": td.fingerprint}})
    )
    hashes = [batch_sha256(td.batch(s)) for s in range(steps)]
    (run / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": n, "batch_sha256": h}) + "\n" for n, h in enumerate(hashes, 1))
    )
    return hashes


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda ls: ls[:2] + ["{}\n"] + ls[2:], ":3: field 'step' must be an integer"),
        (lambda ls: ls[:2] + ls[3:], ":3: field 'step': skips to 4 where step 3 was expected"),
        (lambda ls: ls[:3] + ls[2:], ":4: field 'step': repeats 3 where step 4 was expected"),
        (lambda ls: ls[:2] + ["\n"] + ls[2:], ":3: malformed JSON"),
        (lambda ls: ls[:-1] + [ls[-1][:20]], ":6: unterminated last line"),
        (lambda ls: [ls[0].replace('"batch_sha256"', '"other"')] + ls[1:], ":1: field 'batch_sha2"),
    ],
)
def test_replay_verify_requires_steps_one_to_n(
    prepared: Path, tmp_path: Path, edit, needle: str
) -> None:
    run = tmp_path / "run"
    make_run(run, prepared, 6)
    assert verify_run(run).checked == 6
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run / "metrics.jsonl").write_text("".join(edit(lines)))
    with pytest.raises(ValueError, match="metrics.jsonl") as err:
        verify_run(run)
    assert needle in str(err.value)


def test_a_run_refuses_other_data_at_its_path(
    prepared: Path, tmp_path: Path, corpus: Corpus, small_tokenizer: Path
) -> None:
    from dataloader_replay.prepare import prepare
    from dataloader_replay.sources import open_run

    data = tmp_path / "data"
    shutil.copytree(prepared, data)
    make_run(tmp_path / "run", data, 3)
    shutil.rmtree(data)
    with pytest.raises(FileNotFoundError, match="field 'data.path'.*moved"):
        open_run(tmp_path / "run")
    prepare(corpus.path, small_tokenizer, data, **{**PREPARED, "seed": 7})
    with pytest.raises(ValueError, match="field 'data.fingerprint'.*holds other data"):
        open_run(tmp_path / "run")
