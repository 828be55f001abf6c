"""Result files: counts as JSON lines, CSV or HDF5; few-shot accuracy joined with counts as HDF5.

HDF5 layout (h5py), every file written atomically:
- counts file: `steps` [S], `terms` [T] (str), `tokens` [T] (str, comma-separated ids),
  `counts` [S, T] int64, `pairs` [S, T, T] int64 (upper triangle, with --pairs); attributes
  `source`, `batch_size`, `seq_length`, `data_fingerprint`, `config` (JSON).
- few-shot file: the columns of the joined table under `table/` (task, term, shots, step,
  accuracy, n, count), the completions under `completions/`, attributes `config`,
  `checkpoint_sha256` (JSON step -> sha256), `data_fingerprint`.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from analysis.sources import attrs_json
from analysis.term_frequency.scan import CountResult
from suite_core import DataError
from suite_core.atomic import atomic_path, refuse_existing

if TYPE_CHECKING:
    import pandas as pd

FORMATS = (".h5", ".hdf5", ".csv")


def check_output(path: Path | None, *, overwrite: bool = False) -> None:
    """Refuse an output path that exists or has an unknown suffix, before any work is done."""
    if path is None:
        return
    if path.suffix not in FORMATS:
        raise DataError(f"{path}: unknown output format (use {', '.join(FORMATS)})")
    refuse_existing(path, overwrite=overwrite)


def write_jsonl(result: CountResult, fh: IO[str] = sys.stdout) -> None:
    for record in result.records():
        fh.write(json.dumps(record) + "\n")
    for record in result.pair_records():
        fh.write(json.dumps(record) + "\n")


def write_counts(result: CountResult, path: Path, *, overwrite: bool = False) -> Path:
    """Counts to `.h5` / `.hdf5` (arrays) or `.csv` (term, tokens, step, count [, pairs])."""
    check_output(path, overwrite=overwrite)
    with atomic_path(path, overwrite=overwrite) as tmp:
        if path.suffix == ".csv":
            _write_csv(result, tmp)
        else:
            _write_h5(result, tmp)
    return path


def _write_csv(result: CountResult, tmp: Path) -> None:
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["term", "term2", "tokens", "tokens2", "step", "count"])
        for r in result.records():
            out.writerow(
                [r["term"], "", ",".join(map(str, r["tokens"])), "", r["step"], r["count"]]
            )
        for r in result.pair_records():
            out.writerow(
                [
                    r["terms"][0],
                    r["terms"][1],
                    ",".join(map(str, r["tokens"][0])),
                    ",".join(map(str, r["tokens"][1])),
                    r["step"],
                    r["count"],
                ]
            )


def _write_h5(result: CountResult, tmp: Path) -> None:
    import h5py

    with h5py.File(tmp, "w") as f:
        _counts_group(f, result)


def _counts_group(group: Any, result: CountResult) -> None:
    import h5py

    text = h5py.string_dtype()
    group.create_dataset("steps", data=np.asarray(result.steps, dtype=np.int64))
    group.create_dataset("terms", data=[t.name for t in result.terms], dtype=text)
    group.create_dataset(
        "tokens", data=[",".join(map(str, t.tokens)) for t in result.terms], dtype=text
    )
    group.create_dataset("counts", data=result.counts)
    if result.pairs is not None:
        group.create_dataset("pairs", data=result.pairs, compression="gzip")
    group.attrs.update(
        source=result.source,
        batch_size=result.batch_size,
        seq_length=result.seq_length,
        data_fingerprint=result.fingerprint,
        config=attrs_json(result.config),
    )


def read_counts(path: Path) -> pd.DataFrame:
    """An HDF5 counts file as a long table (term, tokens, step, count)."""
    import h5py
    import pandas as pd

    with h5py.File(path, "r") as f:
        steps = f["steps"][()]
        terms = [t.decode() if isinstance(t, bytes) else t for t in f["terms"][()]]
        tokens = [t.decode() if isinstance(t, bytes) else t for t in f["tokens"][()]]
        counts = f["counts"][()]
    return pd.DataFrame(
        [
            {
                "term": terms[t],
                "tokens": tokens[t],
                "step": int(steps[s]),
                "count": int(counts[s, t]),
            }
            for t in range(len(terms))
            for s in range(len(steps))
        ]
    )


def write_fewshot(
    joined: pd.DataFrame,
    completions: pd.DataFrame,
    counts: CountResult,
    path: Path,
    *,
    config: dict[str, Any],
    sha256: dict[int, str],
    overwrite: bool = False,
) -> Path:
    """The joined table, the completions and the counts they were joined with, in one file."""
    import h5py

    check_output(path, overwrite=overwrite)
    with atomic_path(path, overwrite=overwrite) as tmp, h5py.File(tmp, "w") as f:
        _frame(f.create_group("table"), joined)
        _frame(f.create_group("completions"), completions)
        _counts_group(f.create_group("counts"), counts)
        f.attrs.update(
            config=attrs_json(config),
            data_fingerprint=counts.fingerprint,
            checkpoint_sha256=attrs_json({str(k): v for k, v in sha256.items()}),
        )
    return path


def _frame(group: Any, frame: pd.DataFrame) -> None:
    import h5py
    import pandas as pd

    for name in frame.columns:
        col = frame[name]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            text = [str(v).replace("\x00", "\\x00") for v in col]  # HDF5 strings hold no NUL
            group.create_dataset(name, data=text, dtype=h5py.string_dtype())
        else:
            group.create_dataset(name, data=col.to_numpy())
    group.attrs["columns"] = attrs_json(list(frame.columns))


def read_fewshot(path: Path, group: str = "table") -> pd.DataFrame:
    """The joined table (or `completions`) of a few-shot file as pandas."""
    import h5py
    import pandas as pd

    with h5py.File(path, "r") as f:
        g = f[group]
        columns = json.loads(g.attrs["columns"])
        data = {c: g[c][()] for c in columns}
    for c, v in data.items():
        if v.dtype == object:
            data[c] = [x.decode() if isinstance(x, bytes) else x for x in v]
    return pd.DataFrame(data, columns=columns)
