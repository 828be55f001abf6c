"""notebooks/bias_intervention.ipynb runs top to bottom on the session's runs (outputs stripped)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.analysis.bias.conftest import BiasRuns

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "bias_intervention.ipynb"


def test_notebook_is_stripped() -> None:
    nb = json.loads(NOTEBOOK.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def test_notebook_runs(bias_runs: BiasRuns, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import nbformat
    from nbclient import NotebookClient

    env = {
        "BIAS_BASELINE": str(bias_runs.base),
        "BIAS_BRANCH": str(bias_runs.swap),
        "BIAS_TRUTH": str(bias_runs.truth_path),
        "BIAS_OUT": str(tmp_path / "out"),
        "BIAS_STEPS": "40",
        "BIAS_GENERATION": "0",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(NOTEBOOK.parents[1]), os.environ.get("PYTHONPATH")])
        ),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert (tmp_path / "out" / "bias.h5").is_file()
