"""EleutherAI's sharded layout read in place: bit-identical to the merged file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from dataloader_replay.indexed import megatron_indexed
from dataloader_replay.pythia_facts import DATASETS
from dataloader_replay.replay import TrainData
from dataloader_replay.shards import ShardedRows
from dataloader_replay.sources import open_source, plan_steps
from suite_core import DataError
from tests.dataloader_replay.shard_data import (
    as_hf_snapshot,
    random_rows,
    sha256_of,
    uniform_cuts,
    write_merged,
    write_shards,
)

WIDTH, ROWS, B = 7, 96, 8  # rows of 14 bytes, 12 steps
ODD_CUTS = [13, 17, 21, 501, 1000, 1300]  # row 1 = bytes [14, 28) spans shards 1, 2, 3


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("merged")
    return write_merged(root / "train", random_rows(ROWS, WIDTH, seed=3))


def shards(tmp_path: Path, merged: Path, cuts: list[int]) -> Path:
    write_shards(merged, tmp_path / "shards", cuts)
    return tmp_path / "shards"


def test_odd_cuts_bit_identical_to_merged_and_to_megatron(tmp_path: Path, merged: Path) -> None:
    folder = shards(tmp_path, merged, ODD_CUTS)
    assert (folder / "document-00006-of-00006.bin").stat().st_size == 44  # the last is short
    sharded, whole = open_source(folder, batch_size=B), TrainData.open(merged, batch_size=B)
    assert isinstance(sharded.store, ShardedRows)
    assert (sharded.num_rows, sharded.seq_length, sharded.num_steps) == (ROWS, WIDTH - 1, 12)
    for step in range(sharded.num_steps):
        assert np.array_equal(sharded.batch(step), whole.batch(step))
    ds = megatron_indexed().IndexedDataset(str(merged))  # the oracle: megatron-core's reader
    for a, b in [(1, 2), (0, 3), (37, 38), (90, 96), (0, ROWS)]:
        got = sharded.rows(a, b)
        assert got.dtype == np.uint16
        assert np.array_equal(got, np.stack([ds[i] for i in range(a, b)]))


def test_plan_names_three_shards_for_the_split_row(tmp_path: Path, merged: Path) -> None:
    data = open_source(shards(tmp_path, merged, ODD_CUTS), batch_size=1)
    pieces = plan_steps(data, 1, 2)
    assert [(p.name, p.start, p.end) for p in pieces[3:]] == [
        ("document-00001-of-00006.bin", 1, 4),
        ("document-00002-of-00006.bin", 0, 4),
        ("document-00003-of-00006.bin", 0, 7),
    ]
    # header + first length, then the row's int32 length and int64 pointer
    assert [(p.start, p.end) for p in pieces[:3]] == [
        (0, 38),
        (38, 42),
        (34 + 4 * ROWS + 8, 34 + 4 * ROWS + 16),
    ]


def test_missing_shard_uniform_sizes(tmp_path: Path, merged: Path) -> None:
    folder = shards(tmp_path, merged, uniform_cuts(ROWS * WIDTH * 2, 301))
    (folder / "document-00002-of-00004.bin").unlink()  # bytes [602, 903): rows 43..64
    data, whole = open_source(folder, batch_size=B), TrainData.open(merged, batch_size=B)
    for step in (0, 4, 9, 11):  # rows [0, 40) and [72, 96) lie in present shards
        assert np.array_equal(data.batch(step), whole.batch(step))
    for step in (5, 8):  # rows [40, 48) and [64, 72) touch the missing shard
        with pytest.raises(DataError, match=r"need document-00002-of-00004.bin, missing$"):
            data.batch(step)


def test_missing_shard_odd_sizes_names_what_cannot_be_placed(tmp_path: Path, merged: Path) -> None:
    folder = shards(tmp_path, merged, ODD_CUTS)
    (folder / "document-00004-of-00006.bin").unlink()  # [501, 1000): rows 35..71
    data, whole = open_source(folder, batch_size=B), TrainData.open(merged, batch_size=B)
    assert np.array_equal(data.batch(3), whole.batch(3))  # rows 24..31 lie before the gap
    with pytest.raises(DataError, match="need document-00004-of-00006.bin, missing"):
        data.batch(10)  # after the gap: unplaceable without the missing shard's size


def test_wrong_shard_size_is_named(tmp_path: Path, merged: Path) -> None:
    folder = shards(tmp_path, merged, uniform_cuts(ROWS * WIDTH * 2, 301))
    with open(folder / "document-00001-of-00004.bin", "r+b") as fh:
        fh.truncate(300)
    with pytest.raises(
        DataError,
        match=r"/document-00001-of-00004.bin: field 'size': the shards hold 1343 bytes but the idx needs 1344",
    ):
        open_source(folder)


def test_rows_of_other_lengths_are_refused(tmp_path: Path) -> None:
    rows = random_rows(10, WIDTH, seed=1)
    writer_prefix = tmp_path / "ragged"
    from dataloader_replay.indexed import IndexedWriter

    w = IndexedWriter(writer_prefix, np.dtype(np.uint16))
    for i, row in enumerate(rows):
        w.add(row[: WIDTH - (i == 4)])  # row 4 is one token short
    w.finalize()
    folder = tmp_path / "shards"
    write_shards(writer_prefix, folder, [33])
    with pytest.raises(
        DataError,
        match=r"document.idx: field 'sequence_pointers': row 9 starts at byte 124, rows of 7 uint16 tokens put it at 126",
    ):
        open_source(folder, batch_size=2)


def test_hf_snapshot_folder(tmp_path: Path, merged: Path) -> None:
    folder = shards(tmp_path, merged, ODD_CUTS)
    idx_sha = sha256_of(folder / "document.idx")
    snap = as_hf_snapshot(folder, tmp_path / "hub", "someone/some-data", "a" * 40)
    data, whole = open_source(snap, batch_size=B), TrainData.open(merged, batch_size=B)
    assert data.identity == idx_sha  # from the blob's name
    assert np.array_equal(data.rows(0, ROWS), whole.rows(0, ROWS))
    os.unlink(os.path.realpath(snap / "document-00005-of-00006.bin"))  # blob never downloaded
    data = open_source(snap, batch_size=B)
    with pytest.raises(DataError, match="need document-00005-of-00006.bin, missing"):
        data.batch(11)


def test_published_shape_enforced_at_pinned_revision_only(
    tmp_path: Path, merged: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pythia = DATASETS[0]
    pinned = as_hf_snapshot(
        shards(tmp_path / "a", merged, ODD_CUTS), tmp_path / "hub", pythia.repo_id, pythia.revision
    )
    with pytest.raises(DataError) as err:
        open_source(pinned)
    assert str(err.value) == (
        f"{pinned}/document.idx: field 'sequence_count': {ROWS}, published 146432000 "
        f"(EleutherAI's published shape at {pythia.repo_id}@{pythia.revision})"
    )
    other = as_hf_snapshot(
        shards(tmp_path / "b", merged, ODD_CUTS), tmp_path / "hub", pythia.repo_id, "b" * 40
    )
    with caplog.at_level(logging.WARNING):
        data = open_source(other, batch_size=B)
    assert data.num_rows == ROWS
    assert "is not the pinned revision 4647773ea142" in caplog.text


def test_cli_replay_find_and_plan_take_the_shards_folder(
    tmp_path: Path, merged: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pythia_suite.cli import main

    folder = shards(tmp_path, merged, ODD_CUTS)
    for src, out in ((folder, tmp_path / "s.npy"), (merged, tmp_path / "m.npy")):
        argv = ["replay", str(src), "--step", "2", "--end-step", "4", "--batch-size", "3"]
        assert main([*argv, "--out", str(out)]) == 0
    assert np.array_equal(np.load(tmp_path / "s.npy"), np.load(tmp_path / "m.npy"))
    capsys.readouterr()
    row = TrainData.open(merged, batch_size=B).rows(50, 51)[0]
    pattern = ",".join(map(str, row[2:5]))
    assert main(["find", str(folder), "--tokens", pattern, "--batch-size", str(B)]) == 0
    assert '{"row": 50, "step": 6, "offset": 2}' in capsys.readouterr().out.splitlines()
    folder = shards(tmp_path / "u", merged, uniform_cuts(ROWS * WIDTH * 2, 301))
    (folder / "document-00002-of-00004.bin").unlink()
    assert main(["data", "plan", str(folder), "--steps", "5:6", "--batch-size", str(B)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[3].endswith("document-00001-of-00004.bin\tbytes 259-300\t42")
    assert lines[4].endswith("document-00002-of-00004.bin\tbytes 0-69\t70  (missing)")
    assert lines[-1] == "total: 246 bytes in 5 ranges of 3 files (steps 5..5, rows 40..47)"
    out = tmp_path / "x.npy"
    argv = ["replay", str(folder), "--step", "5", "--batch-size", str(B), "--out", str(out)]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"pythia-suite: error: {folder}: bytes [560, 672) of the data need "
        "document-00002-of-00004.bin, missing\n"
    )
    assert not out.exists()


def test_verify_shards_against_a_table_and_the_published_one(
    tmp_path: Path, merged: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataloader_replay.pythia_facts import PUBLISHED_SHA256
    from dataloader_replay.shard_verify import verify_shards
    from pythia_suite.cli import main

    folder = shards(tmp_path, merged, ODD_CUTS)
    table = {p.name: sha256_of(p) for p in folder.iterdir()}
    report = verify_shards(folder, table)
    assert [c.status for c in report.checks] == ["ok"] * 8 and report.problems == []
    with open(folder / "document-00002-of-00006.bin", "r+b") as fh:
        fh.write(b"\xff")
    (folder / "document-00004-of-00006.bin").unlink()
    problems = verify_shards(folder, table).problems
    assert problems[0].startswith(f"{folder}/document-00002-of-00006.bin: sha256 ")
    assert problems[0].endswith(
        f"differs from {table['document-00002-of-00006.bin']} (the given table)"
    )
    assert (
        problems[1] == f"{folder}/document-00004-of-00006.bin: missing (the given table lists it)"
    )
    # the published table, by file name: a file of that name with other bytes is refused
    name = "pile_0.87_deduped_text_document-00000-of-00082.bin"
    (tmp_path / "pub").mkdir()
    (tmp_path / "pub" / name).write_bytes(b"not the shard")
    assert main(["verify", str(tmp_path / "pub")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'pub' / name}: sha256 " in err and PUBLISHED_SHA256[name] in err
    assert "(and 83 more problems)" in err  # the idx and 82 other shards are missing
    # an HF snapshot: each blob's name is the hub's sha256 of it
    snap = as_hf_snapshot(
        shards(tmp_path / "s", merged, ODD_CUTS), tmp_path / "hub", "o/n", "r" * 40
    )
    assert main(["verify", str(snap)]) == 0
    assert f"{snap}: 8 files match their published sha256, 0 have none" in capsys.readouterr().out


def pythia_sized_snapshot(root: Path) -> Path:
    """EleutherAI's deduped dataset at its pinned revision, at its published sizes, as sparse
    files (no disk used): an idx with the published header and first row length, 21 shards."""
    import struct

    facts = DATASETS[0]
    snap = root / "datasets--EleutherAI--pile-deduped-pythia-preshuffled/snapshots" / facts.revision
    snap.mkdir(parents=True)
    with open(snap / "document.idx", "wb") as fh:
        fh.write(b"MMIDIDX\x00\x00" + struct.pack("<QBQQi", 1, 8, facts.rows, 1, 2049))
        n = facts.rows
        fh.seek(34 + 4 * (n - 1))  # the last row's length and pointer
        fh.write(struct.pack("<i", 2049))
        fh.seek(34 + 4 * n + 8 * (n - 1))
        fh.write(struct.pack("<q", (n - 1) * 2049 * 2))
        fh.truncate(facts.idx_bytes)
    for k, size in enumerate(facts.shard_sizes()):
        with open(snap / f"document-{k:05d}-of-00020.bin", "wb") as fh:
            fh.truncate(size)
    return snap


def test_pythia_sizes_plan_and_published_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pythia_suite.cli import main

    snap = pythia_sized_snapshot(tmp_path)
    data = open_source(snap)
    assert (data.num_rows, data.seq_length, data.batch_size, data.num_steps) == (
        146_432_000,
        2048,
        1024,
        143_000,
    )
    assert main(["data", "plan", str(snap), "--steps", "7149:7151"]) == 0
    lines = [line.removeprefix(f"{snap}/") for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        "document.idx\tbytes 0-37\t38",
        "document.idx\tbytes 29282338-29290529\t8192",  # rows 7,320,576.. lengths
        "document.idx\tbytes 644292642-644309025\t16384",  # their pointers
        "document-00000-of-00020.bin\tbytes 29999720448-29999999999\t279552",
        "document-00001-of-00020.bin\tbytes 0-8113151\t8113152",  # the batch crosses shards
        "total: 8417318 bytes in 5 ranges of 3 files (steps 7149..7150, rows 7320576..7322623)",
    ]
    last = plan_steps(data, 142_999, 143_000)[-1]
    assert (last.name, last.end) == ("document-00020-of-00020.bin", 78_336_000)
    with open(snap / "document-00007-of-00020.bin", "r+b") as fh:
        fh.truncate(29_999_999_999)
    with pytest.raises(DataError, match=r"/document-00007-of-00020.bin: field 'size': the shards"):
        open_source(snap)
