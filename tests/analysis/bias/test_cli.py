"""`pythia-suite analyze bias` and `analyze lm-eval`: results, and one-line errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.bias.across import read_h5
from pythia_suite.cli import main
from tests.analysis.bias.conftest import BiasRuns


def _exit2(args: list[str], capsys: pytest.CaptureFixture[str], match: str) -> None:
    capsys.readouterr()
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = [x for x in capsys.readouterr().err.strip().splitlines() if "error" in x]
    assert len(err) == 1 and match in err[0], err


def test_analyze_bias_probes(
    bias_runs: BiasRuns, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, fig = tmp_path / "bias.h5", tmp_path / "bias.png"
    # the truth.json is found next to the data's input corpus
    assert (
        main(
            [
                "analyze",
                "bias",
                str(bias_runs.base),
                "--out",
                str(out),
                "--steps",
                "40",
                "--no-generation",
                "--figure",
                str(fig),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "crows_pairs/gender/pct_stereotype" in printed
    frame = read_h5(out)
    assert set(frame["step"]) == {40}
    assert {"pct_stereotype", "association", "acc_mc", "bias_acc_mc"} <= set(frame["metric"])
    assert len(pd.read_csv(out.with_suffix(".csv"))) == len(frame)
    assert fig.read_bytes()[:4] == b"\x89PNG"
    _exit2(["analyze", "bias", str(bias_runs.base), "--out", str(out)], capsys, "already exists")


def test_analyze_bias_errors(
    bias_runs: BiasRuns, tmp_path: Path, datasets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "b.h5"
    bad = tmp_path / "bad.csv"
    lines = (datasets / "crows_pairs" / "crows_pairs_anonymized.csv").read_text().splitlines()
    bad.write_text("\n".join([lines[0], lines[1], lines[2].replace(",stereo,", ",sure,")]) + "\n")
    _exit2(
        ["analyze", "bias", str(bias_runs.base), "--out", str(out), "--crows", str(bad)],
        capsys,
        f"{bad}:3: field 'stereo_antistereo'",
    )
    _exit2(
        [
            "analyze",
            "bias",
            str(bias_runs.base),
            "--out",
            str(out),
            "--truth",
            str(tmp_path / "none.json"),
        ],
        capsys,
        "none.json: no such file",
    )
    _exit2(
        [
            "analyze",
            "bias",
            str(bias_runs.base),
            "--out",
            str(out),
            "--steps",
            "7",
            "--truth",
            str(bias_runs.truth_path),
        ],
        capsys,
        "no checkpoint at step 7",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]  # nothing half-written


def test_analyze_lm_eval(
    bias_runs: BiasRuns, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "tasks" / "docs.jsonl"
    docs.parent.mkdir()
    rows = [
        {"q": f"{n} plus {n} is", "choices": [f" {2 * n}", f" {2 * n + 1}"], "gold": 0}
        for n in range(6)
    ]
    docs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "tasks" / "toy.yaml").write_text(
        "task: toy_sums\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {docs}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        "doc_to_text: '{{q}}'\n"
        "doc_to_choice: '{{choices}}'\n"
        "doc_to_target: gold\n"
        "metric_list:\n  - metric: acc\n"
    )
    out = tmp_path / "lm.csv"
    assert (
        main(
            [
                "analyze",
                "lm-eval",
                str(bias_runs.base),
                "--tasks",
                "toy_sums",
                "--include-path",
                str(tmp_path / "tasks"),
                "--steps",
                "0,40",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    frame = pd.read_csv(out)
    assert set(frame["step"]) == {0, 40} and set(frame["benchmark"]) == {"toy_sums"}
    acc = frame[frame["metric"] == "acc"]["value"]
    assert len(acc) == 2 and all(v in {k / 6 for k in range(7)} for v in acc)
    _exit2(
        [
            "analyze",
            "lm-eval",
            str(bias_runs.base),
            "--tasks",
            "no_such_task_xyz",
            "--include-path",
            str(tmp_path / "tasks"),
            "--out",
            str(tmp_path / "x.csv"),
        ],
        capsys,
        "--tasks: unknown lm-eval task 'no_such_task_xyz'",
    )
