"""run_study on the session's baseline and branch: report, files, planted-truth checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.bias import run_study
from analysis.bias.across import read_h5
from analysis.bias.study import frame_units, value
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
    swap_name = f"pronoun-swap: the branch from step {BRANCH_STEP} lowers"
    assoc = checks[f"CrowS: {base} has the planted occupation-pronoun association"]
    lowers = checks[f"{swap_name} pct_stereotype"]
    lowers_assoc = checks[f"{swap_name} association"]
    wino = checks[f"WinoBias: {base} is more accurate on pro- than anti-stereotyped probes"]
    assert len(checks) == 4
    assert not any(name.startswith("bias") for name in checks)  # the report adds "bias: "
    tested = (assoc, lowers, lowers_assoc)
    # pct_stereotype over the 228 CrowS pairs; the association over the 19 sentence frames
    assert [(c.n, c.unit) for c in tested] == [(19, "frames"), (228, "pairs"), (19, "frames")]
    for c in tested:
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


def test_frame_units_cancel_a_shift_of_one_gender() -> None:
    """Per sentence frame: the mean over genders of each gender's mean signed difference. A
    shift of every pronoun toward one gender (the one-directional swap: +s on female pairs, -s
    on male pairs) leaves each frame unchanged, while it spreads single pairs by +-s."""
    rng = np.random.default_rng(0)
    genders = ["female"] * 2 + ["male"] * 4  # 2 female- and 4 male-stereotyped occupations
    rows = [
        {"doc_id": 6 * f + o, "gender": g, "frame": f"t{f}", "diff": rng.normal(1.0, 0.3)}
        for f in range(5)
        for o, g in enumerate(genders)
    ]
    records = pd.DataFrame(rows).assign(task="bias_crows_pairs", bias_type="gender")
    frames = records.set_index("doc_id")["frame"]
    units = frame_units(records, frames)
    assert list(units.index) == [f"t{f}" for f in range(5)]
    means = records.groupby(["frame", "gender"])["diff"].mean().unstack()
    np.testing.assert_allclose(units, (means["female"] + means["male"]) / 2, rtol=1e-12)
    # the metric: the mean over genders of each gender's mean, over all pairs
    by_gender = records.groupby("gender")["diff"].mean()
    assert units.mean() == pytest.approx(by_gender.mean(), abs=1e-12)
    shifted = records.assign(
        diff=records["diff"] + np.where(records["gender"] == "female", 5.0, -5.0)
    )
    np.testing.assert_allclose(frame_units(shifted, frames), units, rtol=1e-12, atol=1e-12)
    assert shifted["diff"].std() > 4 and records["diff"].std() < 0.5  # single pairs: +-s
