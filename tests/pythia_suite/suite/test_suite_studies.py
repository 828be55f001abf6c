"""The whole suite with the three studies and the pronoun-swap branch, on the tiny preset:
every planted-truth line recovered, every figure loaded, every table beside as CSV.

Needs the study packages (analysis/memorization, analysis/term_frequency, analysis/bias) and
the trainer's branch fields (TrainConfig.branch_from / branch_step / intervention): it runs
once those branches are merged.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pythia_suite.suite.studyio import load_study_report
from tests.pythia_suite.suite.conftest import render_in_chromium, run_cli, state_digests, write_yaml

STUDIES_YAML = """name: studies
branch:
  enabled: true
studies:
  memorization: {}
  term_frequency: {}
  bias: {}
"""


def test_tiny_suite_with_the_studies_recovers_every_planted_truth(tmp_path: Path) -> None:
    suite = write_yaml(tmp_path / "studies.yaml", STUDIES_YAML)
    result = run_cli("run", suite, "--preset", "tiny", "--root", tmp_path / "runs")
    assert result.returncode == 0, result.stderr
    root = tmp_path / "runs" / "studies"
    digests = state_digests(root)
    for stage in ("train-pythia-nano-standard-pronoun-swap", "study-memorization",
                  "study-term_frequency", "study-bias", "report"):
        assert stage in digests, stage
    reports = [load_study_report(root / "studies" / s)
               for s in ("memorization", "term_frequency", "bias")]
    assert all(r.checks for r in reports)  # every study states its planted truth
    state = render_in_chromium(root / "report.html")
    assert state.loaded == state.figures == 1 + sum(len(r.figures) for r in reports)
    assert min(state.widths) > 0
    failed = [text for passed, text in state.checks if not passed]
    assert not failed, failed
    assert len(state.checks) == sum(len(r.checks) for r in reports)
    assert all(": recovered: " in text for _, text in state.checks)
    for r in reports:
        for name, table in r.tables.items():
            csv = pd.read_csv(root / "tables" / f"{r.study}__{name}.csv")
            assert len(csv) == len(table)
    # and once more: nothing to do
    again = run_cli("run", suite, "--preset", "tiny", "--root", tmp_path / "runs")
    assert again.returncode == 0, again.stderr
    assert state_digests(root) == digests
    lines = [line for line in again.stderr.splitlines() if line.startswith("[")]
    assert lines and all("unchanged, skipped" in line for line in lines)
