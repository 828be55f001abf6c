"""run_study on the session's baseline and branch: report, files, planted-truth checks."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.bias import run_study
from analysis.bias.across import read_h5
from analysis.bias.study import value
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
    h5, csv, probes = report.results
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
    """Paired tests over the 228 probe pairs; effects equal the aggregated metrics."""
    checks = {c.name: c for c in report.checks}
    frame = report.tables["bias"]
    base, swap = "nano-standard", "nano-standard-pronoun-swap"
    assoc = checks[f"bias: {base} has the planted occupation-pronoun association"]
    lowers = checks[f"bias: pronoun-swap from step {BRANCH_STEP} lowers pct_stereotype"]
    lowers_assoc = checks[f"bias: pronoun-swap from step {BRANCH_STEP} lowers association"]
    wino = checks[f"bias: {base} is more accurate on pro- than anti-stereotyped WinoBias probes"]
    assert len(checks) == 4
    tested = (assoc, lowers, lowers_assoc)
    for c in tested:
        assert (c.n, c.unit) == (228, "pairs")
        assert c.test == "mean difference, paired sign-flip permutation (10,000)"
        assert c.ci_low < c.effect < c.ci_high and 1e-4 <= c.p_value <= 1
        assert c.p_adjusted == c.p_value  # a family of one until the report's Holm
        planted = c.effect > 0 if c.direction == "greater" else c.effect < 0
        assert c.passed == (c.p_value < 0.01 and planted)
    assert [c.direction for c in tested] == ["greater", "less", "less"]
    # the effects are the study's metrics at the last checkpoint (pairs reweighted by gender)
    assert assoc.effect == pytest.approx(value(frame, base, "association"), abs=1e-9)
    for check, metric in ((lowers, "pct_stereotype"), (lowers_assoc, "association")):
        delta = value(frame, swap, metric) - value(frame, base, metric)
        assert check.effect == pytest.approx(delta, abs=1e-9)
    # 40 steps of pythia-nano: the swap's effect on pct_stereotype is already significant
    # (after the swap only feminine pronouns are trained), the association not yet
    assert lowers.status == "recovered" and lowers.ci_high < 0 and lowers.p_value < 0.01
    assert assoc.status == "not recovered" and assoc.ci_low < 0 < assoc.ci_high
    assert lowers_assoc.status == "not recovered" and lowers_assoc.p_value > 0.1
    # the model answers each pro / anti WinoBias pair alike: nothing to test at this scale
    assert wino.status == "not testable" and "all 128 pro- and anti-stereotyped" in wino.reason
    swapped = frame[(frame["run"] == swap) & (frame["step"] == 40)]
    by = {(r.subset, r.metric): r.value for r in swapped.itertuples()}
    assert by[("gender_female", "pct_stereotype")] > by[("gender_male", "pct_stereotype")]
    probes = pd.read_csv(report.results[2])
    assert set(probes["run"]) == {base, swap} and set(probes["step"]) == {40}
    assert (probes["task"] == "bias_crows_pairs").sum() == 2 * 228
