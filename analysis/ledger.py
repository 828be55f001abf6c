"""The planted-item ledger: where each planted item occurs in what a run's model trained on.

After Hubble's perturbation ledger (one record per insertion with its training position), but
derived by replay: `build_ledger(RUN, truth)` reads the run's rows as its model saw them
(`dataloader_replay.replay.open_run`, transforms included, so a pronoun-swap branch's ledger
differs from its parent's after the branch step) and finds every planted item
(`analysis.planted_items`) in one vectorized pass (`analysis.windows.find_patterns`).

A record is (item, kind, run, row, step, offset): the item's token pattern starts at `offset`
of trained row `row`, used at `step = row // B` (the batch that takes checkpoint `step` to
`step + 1`). Trained rows are [0, steps x B) with `steps` from the run's run.json.

Files (`Ledger.write(DIR)`): `DIR/<run>.h5` (h5py; datasets item, row, step, offset and the
item table; attributes: run, data fingerprint, truth and corpus sha256, config) and
`DIR/<run>.csv` (the same records), both written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.planted_items import Item, Truth, as_truth, check_truth_belongs, planted_items
from analysis.sources import attrs_json, data_fingerprint
from analysis.windows import find_patterns
from dataloader_replay.replay import TransformedData
from dataloader_replay.sources import open_run
from dataloader_replay.tokenizer import read_tokenizer
from suite_core import ConfigError, DataError
from suite_core.atomic import atomic_path
from suite_core.hashing import sha256_file
from suite_core.records import RunJson

log = logging.getLogger(__name__)

MAX_TOKENS = 32  # an item's pattern: its first tokens, at most this many (and at most a row)
COLUMNS = ["item", "kind", "run", "row", "step", "offset"]


@dataclass(frozen=True, kw_only=True)
class Ledger:
    """Every occurrence of every planted item in one run's trained rows."""

    run: str
    table: pd.DataFrame  # COLUMNS, sorted by (item order, row, offset)
    items: pd.DataFrame  # item, kind, tokens (pattern length), text
    batch_size: int
    steps: int  # trained steps: rows [0, steps * batch_size)
    fingerprint: str  # the run's data (transform included)
    config: dict[str, Any]  # what produced it (max_tokens, truth and corpus sha256)

    def _select(self, item_ids: Any) -> pd.Index:
        ids = pd.Index(self.items["item"] if item_ids is None else list(item_ids), name="item")
        unknown = ids.difference(pd.Index(self.items["item"]))
        if len(unknown):
            raise DataError(f"ledger of {self.run}: field 'item': unknown item {unknown[0]!r}")
        return ids

    def exposures(self, item_ids: Any = None, step: int | None = None) -> pd.Series:
        """Occurrences of each item in the rows trained before checkpoint `step` (row < step * B;
        all trained rows when step is None)."""
        ids = self._select(item_ids)
        end = self.steps if step is None else step
        seen = self.table[self.table["row"] < end * self.batch_size]
        return seen.groupby("item").size().reindex(ids, fill_value=0).astype(np.int64)

    def first_exposure(self, item_ids: Any = None) -> pd.Series:
        """The step of each item's first occurrence (its batch; checkpoint step + 1 is the first
        to have seen it), <NA> for an item the run never trained on."""
        ids = self._select(item_ids)
        first = self.table.groupby("item")["step"].min()
        return first.reindex(ids).astype("Int64")

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        """`out_dir/<run>.h5` and `out_dir/<run>.csv`, each written to a temporary name first."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        h5, csv = out_dir / f"{self.run}.h5", out_dir / f"{self.run}.csv"
        with atomic_path(h5, overwrite=True) as tmp:
            self._write_h5(tmp)
        with atomic_path(csv, overwrite=True) as tmp:
            self.table.to_csv(tmp, index=False)
        return h5, csv

    def _write_h5(self, path: Path) -> None:
        import h5py

        order = {item: i for i, item in enumerate(self.items["item"])}
        strings = h5py.string_dtype()
        with h5py.File(path, "w") as f:
            f.create_dataset(
                "item_id", data=self.items["item"].to_numpy(dtype=object), dtype=strings
            )
            f.create_dataset(
                "item_kind", data=self.items["kind"].to_numpy(dtype=object), dtype=strings
            )
            f.create_dataset(
                "item_text", data=self.items["text"].to_numpy(dtype=object), dtype=strings
            )
            f.create_dataset("item_tokens", data=self.items["tokens"].to_numpy(np.int64))
            f.create_dataset("item", data=self.table["item"].map(order).to_numpy(np.int64))
            for name in ("row", "step", "offset"):
                f.create_dataset(name, data=self.table[name].to_numpy(np.int64))
            f.attrs["run"] = self.run
            f.attrs["batch_size"] = self.batch_size
            f.attrs["steps"] = self.steps
            f.attrs["data_fingerprint"] = self.fingerprint
            f.attrs["config"] = attrs_json(self.config)


def read_ledger(path: Path) -> Ledger:
    """A ledger written by `Ledger.write`; errors name the file."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ledger file (`pythia-suite ledger RUN`)")
    with h5py.File(path, "r") as f:
        ids = [s.decode() if isinstance(s, bytes) else s for s in f["item_id"][()]]
        items = pd.DataFrame(
            {
                "item": ids,
                "kind": [s.decode() if isinstance(s, bytes) else s for s in f["item_kind"][()]],
                "tokens": f["item_tokens"][()],
                "text": [s.decode() if isinstance(s, bytes) else s for s in f["item_text"][()]],
            }
        )
        run = str(f.attrs["run"])
        index = f["item"][()]
        table = pd.DataFrame(
            {
                "item": np.asarray(ids, dtype=object)[index],
                "kind": items["kind"].to_numpy(dtype=object)[index],
                "run": run,
                **{n: f[n][()] for n in ("row", "step", "offset")},
            },
            columns=COLUMNS,
        )
        return Ledger(
            run=run,
            table=table,
            items=items,
            batch_size=int(f.attrs["batch_size"]),
            steps=int(f.attrs["steps"]),
            fingerprint=str(f.attrs["data_fingerprint"]),
            config=json.loads(f.attrs["config"]),
        )


