"""Where a run keeps its checkpoints: `RUN/checkpoints/stepN/`, temporaries `.stepN.tmp-*`."""

from __future__ import annotations

import re
from pathlib import Path

from suite_core import CheckpointError
from suite_core.layout import CATALOG, CHECKPOINTS  # the run directory's names, declared once

__all__ = [
    "CATALOG", "CHECKPOINTS", "CONFIG_FILE", "EXTRA_FILE", "MODEL_FILE", "OPTIMIZER_FILE",
    "STEP_DIR", "SUMS_FILE", "TMP_DIR", "TRAINER_STATE_FILE", "checkpoint_dir", "complete_dirs",
    "stale_tmp_dirs", "step_of",
]  # fmt: skip

STEP_DIR = re.compile(r"^step(0|[1-9][0-9]*)$")
TMP_DIR = re.compile(r"^\.step(0|[1-9][0-9]*)\.tmp-")

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
OPTIMIZER_FILE = "optimizer.pt"
TRAINER_STATE_FILE = "trainer_state.json"
EXTRA_FILE = "rng.pt"
SUMS_FILE = "SHA256SUMS"


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    """`RUN/checkpoints/stepN`: the folder of the checkpoint after `step` optimizer updates."""
    if step < 0:
        raise CheckpointError(f"step: must be >= 0, got {step}")
    return Path(run_dir) / CHECKPOINTS / f"step{step}"


def step_of(path: Path) -> int | None:
    """The step of a `stepN` folder name, or None for anything else (temporaries included)."""
    match = STEP_DIR.match(path.name)
    return int(match.group(1)) if match else None


def complete_dirs(run_dir: str | Path) -> dict[int, Path]:
    """Step -> folder for every `stepN` folder on disk that holds its `SHA256SUMS`."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return {}
    found = {}
    for child in root.iterdir():
        step = step_of(child)
        if step is not None and child.is_dir() and (child / SUMS_FILE).is_file():
            found[step] = child
    return dict(sorted(found.items()))


def stale_tmp_dirs(run_dir: str | Path) -> list[Path]:
    """The `.stepN.tmp-*` leftovers of interrupted saves (never read)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if TMP_DIR.match(p.name))
