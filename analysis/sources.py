"""Where the studies get their inputs: checkpoints and training rows, from any source.

Checkpoints (`open_checkpoints`):
- a RUN of this suite (it has `catalog.sqlite`): the catalogued `stepN` folders; each folder is
  checked against `SHA256SUMS` and the catalog before a model is loaded from it;
- a folder of Hugging Face checkpoints laid out as `DIR/stepN/` (for example downloaded
  EleutherAI revisions), hashed on first use;
- one Hugging Face `GPTNeoXForCausalLM` folder (`config.json` inside) given with the step
  its weights are at (`--model DIR --step N`).
Models are loaded with `transformers` (`GPTNeoXForCausalLM.from_pretrained`), so the studies
run unchanged on EleutherAI's published checkpoints.

Rows (`open_rows`): a RUN (what its model saw, transforms included), a folder of fetched
checkpoints whose `rows.json` names its SOURCE, or any SOURCE of
`dataloader_replay.sources.open_source`: a prepared data directory, a bare `.bin/.idx` prefix,
EleutherAI's preshuffled shards in place, `hf://datasets/...` or an `http(s)://` mirror
(B = 1024 unless given).
Row r is trained by update r // B + 1; the checkpoint at step s has seen rows [0, s * B).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from checkpoints_index.catalog import Catalog, record_problems
from checkpoints_index.layout import CATALOG, MODEL_FILE, STEP_DIR, SUMS_FILE
from checkpoints_index.sums import check_folder
from dataloader_replay.sources import open_run, open_source
from suite_core import DataError
from suite_core.hashing import sha256_file
from suite_core.layout import RunLayout
from suite_core.records import view_fingerprint

if TYPE_CHECKING:
    from transformers import GPTNeoXForCausalLM

ROWS_JSON = "rows.json"  # an external run's rows (pythia_suite/suite/external.py)
DTYPES = ("float32", "bfloat16", "float16")


class Rows(Protocol):
    """Training rows in training order (a `TrainData` or a run's `TransformedData`)."""

    @property
    def batch_size(self) -> int: ...
    @property
    def seq_length(self) -> int: ...
    @property
    def num_rows(self) -> int: ...

    def rows(self, start: int, end: int) -> np.ndarray: ...
    def check_step(self, step: int, field_name: str = "step", *, seen: bool = False) -> None: ...


@dataclass(kw_only=True)
class Checkpoints:
    """The checkpoints of one model: step -> folder, each verified before it is loaded."""

    name: str
    folders: dict[int, Path]
    run_dir: Path | None = None  # set when the folders are a catalogued run's
    needs_sums: bool = False  # a run without its catalog: every folder checked by SHA256SUMS
    _sha256: dict[int, str] = field(default_factory=dict, repr=False)

    @property
    def steps(self) -> list[int]:
        return sorted(self.folders)

    def folder(self, step: int) -> Path:
        if step not in self.folders:
            raise DataError(
                f"{self.name}: field 'step': no checkpoint at step {step} "
                f"(available: {_short(self.steps)})"
            )
        return self.folders[step]

    def sha256(self, step: int) -> str:
        """sha256 of the step's `model.safetensors` (the catalog's for a run)."""
        if step not in self._sha256:
            self._sha256[step] = sha256_file(self.folder(step) / MODEL_FILE)
        return self._sha256[step]

    def verify(self, step: int) -> None:
        """DataError naming the folder if a run's checkpoint differs from its catalog (or, for
        a run whose catalog is gone, from its SHA256SUMS; with neither it is refused)."""
        folder = self.folder(step)  # ValueError naming the step if there is no such checkpoint
        if self.run_dir is None:
            if not self.needs_sums:
                return
            if (folder / SUMS_FILE).is_file():
                problems = check_folder(folder)
                if problems:
                    raise DataError(problems[0])
            else:
                raise DataError(
                    f"{folder}: no {SUMS_FILE} and the run has no catalog; refusing an "
                    "unverifiable checkpoint (restore catalog.sqlite or the SHA256SUMS)"
                )
            return
        with Catalog.open(self.run_dir, create=False) as catalog:
            problems = record_problems(self.run_dir, catalog.get(step))
        if problems:
            raise DataError(problems[0])

    def load(self, step: int, *, dtype: str = "float32") -> GPTNeoXForCausalLM:
        """The model at `step` through transformers, in eval mode, after verification."""
        import torch
        from transformers import AutoConfig, GPTNeoXForCausalLM

        if dtype not in DTYPES:
            raise DataError(f"--dtype: unknown {dtype!r} (choose from {', '.join(DTYPES)})")
        self.verify(step)
        folder = self.folder(step)
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        if config.model_type != "gpt_neox":
            raise DataError(
                f"{folder / 'config.json'}: field 'model_type': "
                f"{config.model_type!r} is not a GPT-NeoX causal LM"
            )
        with _quiet_loading():  # no "Loading weights" bar for each of many checkpoints
            model = GPTNeoXForCausalLM.from_pretrained(
                folder, dtype=getattr(torch, dtype), local_files_only=True
            )
        return model.eval()


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """transformers' progress bars off while loading, as they were afterwards."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def open_checkpoints(path: str | Path, *, step: int | None = None) -> Checkpoints:
    """Checkpoints of a RUN, a `DIR/stepN/` folder, or one HF folder at `step`."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such directory (expected a run or a model folder)")
    if (path / "config.json").is_file():
        if step is None:
            raise DataError(
                f"{path}: a single model folder needs --step (the step its weights are at)"
            )
        _check_model_folder(path)
        return Checkpoints(name=str(path), folders={step: path})
    if (path / CATALOG).is_file():
        with Catalog.open(path, create=False) as catalog:
            records = catalog.checkpoints()
        folders = {r.step: r.folder(path) for r in records}
        ckpts = Checkpoints(name=str(path), folders=folders, run_dir=path)
        ckpts._sha256.update({r.step: r.sha256 for r in records})
    else:
        root = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        folders = {
            int(m.group(1)): child
            for child in root.iterdir()
            if child.is_dir()
            and (m := STEP_DIR.match(child.name))
            and (child / "config.json").is_file()
        }
        ckpts = Checkpoints(name=str(path), folders=folders, needs_sums=RunLayout(path).is_run())
    if not ckpts.folders:
        raise DataError(f"{path}: no checkpoints (no stepN folders with config.json)")
    if step is not None:
        ckpts.folder(step)
    return ckpts