def trained_steps(run: TransformedData) -> int:
    """The steps the run trained (run.json `steps`, at most the data's)."""
    config = RunJson.read(run.run)
    steps = config.steps
    if steps is None or steps < 0:
        raise DataError(f"{config.path}: field 'steps' missing or not an integer >= 0")
    return min(steps, run.num_steps)


def _corpus_of(truth: Truth, run: TransformedData) -> Path | None:
    """The corpus the truth describes: corpus.jsonl next to it, the corpus a deduplicated input
    was made from, or the data's input; the one whose sha256 is the truth's `corpus_sha256`
    when it has one, else the first that exists."""
    source = run.data.manifest.input.get("path") if run.data.manifest is not None else None
    candidates = [] if truth.path is None else [truth.path.parent / "corpus.jsonl"]
    if isinstance(source, str):
        original = _dedup_original(Path(source))
        candidates += ([original] if original is not None else []) + [Path(source)]
    existing = [c for c in candidates if c.is_file()]
    if truth.corpus_sha256 is None:
        return existing[0] if existing else None
    return next((c for c in existing if sha256_file(c) == truth.corpus_sha256), None)


def _dedup_original(corpus: Path) -> Path | None:
    """The input a deduplicated corpus was made from (named by its dedup report)."""
    report = corpus.with_name(corpus.name + ".report.json")
    if not report.is_file():
        return None
    saved = json.loads(report.read_text(encoding="utf-8"))
    inputs = saved.get("inputs") or [saved.get("input")]  # older reports: one `input`
    if len(inputs) != 1 or not isinstance(inputs[0], str):
        return None
    original = Path(inputs[0])
    return original if original.is_absolute() else report.parent / original


