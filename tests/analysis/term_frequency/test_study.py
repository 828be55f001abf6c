"""`run_study` (what `pythia-suite run` calls) and the notebook, on the tiny run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from analysis.study import RunSpec
from analysis.term_frequency import run_study
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
        "facts: top-10 minus bottom-10 accuracy x100",
        "arithmetic-plus: top-10 minus bottom-10 accuracy x100",
    }
    table = report.tables["facts: top-10 minus bottom-10 accuracy x100"]
    assert list(table.columns) == [0, 40] and list(table.index) == [0]
    names = [c.name for c in report.checks]
    assert len(names) == 5 and names[-1].startswith("counts:")
    # 40 steps see 5% of the corpus: the planted Zipf ranks show, but not yet at Spearman 0.9
    count_check = report.checks[-1]
    assert 0.6 < count_check.value < 1 and count_check.passed == (count_check.value > 0.9)
    assert all(isinstance(c.value, float) for c in report.checks)
    assert all(math.isfinite(c.value) or "Spearman" in c.name for c in report.checks)


def test_notebook_runs(tiny_run: Path, corpus_dir: Path, tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # stripped
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = (
        f"from pathlib import Path\nRUN = Path({str(tiny_run)!r})\n"
        f"TRUTH = Path({str(corpus_dir / 'truth.json')!r})\n"
        f"OUT = Path({str(tmp_path / 'out')!r})\nSTEPS = None\nSHOTS = (0,)\nX2 = (1,)"
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
