"""`pythia-suite prepare | replay | find` through `pythia_suite.cli.main`, bad input included."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dataloader_replay.find import find_tokens
from dataloader_replay.replay import TrainData
from pythia_suite.cli import main
from tests.dataloader_replay.conftest import Corpus
from tests.dataloader_replay.test_replay import make_run

PREPARE_ARGS = ["--seq-length", "16", "--batch-size", "4", "--steps", "40", "--seed", "1234"]


def run_ok(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> str:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def run_error(capsys: pytest.CaptureFixture[str], *argv: str | Path, code: int = 2) -> str:
    """The one-line error (no traceback) of a failing command."""
    assert main([str(a) for a in argv]) == code
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pythia-suite: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_prepare_cli_matches_library(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    prepared: Path,
    corpus: Corpus,
    small_tokenizer: Path,
) -> None:
    out = run_ok(
        capsys,
        "prepare",
        corpus.path,
        "--tokenizer",
        small_tokenizer,
        "--out",
        tmp_path / "d",
        *PREPARE_ARGS,
    )
    assert "161 rows of 17 tokens" in out and "uint16" in out  # ceil(40 * 4 * 1.005)
    for p in prepared.iterdir():
        assert (tmp_path / "d" / p.name).read_bytes() == p.read_bytes(), p.name


def test_prepare_cli_int32(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, corpus: Corpus, big_tokenizer: Path
) -> None:
    out = run_ok(
        capsys,
        "prepare",
        corpus.path,
        "--tokenizer",
        big_tokenizer,
        "--out",
        tmp_path / "d",
        "--seq-length",
        "8",
        "--batch-size",
        "2",
        "--steps",
        "3",
    )
    assert "int32" in out
    assert TrainData.open(tmp_path / "d").batch(2).dtype == np.int32


def test_replay_out_and_text(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, prepared: Path
) -> None:
    td = TrainData.open(prepared)
    run_ok(capsys, "replay", prepared, "--step", "3", "--out", tmp_path / "b3.npy")
    one = np.load(tmp_path / "b3.npy")
    assert one.dtype == np.uint16 and one.tolist() == td.batch(3).tolist()
    run_ok(
        capsys, "replay", prepared, "--step", "3", "--end-step", "6", "--out", tmp_path / "b3-6.npy"
    )
    assert np.load(tmp_path / "b3-6.npy").tolist() == td.rows(12, 24).tolist()
    text = run_ok(capsys, "replay", prepared, "--step", "3", "--text").splitlines()
    vocab = {0: "<|endoftext|>", 1: "<|padding|>"}
    assert text[0] == "=== row 12 (step 3) ==="
    assert text[1] == " ".join(vocab.get(t, f"t{t - 2}") for t in td.batch(3)[0].tolist())
    assert text[6] == "=== row 15 (step 3) ===" and len(text) == 8


def test_find_cli(capsys: pytest.CaptureFixture[str], prepared: Path) -> None:
    td = TrainData.open(prepared)
    row = td.batch(7)[1].tolist()
    out = run_ok(capsys, "find", prepared, "--tokens", ",".join(map(str, row[4:7])))
    got = [json.loads(line) for line in out.splitlines()]
    assert {"row": 29, "step": 7, "offset": 4} in got
    assert got == [o.as_dict() for o in find_tokens(td, row[4:7])]
    words = " ".join(f"t{t - 2}" for t in row[4:7])
    assert run_ok(capsys, "find", prepared, "--text", words) == out


def test_replay_run_and_verify(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, prepared: Path
) -> None:
    td = TrainData.open(prepared)
    a, b = (int(x) for x in td.batch(2)[0, :2])
    spec = {"name": "token_swap", "pairs": [[a, b]], "start_step": 2}
    hashes = make_run(tmp_path / "run", prepared, spec, steps=5)
    run_ok(capsys, "replay", tmp_path / "run", "--step", "2", "--out", tmp_path / "r.npy")
    seen = np.load(tmp_path / "r.npy")
    assert (seen[0, 0], seen[0, 1]) == (b, a)
    assert "5 logged batches verified" in run_ok(capsys, "replay", tmp_path / "run", "--verify")
    metrics = tmp_path / "run" / "metrics.jsonl"
    metrics.write_text(metrics.read_text().replace(hashes[2], hashes[1]))
    line = run_error(capsys, "replay", tmp_path / "run", "--verify", code=1)
    assert "metrics.jsonl:3: step 3: batch_sha256 mismatch" in line


@pytest.fixture
def data_copy(prepared: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(prepared, tmp_path / "copy"))


def test_bad_idx_magic(capsys: pytest.CaptureFixture[str], data_copy: Path, tmp_path: Path) -> None:
    idx = data_copy / "train.idx"
    idx.write_bytes(b"NOTANIDX\x00" + idx.read_bytes()[9:])
    line = run_error(capsys, "replay", data_copy, "--step", "0", "--out", tmp_path / "x.npy")
    assert f"{idx}: field 'magic'" in line
    assert not (tmp_path / "x.npy").exists()
    assert f"{idx}: field 'magic'" in run_error(capsys, "find", data_copy, "--tokens", "5")


def test_truncated_bin(capsys: pytest.CaptureFixture[str], data_copy: Path, tmp_path: Path) -> None:
    bin_path = data_copy / "train.bin"
    bin_path.write_bytes(bin_path.read_bytes()[:-10])
    line = run_error(capsys, "replay", data_copy, "--step", "0", "--out", tmp_path / "x.npy")
    assert f"{bin_path}: field 'size': truncated" in line
    assert not (tmp_path / "x.npy").exists()


@pytest.mark.parametrize(
    "args,field",
    [
        (["--step", "40"], "field '--step': 40"),
        (["--step", "-1"], "field '--step': -1"),
        (["--step", "38", "--end-step", "41"], "field '--end-step': 41"),
        (["--step", "5", "--end-step", "5"], "--end-step: 5 must be greater"),
    ],
)
def test_step_past_the_end(
    capsys: pytest.CaptureFixture[str], prepared: Path, tmp_path: Path, args: list[str], field: str
) -> None:
    line = run_error(capsys, "replay", prepared, *args, "--out", tmp_path / "x.npy")
    assert str(prepared) in line or "--end-step" in line
    assert field in line and not (tmp_path / "x.npy").exists()


def test_output_exists(
    capsys: pytest.CaptureFixture[str],
    prepared: Path,
    corpus: Corpus,
    small_tokenizer: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "x.npy"
    out.write_bytes(b"keep")
    assert f"{out}: output already exists" in run_error(
        capsys, "replay", prepared, "--step", "0", "--out", out
    )
    assert out.read_bytes() == b"keep"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "mine").write_text("keep")
    line = run_error(
        capsys,
        "prepare",
        corpus.path,
        "--tokenizer",
        small_tokenizer,
        "--out",
        tmp_path / "d",
        *PREPARE_ARGS,
    )
    assert f"{tmp_path / 'd'}: output already exists" in line
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["mine"]


def test_missing_files(
    capsys: pytest.CaptureFixture[str],
    corpus: Corpus,
    tmp_path: Path,
    small_tokenizer: Path,
    data_copy: Path,
) -> None:
    missing = tmp_path / "nope.json"
    line = run_error(
        capsys,
        "prepare",
        corpus.path,
        "--tokenizer",
        missing,
        "--out",
        tmp_path / "d",
        *PREPARE_ARGS,
    )
    assert f"{missing}: no such tokenizer file" in line
    line = run_error(
        capsys,
        "prepare",
        tmp_path / "none.jsonl",
        "--tokenizer",
        small_tokenizer,
        "--out",
        tmp_path / "d",
        *PREPARE_ARGS,
    )
    assert f"{tmp_path / 'none.jsonl'}: no such file" in line
    assert "no such file" in run_error(
        capsys, "replay", tmp_path / "nodata", "--step", "0", "--out", tmp_path / "x.npy"
    )
    (data_copy / "train.bin").unlink()
    assert f"{data_copy / 'train.bin'}: no such file" in run_error(
        capsys, "replay", data_copy, "--step", "0", "--out", tmp_path / "x.npy"
    )
    (data_copy / "manifest.json").unlink()
    assert f"{data_copy / 'manifest.json'}: no such file" in run_error(
        capsys, "find", data_copy, "--tokens", "3"
    )
    assert not (tmp_path / "d").exists() and not (tmp_path / "x.npy").exists()


def test_bad_tokenizer_and_corpus(
    capsys: pytest.CaptureFixture[str], corpus: Corpus, tmp_path: Path, small_tokenizer: Path
) -> None:
    from tokenizers import Tokenizer, models

    no_eod = tmp_path / "noeod.json"
    Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]")).save(str(no_eod))
    line = run_error(
        capsys,
        "prepare",
        corpus.path,
        "--tokenizer",
        no_eod,
        "--out",
        tmp_path / "d",
        *PREPARE_ARGS,
    )
    assert f"{no_eod}: tokenizer has no <|endoftext|>" in line
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    assert f"{garbage}: not a tokenizer.json" in run_error(
        capsys,
        "prepare",
        corpus.path,
        "--tokenizer",
        garbage,
        "--out",
        tmp_path / "d",
        *PREPARE_ARGS,
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text(corpus.path.read_text() + '{"text": 5}\n')
    line = run_error(
        capsys,
        "prepare",
        bad,
        "--tokenizer",
        small_tokenizer,
        "--out",
        tmp_path / "d",
        *PREPARE_ARGS,
    )
    assert f"{bad}:61: field 'text' must be a string" in line
    line = run_error(
        capsys,
        "prepare",
        corpus.path,
        "--tokenizer",
        small_tokenizer,
        "--out",
        tmp_path / "d",
        "--seq-length",
        "0",
        "--batch-size",
        "4",
        "--steps",
        "4",
    )
    assert "--seq-length: must be a positive integer" in line
    # nothing half-made is left behind, temporary directories included
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "garbage.json", "noeod.json"]


def test_find_and_replay_usage_errors(capsys: pytest.CaptureFixture[str], prepared: Path) -> None:
    assert "--tokens: expected comma-separated integers" in run_error(
        capsys, "find", prepared, "--tokens", "1,x"
    )
    assert "exactly one of --out" in run_error(capsys, "replay", prepared, "--step", "1")
    assert "run.json: no such file" in run_error(capsys, "replay", prepared, "--verify")
    assert "--batch-size: must be a positive integer" in run_error(
        capsys, "replay", prepared, "--step", "0", "--text", "--batch-size", "0"
    )
    bare = TrainData.open(prepared).prefix
    assert "pass --tokenizer" in run_error(
        capsys, "find", bare, "--text", "t1", "--batch-size", "4"
    )
