"""The run directory of a training run: `run.json`, `metrics.jsonl`, and what resuming needs.

RUN/run.json is the resolved config, written atomically before the first update; a resumed run
must resolve to the same config (field by field) or nothing is touched. RUN/metrics.jsonl gets
one JSON object per update, appended and flushed; on resume it is cut back (atomically) to the
step of the checkpoint the run continues from.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, TextIO

from checkpoints_index.catalog import Catalog, record_problems
from checkpoints_index.layout import CATALOG, SUMS_FILE, complete_dirs
from suite_core import CheckpointError, ConfigError
from suite_core.atomic import atomic_path
from suite_core.layout import METRICS, RUN_JSON
from suite_core.records import RunJson, first_difference

log = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"^step(\d+)$")


def normalize(obj: Any) -> Any:
    """The JSON round trip of `obj` (tuples become lists), so that configs compare as stored."""
    return json.loads(json.dumps(obj))


def _lookup(obj: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return "<absent>"
        obj = obj[key]
    return obj


# run.json fields that say where the data was, not what it is: the data is named by
# `data.fingerprint` (and `data.manifest`), so the same data moved elsewhere still resumes
LOCATION_FIELDS = ("path", "manifest_sha256")


def without_location(config: Any) -> Any:
    if isinstance(config, dict) and isinstance(config.get("data"), dict):
        data = {k: v for k, v in config["data"].items() if k not in LOCATION_FIELDS}
        return {**config, "data": data}
    return config


def check_same_config(run: RunJson, config: dict) -> None:
    """`ConfigError` naming the first field where RUN/run.json differs from `config` (the data's
    location aside: data is compared by fingerprint)."""
    path = run.path
    old, config = without_location(run.to_dict()), without_location(normalize(config))
    field = first_difference(old, normalize(config))
    if field is not None:
        raise ConfigError(
            f"{path}: field '{field}' differs from this command "
            f"(run has {_lookup(old, field)!r}, command gives {_lookup(normalize(config), field)!r}); "
            "resume with the run's own settings or use a new --out"
        )


def write_run_json(run_dir: Path, config: dict, *, overwrite: bool = False) -> None:
    with atomic_path(run_dir / RUN_JSON, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(normalize(config), indent=2) + "\n")


def metrics_line(record: dict) -> str:
    """One metrics object as a line (fixed key order, `repr` floats: byte-stable)."""
    return json.dumps(record) + "\n"


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Keep the lines of updates 1..`step` (a torn last line from a kill is dropped)."""
    path = run_dir / METRICS
    kept: list[str] = []
    if path.exists():
        for line in path.read_text().splitlines(keepends=True):
            if not line.endswith("\n"):
                break
            try:
                n = int(json.loads(line)["step"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                break
            if n > step:
                break
            kept.append(line)
    if len(kept) != step:
        raise ConfigError(
            f"{path}: has {len(kept)} complete lines up to step {step}, expected {step}; "
            "the run directory is inconsistent"
        )
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text("".join(kept))


def open_metrics(run_dir: Path) -> TextIO:
    return open(run_dir / METRICS, "a", encoding="utf-8")


def damaged_step_dirs(run_dir: Path) -> list[Path]:
    """`checkpoints/stepN` folders without `SHA256SUMS`: a save renames a folder into place only
    once SHA256SUMS is written, so these were damaged afterwards (never a kill's leftover)."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and _STEP_DIR.match(p.name) and not (p / SUMS_FILE).is_file()
    )


def logged_steps(run_dir: Path) -> int:
    """How many complete lines RUN/metrics.jsonl holds (0 if there is none)."""
    path = run_dir / METRICS
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_bytes().splitlines(keepends=True) if line.endswith(b"\n"))


def check_resumable(run_dir: Path) -> None:
    """Refuse (ValueError naming what is wrong) to resume a run whose history would be lost.

    A damaged `stepN` folder (no SHA256SUMS), a catalogued checkpoint whose folder is gone or
    whose files no longer hash to the catalog (every one re-hashed, not only the newest), or
    logged updates with no complete checkpoint to continue from: resuming would either loop on
    the damage or start over and rewrite metrics.jsonl, so nothing is touched.
    """
    damaged = damaged_step_dirs(run_dir)
    if damaged:
        raise ConfigError(
            f"{damaged[0]}: damaged checkpoint ({SUMS_FILE} is missing"
            + (f"; also {', '.join(p.name for p in damaged[1:])}" if damaged[1:] else "")
            + "); restore it or remove the folder to resume from an earlier one"
        )
    catalogued = []
    if (run_dir / CATALOG).is_file():
        with Catalog.open(run_dir, read_only=True) as catalog:
            catalogued = catalog.checkpoints()
    on_disk = complete_dirs(run_dir)
    # linked records (a branch's parent checkpoints) live outside RUN: check the folder itself
    gone = [r for r in catalogued if not (r.folder(run_dir) / SUMS_FILE).is_file()]
    if gone:
        raise ConfigError(
            f"{gone[0].folder(run_dir)}: catalogued checkpoint is missing"
            + (f" (and {len(gone) - 1} more)" if len(gone) > 1 else "")
            + "; restore it, or run `pythia-suite checkpoints sync` to forget missing checkpoints"
        )
    damaged_records = [p for r in catalogued for p in record_problems(run_dir, r)]
    if damaged_records:
        raise CheckpointError(
            f"{damaged_records[0]}; refusing to resume past a damaged checkpoint (restore it, "
            "or remove it and run `pythia-suite checkpoints sync`)"
        )
    logged = logged_steps(run_dir)
    if not on_disk and not catalogued and logged:  # a branch's linked parent checkpoints count
        raise ConfigError(
            f"{run_dir}: {METRICS} logs {logged} updates but there is no complete checkpoint to "
            "continue from; resuming would start over and rewrite that history (use a new --out)"
        )