def truth_next_to_data(run_dir: Path) -> Path:
    """The truth.json next to the corpus the run's data was prepared from (for a deduplicated
    corpus: next to the corpus its dedup report names)."""
    rows = open_run(run_dir)
    manifest = rows.data.manifest
    source = manifest.input.get("path") if manifest is not None else None
    if not isinstance(source, str):
        raise DataError(f"{rows.data.name}: manifest has no input path (pass --truth FILE)")
    corpus = Path(source)
    original = _dedup_original(corpus)
    candidates = [corpus.parent / "truth.json"]
    if original is not None:
        candidates.append(original.parent / "truth.json")
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise FileNotFoundError(
            f"{candidates[-1]}: no such file (no truth.json next to the corpus of "
            f"{run_dir}; pass --truth FILE)"
        )
    return found


def build_ledger(
    run_dir: Path, truth: Truth | dict[str, Any] | Path, *, max_tokens: int = MAX_TOKENS
) -> Ledger:
    """The ledger of `run_dir` for every planted item of `truth` (a Truth, a dict or a path)."""
    if max_tokens < 1:
        raise ConfigError(f"--max-tokens: must be >= 1, got {max_tokens}")
    run_dir, truth = Path(run_dir), as_truth(truth)
    rows = open_run(run_dir)
    data = rows.data
    if data.directory is None or data.manifest is None:
        raise DataError(f"{run_dir}: the ledger needs the run's prepared data directory")
    check_truth_belongs(truth, data.manifest, str(data.directory))
    tokenizer = read_tokenizer(data.directory / "tokenizer.json")
    width = min(max_tokens, data.seq_length + 1)
    items = planted_items(truth, tokenizer, corpus=_corpus_of(truth, rows), max_tokens=width)
    steps = trained_steps(rows)
    matches = find_patterns(rows, [it.tokens for it in items], end_row=steps * rows.batch_size)
    log.info("%s: %d occurrences of %d planted items", run_dir, len(matches.row), len(items))
    return Ledger(
        run=run_dir.name,
        table=_table(
            items, matches.pattern, matches.row, matches.offset, run_dir.name, rows.batch_size
        ),
        items=pd.DataFrame(
            {
                "item": [it.id for it in items],
                "kind": [it.kind for it in items],
                "tokens": [len(it.tokens) for it in items],
                "text": [it.text for it in items],
            }
        ),
        batch_size=rows.batch_size,
        steps=steps,
        fingerprint=data_fingerprint(rows),
        config={
            "max_tokens": width,
            "truth_sha256": _truth_sha(truth),
            "corpus_sha256": truth.corpus_sha256,
            "transform": rows.transform,
        },
    )


def _truth_sha(truth: Truth) -> str:
    text = json.dumps(truth.data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _table(
    items: list[Item],
    pattern: np.ndarray,
    row: np.ndarray,
    offset: np.ndarray,
    run: str,
    batch_size: int,
) -> pd.DataFrame:
    order = np.lexsort((offset, row, pattern))
    p = pattern[order]
    return pd.DataFrame(
        {
            "item": np.asarray([it.id for it in items], dtype=object)[p],
            "kind": np.asarray([it.kind for it in items], dtype=object)[p],
            "run": run,
            "row": row[order],
            "step": row[order] // batch_size,
            "offset": offset[order],
        },
        columns=COLUMNS,
    )


def suite_ledger_path(run_dir: Path) -> Path:
    """Where a suite's `ledger` stage writes a run's ledger: `<suite>/ledger/<run>.h5` for a run
    at `<suite>/runs/<run>`."""
    run_dir = Path(run_dir)
    return run_dir.parent.parent / "ledger" / f"{run_dir.name}.h5"


def ledger_for(run_dir: Path, truth: Truth | dict[str, Any] | Path) -> Ledger:
    """The suite's ledger of the run when it was written for this data and truth, else one
    built now (in memory)."""
    truth = as_truth(truth)
    path = suite_ledger_path(run_dir)
    if path.is_file():
        stored = read_ledger(path)
        if stored.config.get("truth_sha256") == _truth_sha(
            truth
        ) and stored.fingerprint == data_fingerprint(open_run(run_dir)):
            return stored
        log.info("%s: written for other data or another truth: building the ledger again", path)
    return build_ledger(run_dir, truth)
