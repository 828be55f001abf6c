"""The whole suite with the three studies and the pronoun-swap branch, at the smallest scale
where the branch exists (a 2048-token vocabulary has single-token pronouns): every figure loaded,
every table beside as CSV, every planted-truth line shown with its number, and the truths that
this scale recovers recovered (canaries, near-duplicates, planted Zipf counts, the occupation
skew and the intervention's effect).

Few-shot accuracy against frequency is 0 everywhere at 160 steps of pythia-nano; it needs about
1,000-1,500 steps of 16 x 128 tokens (README, term frequency), too long for a test: its lines are
checked to be present and to state their number, not to be recovered.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pythia_suite.suite.studyio import load_study_report
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
NEEDS_LONGER_TRAINING = ("facts:", "arithmetic-plus:")  # few-shot accuracy lines


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
    assert len(state.checks) == sum(len(r.checks) for r in reports)
    expected = [
        c for r in reports for c in r.checks if not c.name.startswith(NEEDS_LONGER_TRAINING)
    ]
    assert len(expected) >= 6  # 2 memorization, the Zipf counts, 3 bias
    failed = [c.name for c in expected if not c.passed]
    assert not failed, failed
    recovered = [text for passed, text in state.checks if passed]
    assert len(recovered) >= len(expected)
    assert all(": recovered: " in text for text in recovered)
    for r in reports:
        for name, table in r.tables.items():
            csv = pd.read_csv(root / "tables" / f"{r.study}__{name}.csv")
            assert len(csv) == len(table)
    # and once more: nothing to do
    again = run_cli("run", suite, "--preset", "tiny", "--root", tmp_path / "runs")
    assert again.returncode == 0, again.stderr
    assert state_digests(root) == digests
    lines = [line for line in again.stderr.splitlines() if line.startswith("[")]
    checks = [line for line in lines if ": checked in " in line]  # verify stages, branch check
    assert len(checks) == 4 and all(
        "unchanged, skipped" in line for line in lines if line not in checks
    )
