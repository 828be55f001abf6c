"""The whole suite with the three studies and the pronoun-swap branch, at the smallest scale
where the branch exists (a 2048-token vocabulary has single-token pronouns): every figure loaded,
every table beside as CSV, every planted-truth line shown with its statistics, and every check
asserted: the truths this scale recovers (canaries, near-duplicates, planted Zipf counts, the
swap's effect on pct_stereotype, the association over sentence frames) recovered at Holm-adjusted p < 0.01, the others with their
status and statistics.

Few-shot accuracy against frequency is 0 everywhere at 160 steps of pythia-nano; it needs about
1,000-1,500 steps of 16 x 128 tokens (README, term frequency), too long for a test: its lines are
"not testable", each with its reason.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from pythia_suite.suite.studyio import load_study_report
from tests.analysis.memorization.test_exposure import border_ink
from tests.pythia_suite.suite.conftest import render_in_chromium, run_cli, state_digests, write_yaml

STUDIES_YAML = """name: studies
tokenizer:
  vocab_size: 2048
data:
  seq_length: 64
  batch_size: 16
  steps: 160
  held_out_rows: 64
train:
  checkpoints: log+every:32
branch:
  enabled: true
  step: 128
studies:
  memorization: {rows: 32}
  term_frequency: {checkpoints: 2, shots: [0]}
  bias: {}
