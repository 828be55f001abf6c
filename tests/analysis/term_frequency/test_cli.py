"""`pythia-suite analyze count` / `analyze fewshot` as a user runs them: output and bad input."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from analysis.sources import open_rows
from pythia_suite.cli import main


def run(cli: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [str(cli), "analyze", *map(str, args)], capture_output=True, text=True, env=env, check=False
    )


def test_count_json_lines(cli_bin: Path, tiny_run: Path, tiny_data: Path) -> None:
    out = run(cli_bin, "count", tiny_run, "--text", " 64", "--tokens", "0", "--steps", "20,0,20")
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["term"], r["step"]) for r in records] == [
        ("0", 0),
        ("0", 20),
        (" 64", 0),
        (" 64", 20),
    ]
    rows = open_rows(tiny_data).rows(0, 20 * 8)
    assert records[1]["count"] == int((rows == 0).sum())  # EOD tokens in the first 20 steps
    assert records[3]["tokens"] and records[3]["count"] == int(
        (rows == records[3]["tokens"][0]).sum()
    )


def test_count_checkpoints_pairs_and_file(tiny_run: Path, tmp_path: Path) -> None:
    """In-process through the CLI's entry point (the subprocess path is tested above)."""
    terms = tmp_path / "terms.txt"
    terms.write_text('" 64"\n" plus"\n[0]\n', encoding="utf-8")
    assert (
        main(
            [
                "analyze",
                "count",
                str(tiny_run),
                "--terms-file",
                str(terms),
                "--steps",
                "checkpoints",
                "--pairs",
                "--window",
                "4",
                "--processes",
                "2",
                "--out",
                str(tmp_path / "c.h5"),
            ]
        )
        == 0
    )
    import h5py

    with h5py.File(tmp_path / "c.h5") as f:
        assert f["steps"][()].tolist() == [0, 20, 40]
        assert f["counts"].shape == (3, 3) and f["pairs"].shape == (3, 3, 3)
        assert f["pairs"][2, 0, 1] > 0  # " 64 plus" within 4 tokens
        assert json.loads(f.attrs["config"])["window"] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tokens", ""], "--tokens: empty term"),
        (["--text", ""], "--text: empty term"),
        (["--tokens", "5000"], "token id 5000 is outside the data's vocabulary of 2048"),
        (["--tokens", "5", "--steps", "41"], "step 41 needs rows [0, 328)"),
        (["--tokens", "5", "--steps", "2,,3"], "--steps: empty step"),
        (["--tokens", "5", "--window", "0", "--pairs"], "--window: must be >= 1"),
        (["--tokens", "5", "--out", "EXISTING"], "already exists"),
        (["--tokens", "5", "--out", "x.parquet"], "unknown output format"),
        (["--terms-file", "BADFILE"], "bad.txt:2: not a JSON string"),
        ([], "give --tokens, --text or --terms-file"),
    ],
)
def test_bad_input_one_line_exit_2(
    tiny_data: Path,
    tmp_path: Path,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In-process through the CLI's entry point (the subprocess path is tested above)."""
    existing = tmp_path / "existing.h5"
    existing.write_bytes(b"keep")
    bad = tmp_path / "bad.txt"
    bad.write_text('" 7"\nplus 7\n', encoding="utf-8")
    args = [str(existing) if a == "EXISTING" else str(bad) if a == "BADFILE" else a for a in args]
    if "--steps" not in args:
        args += ["--steps", "1"]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["analyze", "count", str(tiny_data), *args]) == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.err
    assert out.out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert existing.read_bytes() == b"keep"


def test_fewshot_cli(
    cli_bin: Path,
    tiny_run: Path,
    corpus_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = [
        "analyze",
        "fewshot",
        str(tiny_run),
        "--truth",
        str(corpus_dir / "truth.json"),
        "--steps",
        "40",
        "--shots",
        "0",
        "--x2",
        "1-2",
        "--out",
        str(tmp_path / "fs.h5"),
        "--figures",
        str(tmp_path / "fig"),
    ]
    assert main(args) == 0
    assert "facts: top-10 minus bottom-10" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == [
        "arithmetic-plus.0shot.png",
        "facts.0shot.png",
    ]
    bad = run(cli_bin, "fewshot", tiny_run, "--tasks", "facts", "--steps", "40")
    assert bad.returncode == 2 and "'facts' needs the corpus's truth.json" in bad.stderr
