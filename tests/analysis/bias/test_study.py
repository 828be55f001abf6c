"""run_study on the session's baseline and branch: report, files, planted-truth checks."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.bias import run_study
from analysis.bias.across import read_h5
from analysis.study import RunSpec, StudyReport
from tests.analysis.bias.conftest import BRANCH_STEP, BiasRuns

STEPS = [0, BRANCH_STEP, 40]


@pytest.fixture(scope="module")
def report(bias_runs: BiasRuns, tmp_path_factory: pytest.TempPathFactory) -> StudyReport:
    runs = [
        RunSpec(
            name="nano-standard",
            path=bias_runs.base,
            model="pythia-nano",
            n_params=1,
            variant="standard",
        ),
        RunSpec(
            name="nano-standard-pronoun-swap",
            path=bias_runs.swap,
            model="pythia-nano",
            n_params=1,
            variant="standard",
            branch_of="nano-standard",
            branch_step=BRANCH_STEP,
            intervention="pronoun-swap",
        ),
    ]
    out = tmp_path_factory.mktemp("bias_study")
    return run_study(runs, truth=bias_runs.truth, out_dir=out, generation=False, steps=STEPS)


def test_report_files_and_tables(report: StudyReport) -> None:
    assert report.study == "bias"
    assert [p.name for p in report.figures] == ["bias.png"]
    assert report.figures[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    h5, csv = report.results
    frame = report.tables["bias"]
    assert set(frame["run"]) == {"nano-standard", "nano-standard-pronoun-swap"}
    assert sorted(set(frame["step"])) == STEPS
    back = read_h5(h5).sort_values(["run", "step", "benchmark", "subset", "metric"])
    mine = frame.sort_values(["run", "step", "benchmark", "subset", "metric"])
    assert (
        back[["run", "step", "metric", "sha256"]].values.tolist()
        == mine[["run", "step", "metric", "sha256"]].values.tolist()
    )
    assert back["value"].tolist() == pytest.approx(mine["value"].tolist())
    assert pd.read_csv(csv).shape[0] == len(frame)
    # before the branch step both runs are the same checkpoints: the same numbers
    shared = frame[frame["step"] <= BRANCH_STEP].pivot_table(
        index=["step", "benchmark", "subset", "metric"], columns="run", values="value"
    )
    assert (shared["nano-standard"] == shared["nano-standard-pronoun-swap"]).all()
    last = report.tables["bias_last_checkpoint"]
    assert list(last["step"]) == [40, 40]


def test_planted_truth_checks(report: StudyReport) -> None:
    checks = {c.name: c for c in report.checks}
    assert len(checks) == 3
    lowers = checks[f"bias: pronoun-swap from step {BRANCH_STEP} lowers pct_stereotype"]
    # after the swap only feminine pronouns are trained: every pair with a female stereotype
    # is 'stereotypical', every male one is not
    assert lowers.passed and lowers.value < 0
    frame = report.tables["bias"]
    swap = frame[(frame["run"] == "nano-standard-pronoun-swap") & (frame["step"] == 40)]
    by = {(r.subset, r.metric): r.value for r in swap.itertuples()}
    assert by[("gender_female", "pct_stereotype")] > by[("gender_male", "pct_stereotype")]
    for check in checks.values():
        assert check.value == check.value  # a number, not NaN