def _check_model_folder(path: Path) -> None:
    if not (path / MODEL_FILE).is_file():
        raise FileNotFoundError(
            f"{path / MODEL_FILE}: no such file (a model folder holds "
            "config.json and model.safetensors)"
        )


def open_rows(
    path: str | Path, *, batch_size: int | None = None, cache: Path | None = None
) -> Rows:
    """Training rows of a RUN (transforms applied) or any SOURCE `open_source` takes (a
    prepared DIR, a bare prefix, EleutherAI's shards in place, `hf://` or `http(s)://`)."""
    if Path(path).is_dir() and RunLayout(Path(path)).is_run():
        return open_run(path)
    if Path(path).is_dir() and (Path(path) / ROWS_JSON).is_file():  # fetched checkpoints
        return _named_rows(Path(path) / ROWS_JSON, batch_size, cache)
    return open_source(path, batch_size=batch_size, cache=cache)


def _named_rows(record: Path, batch_size: int | None, cache: Path | None) -> Rows:
    """The rows `rows.json` names (`{"source": SPEC, "batch_size": B}`), through open_source."""
    try:
        named = json.loads(record.read_text(encoding="utf-8"))
        spec, named_batch = str(named["source"]), named.get("batch_size")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{record}: not a rows record ({exc})") from None
    return open_source(spec, batch_size=batch_size or named_batch, cache=cache)


def data_fingerprint(rows: Rows) -> str:
    """What identifies the rows (a results file's `data_fingerprint`): the manifest's fingerprint
    for prepared data (run.json's `data.fingerprint`), the sha256 of the `.idx` for a bare
    prefix; for a run's view, combined with its transform (`suite_core.records.view_fingerprint`,
    equal to `RunJson.data_fingerprint`)."""
    data: Any = getattr(rows, "data", rows)
    base = data.fingerprint or getattr(data, "identity", None)  # identity: the hub's idx sha256
    if not base:
        base = sha256_file(Path(str(data.prefix) + ".idx"))
    return view_fingerprint(str(base), getattr(rows, "transform", None))


def seen_before(rows: np.ndarray, step: int, batch_size: int) -> np.ndarray:
    """Which training rows the checkpoint at `step` has trained on: row < step * B."""
    return np.asarray(rows) < step * batch_size


def attrs_json(value: Any) -> str:
    """Canonical JSON for an HDF5 attribute."""
    return json.dumps(value, sort_keys=True)


def _short(steps: list[int]) -> str:
    return (
        ", ".join(map(str, steps))
        if len(steps) <= 8
        else (f"{', '.join(map(str, steps[:4]))}, ..., {', '.join(map(str, steps[-2:]))}")
    )
