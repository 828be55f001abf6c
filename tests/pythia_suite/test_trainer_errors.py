"""Bad input to `pythia-suite train`: one line naming the file or field, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pythia_suite.cli import main


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    code = main(["train", "--threads", "1", *argv])
    err = capsys.readouterr().err
    return code, err


def assert_one_error_line(err: str, *parts: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.startswith("pythia-suite")]
    assert len(lines) == 1 and lines[0].startswith("pythia-suite: error: "), err
    assert "Traceback" not in err
    for part in parts:
        assert part in lines[0], (part, lines[0])


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def test_unknown_model(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = run(
        capsys, "--model", "pythia-huge", "--data", str(tiny_data), "--out", str(tmp_path / "r")
    )
    assert code == 2
    assert_one_error_line(err, "--model", "pythia-huge")
    assert not (tmp_path / "r").exists()


def test_missing_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nodata"
    code, err = run(
        capsys, "--model", "pythia-nano", "--data", str(missing), "--out", str(tmp_path / "r")
    )
    assert code == 2
    assert_one_error_line(err, str(missing / "manifest.json"), "no such file")
    assert not (tmp_path / "r").exists()


def test_missing_data_file(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "broken"
    shutil.copytree(tiny_data, data)
    (data / "train.bin").unlink()
    code, err = run(
        capsys, "--model", "pythia-nano", "--data", str(data), "--out", str(tmp_path / "r")
    )
    assert code == 2
    assert_one_error_line(err, str(data / "train.bin"))
    assert not (tmp_path / "r").exists()


def test_vocabulary_larger_than_the_padded_vocab(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = tmp_path / "bigvocab"
    shutil.copytree(tiny_data, data)
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["vocab_size"] = 60_000  # more than pythia-14m's 50304
    (data / "manifest.json").write_text(json.dumps(manifest))
    code, err = run(
        capsys, "--model", "pythia-14m", "--data", str(data), "--out", str(tmp_path / "r")
    )
    assert code == 2
    assert_one_error_line(err, str(data / "manifest.json"), "vocab_size", "60000", "50304")
    assert not (tmp_path / "r").exists()


def test_more_steps_than_the_data(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, err = run(
        capsys,
        "--model",
        "pythia-nano",
        "--data",
        str(tiny_data),
        "--out",
        str(tmp_path / "r"),
        "--steps",
        "25",
    )
    assert code == 2
    assert_one_error_line(err, str(tiny_data), "24 steps", "25")
    code, err = run(capsys, "--model", "pythia-nano", "--data", str(tiny_data), "--out", str(tmp_path / "r"),
                    "--checkpoints", "every:3")  # fmt: skip
    assert code == 2
    assert_one_error_line(err, "checkpoint rule 'every:3'")
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def short_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("err") / "run"
    args = [
        "train",
        "--threads",
        "1",
        "--model",
        "pythia-nano",
        "--data",
        str(tiny_data),
        "--out",
        str(out),
        "--steps",
        "3",
    ]
    assert main(args) == 0
    return out


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (["--seed", "7"], "'seed'"),
        (["--steps", "4"], "'steps'"),
        (["--checkpoints", "steps:1,3"], "'checkpoints.rule'"),
        (["--model", "pythia-micro"], "'model.name'"),
        (["--precision", "bf16"], "'precision'"),
        (["--lr-schedule", "cosine"], "'optim.lr_schedule'"),
    ],
)
def test_resume_with_another_config(
    short_run: Path, tiny_data: Path, capsys: pytest.CaptureFixture, change: list[str], field: str
) -> None:
    before = snapshot(short_run)
    base = {
        "--model": "pythia-nano",
        "--data": str(tiny_data),
        "--out": str(short_run),
        "--steps": "3",
    }
    base.update(dict(zip(change[::2], change[1::2])))
    code, err = run(capsys, *[x for kv in base.items() for x in kv], "--resume")
    assert code == 2
    assert_one_error_line(err, str(short_run / "run.json"), field)
    assert snapshot(short_run) == before


def test_resume_with_other_data(
    short_run: Path, tiny_data: Path, data_70m: Path, capsys: pytest.CaptureFixture
) -> None:
    before = snapshot(short_run)
    code, err = run(
        capsys,
        "--model",
        "pythia-nano",
        "--data",
        str(data_70m),
        "--out",
        str(short_run),
        "--resume",
    )
    assert code == 2
    assert_one_error_line(err, str(short_run / "run.json"), "differs")
    assert snapshot(short_run) == before


def test_existing_out_without_resume(
    short_run: Path, tiny_data: Path, capsys: pytest.CaptureFixture
) -> None:
    before = snapshot(short_run)
    code, err = run(
        capsys,
        "--model",
        "pythia-nano",
        "--data",
        str(tiny_data),
        "--out",
        str(short_run),
        "--steps",
        "3",
    )
    assert code == 2
    assert_one_error_line(err, str(short_run), "--resume")
    assert snapshot(short_run) == before


def test_resume_of_a_finished_run_changes_nothing(
    short_run: Path, tiny_data: Path, capsys: pytest.CaptureFixture
) -> None:
    before = snapshot(short_run)
    code, _ = run(
        capsys,
        "--model",
        "pythia-nano",
        "--data",
        str(tiny_data),
        "--out",
        str(short_run),
        "--steps",
        "3",
        "--resume",
    )
    assert code == 0
    assert snapshot(short_run) == before
