"""`pythia-suite run` on a user's corpus without truth.json: descriptive studies, no planted
truth (the report says so), no ledger; and a truth.json of another corpus is refused."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from tests.pythia_suite.suite.conftest import run_cli, write_yaml

SUITE = """\
name: user
corpus:
  synth: null
  path: {corpus}
train:
  variants: [standard]
  checkpoints: "steps:0,8,16,24"
studies:
  memorization: {{rows: 48}}
  bias: {{}}
"""


def test_suite_on_a_corpus_without_truth(tmp_path: Path) -> None:
    from pythia_suite.corpus.synth import write_corpus

    write_corpus(tmp_path / "synth", preset="tiny", seed=7)
    corpus = tmp_path / "corpus.jsonl"  # the user's corpus: no truth.json beside it
    (tmp_path / "synth" / "corpus.jsonl").rename(corpus)
    config = write_yaml(tmp_path / "user.yaml", SUITE.format(corpus=corpus))
    result = run_cli("run", config, "--preset", "tiny", "--root", tmp_path / "runs")
    assert result.returncode == 0, result.stderr[-3000:]
    suite = tmp_path / "runs" / "user"
    page = (suite / "report.html").read_text()
    assert "No planted truth" in page and "<h2>Planted truth</h2>" not in page
    assert "No bias probes" in page  # the bias study says why it has nothing to show
    assert not (suite / "ledger").exists()
    test = pd.read_csv(suite / "tables" / "memorization__natural_duplication_test.csv").iloc[0]
    assert test["label"].startswith("descriptive")
    if test["status"] == "tested":
        assert -1 <= test["ci_low"] <= test["effect"] <= test["ci_high"] <= 1
        assert 0 < test["p_value"] <= 1 and test["n"] == 48
    else:
        assert test["status"] == "not testable" and isinstance(test["reason"], str)
    table = pd.read_csv(suite / "tables" / "memorization__natural_duplication.csv")
    assert len(table) == 48 and (table["window_count"] >= 0).all()
    trained = table["row"] < 24 * 8
    assert (table.loc[trained, "window_count"] >= 1).all()  # each trained row holds its window
    assert (table.loc[~trained, "window_count"] == 0).sum() > 0  # held-out rows: mostly unseen
    assert re.search(r"memorization_natural_dup\.png|natural duplication", page)
    names = [p.name for p in (suite / "tables").iterdir()]
    assert names and not [n for n in names if re.search(r"[\s:]", n)]
    saved = json.loads((suite / "studies" / "memorization" / "report.json").read_text())
    assert saved["checks"] == []  # nothing planted, nothing checked


def test_truth_of_another_corpus_is_refused(tmp_path: Path) -> None:
    from pythia_suite.corpus.synth import write_corpus

    write_corpus(tmp_path / "a", preset="tiny", seed=1)
    write_corpus(tmp_path / "b", preset="tiny", seed=2)
    config = write_yaml(
        tmp_path / "s.yaml",
        f"corpus:\n  synth: null\n  path: {tmp_path / 'a' / 'corpus.jsonl'}\n"
        f"  truth: {tmp_path / 'b' / 'truth.json'}\n",
    )
    result = run_cli("run", config, "--preset", "tiny", "--root", tmp_path / "runs")
    assert result.returncode == 2
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and f"{tmp_path / 'b' / 'truth.json'}: field 'corpus_sha256'" in err[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