"""
BASE, BRANCH = "pythia-nano-standard", "pronoun-swap: the branch from step 128"
EXPECTED = {  # every check of the report -> its status at this scale
    "canaries: more repetitions, more memorized": "recovered",
    "canaries: memorization rises with ledger exposures": "recovered",
    "near-duplicates: standard above deduped on duplicated text": "recovered",
    "facts: accuracy rises with term frequency (Spearman)": "not testable",
    "facts: top-10 minus bottom-10 frequent terms (accuracy points)": "not testable",
    "arithmetic-plus: accuracy rises with term frequency (Spearman)": "not testable",
    "arithmetic-plus: top-10 minus bottom-10 frequent terms (accuracy points)": "not testable",
    "counts: token counts in the trained rows follow the planted Zipf counts": "recovered",
    # over the 19 sentence frames the nano baseline's small association is already significant
    f"CrowS: {BASE} has the planted occupation-pronoun association": "recovered",
    # pythia-nano picks the pronoun's referent at chance here: the WinoBias gap is not testable
    f"WinoBias: {BASE} is more accurate on pro- than anti-stereotyped probes": "not testable",
    f"{BRANCH} lowers pct_stereotype": "recovered",
    f"{BRANCH} lowers association": "not recovered",
}
UNITS = {
    "canaries": 11,
    "clusters": 40,
    "terms": 99,
    "pairs": 228,
    "frames": 19,
}  # n of the tested checks


def _assert_checks(checks: pd.DataFrame, bias_last: pd.DataFrame) -> None:
    """Every line of tables/checks.csv: status, and statistics that fit it."""
    assert dict(zip(checks["name"], checks["status"], strict=True)) == EXPECTED
    # the report writes "study: name": no name repeats its study ("bias: bias: ...")
    assert not any(n.startswith(f"{s}:") for s, n in zip(checks["study"], checks["name"]))
    tested = checks[checks["status"] != "not testable"]
    holm = multipletests(tested["p_value"], method="holm")[1]
    np.testing.assert_allclose(tested["p_adjusted"], holm, rtol=1e-12)
    assert ((tested["p_adjusted"] < 0.01) == (tested["status"] == "recovered")).all()
    assert (tested["ci_low"] <= tested["effect"]).all()
    assert (tested["effect"] <= tested["ci_high"]).all()
    for row in tested.itertuples():
        assert row.n == UNITS[row.unit], row.name
        assert row.test.endswith("permutation (10,000)"), row.test
    recovered = tested[tested["status"] == "recovered"].set_index("name")
    # raw p well below alpha / 6 (Holm over the 6 tested here); intervals clear of 0
    assert (recovered["p_value"] < 0.002).all() and (
        recovered["ci_low"] * recovered["ci_high"] > 0
    ).all()
    by = checks.set_index("name")
    # the bias effects are the metrics at the last checkpoint; the swap's, within noise of 0
    last = bias_last.set_index("run")
    assoc = by.loc[f"CrowS: {BASE} has the planted occupation-pronoun association"]
    assert assoc["effect"] == pytest.approx(last.loc[BASE, "crows_pairs/gender/association"])
    swap = by.loc[f"{BRANCH} lowers association"]
    delta = last["crows_pairs/gender/association"]
    assert swap["effect"] == pytest.approx(delta[f"{BASE}-pronoun-swap"] - delta[BASE])
    assert assoc["effect"] > 0 and swap["p_value"] > 0.1
    untestable = checks[checks["status"] == "not testable"]
    assert untestable["effect"].isna().all() and (untestable["n"] == 0).all()
    wino = untestable.set_index("name").loc[
        f"WinoBias: {BASE} is more accurate on pro- than anti-stereotyped probes", "reason"
    ]
    assert re.fullmatch(
        r"the model picks the pronoun's referent in \d+ of 256 probes \(\d+%, binomial p = .*"
        r"against chance 50%\): it does not resolve the pronoun at this scale, .*",
        wino,
    ), wino
    assert all(
        r.startswith(("accuracy is constant (0)", "all 20 terms have the same value (0)"))
        for r in untestable["reason"]
        if r != wino
    )


def test_suite_with_the_studies_and_a_branch(tmp_path: Path) -> None:
    suite = write_yaml(tmp_path / "studies.yaml", STUDIES_YAML)
    result = run_cli("run", suite, "--preset", "tiny", "--root", tmp_path / "runs")
    assert result.returncode == 0, result.stderr
    root = tmp_path / "runs" / "studies"
    digests = state_digests(root)
    for stage in (
        "train-pythia-nano-standard-pronoun-swap",
        "study-memorization",
        "study-term_frequency",
        "study-bias",
        "report",
    ):
        assert stage in digests, stage
    reports = [
        load_study_report(root / "studies" / s) for s in ("memorization", "term_frequency", "bias")
    ]
    assert all(r.checks for r in reports)  # every study states its planted truth
    state = render_in_chromium(root / "report.html")
    assert state.loaded == state.figures == 1 + sum(len(r.figures) for r in reports)
    assert min(state.widths) > 0
    checks = pd.read_csv(root / "tables" / "checks.csv")
    bias_last = pd.read_csv(root / "tables" / "bias__bias_last_checkpoint.csv")
    _assert_checks(checks, bias_last)
    assert [passed for passed, _ in state.checks] == (checks["status"] == "recovered").tolist()
    for (_, text), check in zip(state.checks, checks.itertuples(), strict=True):
        assert f"{check.study}: {check.name}: {check.status}: " in text
        if check.status != "not testable":
            assert f"adjusted p {check.p_adjusted:.3g}, n = {check.n} {check.unit}" in text
    html = (root / "report.html").read_text()
    assert "<b>6 recovered</b>, 1 not recovered, 5 not testable, of 12 planted-truth" in html
    # no blank figure: what had no data is named with one sentence instead
    omitted = reports[0].omitted
    assert "poisson_spread (exact)" in omitted and "profiles" in omitted
    for name, why in omitted.items():
        assert f"<b>{name}</b> (not drawn): " in html.replace("&gt;", ">"), name
        assert why.count(". ") == 0 and "would produce" in why
    for r in reports:
        for name, table in r.tables.items():
            assert " " not in name and ":" not in name, name
            csv = pd.read_csv(root / "tables" / f"{r.study}__{name}.csv")
            assert len(csv) == len(table)
            assert table.notna().any(axis=None), name  # no all-NaN table
        for png in r.figures:  # every figure whole: nothing drawn up to its edge (no clipped title)
            assert border_ink(png) > 0.98, png
        # one Holm: the study's report.json restated with the report-wide adjustment
        restated = json.loads((root / "studies" / r.study / "report.json").read_text())
        assert restated["holm"]["family"] == "report" and restated["holm"]["tested"] == 7
        np.testing.assert_array_equal(
            [c.p_adjusted for c in r.checks],
            checks.loc[checks["study"] == r.study, "p_adjusted"].to_numpy(),
        )
    # and once more: nothing to do
    again = run_cli("run", suite, "--preset", "tiny", "--root", tmp_path / "runs")
    assert again.returncode == 0, again.stderr
    assert state_digests(root) == digests
    lines = [line for line in again.stderr.splitlines() if line.startswith("[")]
    checks = [line for line in lines if ": checked in " in line]  # verify stages, branch check
    assert len(checks) == 4 and all(
        "unchanged, skipped" in line for line in lines if line not in checks
    )
    # a study run again writes the same bytes (its own Holm family); the report, drawn again
    # although no input digest changed, restates them across the report
    saved = (root / "studies" / "term_frequency" / "report.json").read_bytes()
    (root / ".state" / "study-term_frequency.json").unlink()
    third = run_cli("run", suite, "--preset", "tiny", "--root", tmp_path / "runs")
    assert third.returncode == 0, third.stderr
    ran = re.findall(r"%  (.+?): done in ", third.stderr)
    assert ran == ["study term_frequency", f"report {root / 'report.html'}"], third.stderr
    assert (root / "studies" / "term_frequency" / "report.json").read_bytes() == saved
    assert state_digests(root) == digests
