"""notebooks/replay.ipynb and notebooks/checkpoint_study.ipynb, executed on the tiny suite."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.pythia_suite.suite.conftest import SuiteRun

NOTEBOOKS = Path(__file__).resolve().parents[3] / "notebooks"


def execute(name: str, parameters: dict[str, object], cwd: Path) -> nbformat.NotebookNode:
    """Run the notebook with `parameters` set after its `parameters` cell (papermill's way:
    the defaults stay, the given ones override them), its kernel started in `cwd`."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{name}: one cell tagged 'parameters'"
    if parameters:
        cells[0].source += "\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return nb


def _text(nb: nbformat.NotebookNode) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", "") or str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


ALL = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.parametrize("name", ALL)
def test_notebooks_are_committed_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_replay_notebook(tiny_suite: SuiteRun, tmp_path: Path) -> None:
    run = tiny_suite.dir / "runs" / "pythia-nano-deduped"
    nb = execute(
        "replay.ipynb",
        {
            "RUN": str(run),
            "STEP": 5,
            "ROW_IN_BATCH": 3,
            "FIND": " the",
            "PRESHUFFLED": str(tiny_suite.dir / "data" / "deduped" / "train"),
            "PRESHUFFLED_BATCH_SIZE": 8,
        },
        tmp_path,
    )
    text = _text(nb)
    assert (
        f"{run}: 24 steps of 8 rows x 33 tokens; batch 5 verified" in text
    )  # the trained steps; the 32 held-out rows are not a step of the run
    assert "row 43 (step 5):" in text
    assert "pile_set_name" in text and "occurrences, in" in text
    assert f"{tiny_suite.dir / 'data' / 'deduped' / 'train'}: 28 steps; batch 5: (8, 33)" in text


def test_checkpoint_study_notebook(tiny_suite: SuiteRun, tmp_path: Path) -> None:
    nb = execute(
        "checkpoint_study.ipynb", {"SUITE": str(tiny_suite.dir), "MAX_CHECKPOINTS": 4}, tmp_path
    )
    text = _text(nb)
    assert "largest difference from the trainer's logged loss" in text
    assert "pythia-nano-deduped" in text and "pythia-nano-standard" in text
    assert any(
        o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
        for c in nb.cells
        for o in c.get("outputs", [])
    )


# What each notebook computes is sized for the default suite; the test keeps the paths at their
# defaults and only makes the work small (fewer rows, checkpoints and shots, no generation).
SMALL: dict[str, dict[str, object]] = {
    "checkpoint_study.ipynb": {"MAX_CHECKPOINTS": 2},
    "memorization.ipynb": {"ROWS": 16},
    "term_frequency.ipynb": {"STEPS": [24], "SHOTS": (0,), "X2": (1,)},
    "replay.ipynb": {},
    "bias_intervention.ipynb": {},
}
SMALL_ENV = {"BIAS_STEPS": "24"}  # the bias notebook reads its parameters from the environment too


@pytest.mark.parametrize("name", ALL)
def test_notebook_opens_what_make_demo_wrote(
    name: str, demo_layout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a user after `make demo`: default paths, kernel started in notebooks/."""
    for key, value in SMALL_ENV.items():
        monkeypatch.setenv(key, value)
    nb = execute(name, SMALL[name], demo_layout / "notebooks")
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = _text(nb)
    suite = demo_layout / "runs" / "default"
    assert str(suite) in text, text[:2000]  # the default resolved from notebooks/
    if name != "replay.ipynb":  # every other notebook draws
        assert any("image/png" in o.get("data", {}) for o in outputs)
