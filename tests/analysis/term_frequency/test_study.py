"""`run_study` (what `pythia-suite run` calls) and the notebook, on the tiny run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from scipy.stats import spearmanr

from analysis.study import RunSpec
from analysis.term_frequency import run_study
from analysis.term_frequency.results import read_fewshot
from analysis.term_frequency.study import pick_run, spread_steps

NOTEBOOK = Path(__file__).parents[3] / "notebooks" / "term_frequency.ipynb"


def spec(name: str, path: Path, n: int, **kw: Any) -> RunSpec:
    return RunSpec(
        name=name,
        path=path,
        model="pythia-nano",
        n_params=n,
        variant=kw.pop("variant", "standard"),
        **kw,
    )


def test_pick_run_and_steps(tmp_path: Path) -> None:
    runs = [
        spec("a", tmp_path, 10),
        spec("b", tmp_path, 30),
        spec("c", tmp_path, 99, variant="deduped"),
        spec("d", tmp_path, 99, branch_of="b", intervention="pronoun-swap"),
    ]
    assert pick_run(runs).name == "b"
    assert spread_steps([0, 1, 2, 4, 8, 16, 100, 200, 300], 3) == [0, 100, 300]
    assert spread_steps([0, 5], 4) == [0, 5]
    with pytest.raises(ValueError, match="at least one run"):
        pick_run([])


def test_run_study(tiny_run: Path, truth: dict[str, Any], tmp_path: Path) -> None:
    report = run_study(
        [spec("pythia-nano-standard", tiny_run, 1)],
        truth=truth,
        out_dir=tmp_path,
        checkpoints=2,
        shots=(0,),
        x2=(1,),
    )
    assert report.study == "term_frequency"
    assert [p.name for p in report.figures] == [
        "pythia-nano-standard.facts.0shot.png",
        "pythia-nano-standard.arithmetic-plus.0shot.png",
    ]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in report.figures)
    assert [p.name for p in report.results] == ["pythia-nano-standard.fewshot.h5"]
    assert set(report.tables) == {
        "facts_top10_minus_bottom10_accuracy_x100",
        "arithmetic-plus_top10_minus_bottom10_accuracy_x100",
    }
    table = report.tables["facts_top10_minus_bottom10_accuracy_x100"]
    assert list(table.columns) == [0, 40] and list(table.index) == [0]
    checks = {c.name: c for c in report.checks}
    facts_rho = checks["facts: accuracy rises with term frequency (Spearman)"]
    facts_gap = checks["facts: top-10 minus bottom-10 frequent terms (accuracy points)"]
    plus_rho = checks["arithmetic-plus: accuracy rises with term frequency (Spearman)"]
    plus_gap = checks["arithmetic-plus: top-10 minus bottom-10 frequent terms (accuracy points)"]
    counts = checks["counts: token counts in the trained rows follow the planted Zipf counts"]
    assert len(checks) == 5 and report.checks[-1] is counts
    # 40 steps: no fact is recalled, so accuracy against frequency cannot be tested
    assert (facts_rho.status, facts_rho.reason) == (
        "not testable",
        "accuracy is constant (0) over all 100 terms",
    )
    assert (facts_gap.status, facts_gap.reason) == (
        "not testable",
        "all 20 terms have the same value (0)",
    )
    assert all(math.isnan(c.effect) and c.n == 0 for c in (facts_rho, facts_gap))
    # one sum of 99 is right: a statistic, far from significant (and of the wrong sign)
    joined = read_fewshot(report.results[0])
    final = joined[(joined["task"] == "arithmetic-plus") & (joined["step"] == 40)]
    rho = spearmanr(final["count"], final["accuracy"]).statistic
    assert plus_rho.effect == pytest.approx(rho, abs=1e-12) and plus_rho.n == 99
    assert plus_rho.status == "not recovered" and plus_rho.p_value > 0.5
    assert plus_rho.ci_low <= plus_rho.effect <= plus_rho.ci_high
    assert plus_rho.test == "Spearman, permutation (10,000)"
    assert (plus_gap.status, plus_gap.effect, plus_gap.n) == ("not recovered", -10.0, 20)
    assert plus_gap.p_value > 0.5 and plus_gap.test.startswith("difference of means")
    # 40 steps see 5% of the corpus: the planted Zipf ranks already show, significantly
    assert counts.status == "recovered" and 0.6 < counts.ci_low < counts.effect < 1
    assert counts.p_value == pytest.approx(1 / 10_001) and (counts.n, counts.unit) == (99, "terms")
    assert all(c.p_adjusted == c.p_value or c.status == "not testable" for c in checks.values())


def test_notebook_runs(tiny_run: Path, corpus_dir: Path, tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # stripped
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = (
        f"from pathlib import Path\nRUN = Path({str(tiny_run)!r})\n"
        f"TRUTH = Path({str(corpus_dir / 'truth.json')!r})\n"
        f"OUT = Path({str(tmp_path / 'out')!r})\nSTEPS = None\nCHECKPOINTS = None\nSHOTS = (0,)\nX2 = (1,)"
    )
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "arithmetic-plus.0shot.png",
        "facts.0shot.png",
    ]
    last = nb.cells[-1].outputs[0]["data"]["text/plain"]
    assert "('facts', 0)" in last
