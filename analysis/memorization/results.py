"""The memorization results file (HDF5) and its pandas view.

Datasets: `steps` [S] int64, `rows` [R] int64 (training row indices), `scores` float32 [S, R],
`seen` bool [S, R], `loglik` float32 [S, R], `token_acc` float32 [S, R]. Attributes: `config`
(the full configuration as JSON), `k`, `target`, `dtype`, `batch_size`, `model` (ids),
`sha256` (JSON list, one per step), `data_fingerprint`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from suite_core import DataError
from suite_core.atomic import atomic_path

ARRAYS = ("scores", "seen", "loglik", "token_acc")


@dataclass(kw_only=True)
class MemResults:
    steps: np.ndarray  # int64 [S]
    rows: np.ndarray  # int64 [R]
    scores: np.ndarray  # float32 [S, R]
    seen: np.ndarray  # bool [S, R]
    loglik: np.ndarray  # float32 [S, R]
    token_acc: np.ndarray  # float32 [S, R]
    attrs: dict[str, Any]

    @property
    def batch_size(self) -> int:
        return int(self.attrs["batch_size"])

    def frame(self) -> pd.DataFrame:
        """One line per (step, row): step, row, score, memorized, seen, loglik, token_acc."""
        s, r = len(self.steps), len(self.rows)
        return pd.DataFrame(
            {
                "step": np.repeat(self.steps, r),
                "row": np.tile(self.rows, s),
                "score": self.scores.ravel(),
                "memorized": self.scores.ravel() == 1.0,
                "seen": self.seen.ravel(),
                "loglik": self.loglik.ravel(),
                "token_acc": self.token_acc.ravel(),
            }
        )

    def at(self, step: int) -> MemResults:
        """The results of one step (a view with S = 1)."""
        i = int(np.flatnonzero(self.steps == step)[0])
        return MemResults(
            steps=self.steps[i : i + 1],
            rows=self.rows,
            **{a: getattr(self, a)[i : i + 1] for a in ARRAYS},
            attrs=self.attrs,
        )


def write_results(path: Path, res: MemResults, *, overwrite: bool = False) -> Path:
    """Write `res` to `path` atomically (FileExistsError if it exists and not overwrite)."""
    import h5py

    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("steps", data=np.asarray(res.steps, dtype=np.int64))
        f.create_dataset("rows", data=np.asarray(res.rows, dtype=np.int64))
        f.create_dataset("scores", data=np.asarray(res.scores, dtype=np.float32))
        f.create_dataset("seen", data=np.asarray(res.seen, dtype=bool))
        f.create_dataset("loglik", data=np.asarray(res.loglik, dtype=np.float32))
        f.create_dataset("token_acc", data=np.asarray(res.token_acc, dtype=np.float32))
        for key, value in res.attrs.items():
            f.attrs[key] = (
                value if isinstance(value, (int, float, str)) else json.dumps(value, sort_keys=True)
            )
    return path


def read_results(path: str | Path) -> MemResults:
    """Read a results file written by `write_results`."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a memorization results file)")
    with h5py.File(path, "r") as f:
        missing = [n for n in ("steps", "rows", *ARRAYS) if n not in f]
        if missing:
            raise DataError(f"{path}: field '{missing[0]}': missing (not a memorization file)")
        data = {n: f[n][()] for n in ("steps", "rows", *ARRAYS)}
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
    return MemResults(**data, attrs=attrs)


def load_scores(path: str | Path) -> pd.DataFrame:
    """The results file as a DataFrame (one line per step and row)."""
    return read_results(path).frame()
