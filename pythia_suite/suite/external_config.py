"""The `external` section of a suite config: runs whose checkpoints are fetched from the hub
and whose rows are read from a SOURCE (`suite/external.py` builds their stages). Parsed here,
apart from the stages, so that `config` can check it without importing the stage graph."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from analysis.study import RunSpec

RUN_KEYS = ("model", "steps", "rows", "batch_size")
SECTION_KEYS = ("endpoint", "skip_reported", "crows", "runs")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExternalRun:
    name: str
    model: str  # a Pythia row or OWNER/NAME
    steps: str  # fetch rule
    rows: str  # SOURCE of the training rows
    batch_size: int | None
    path: Path

    def spec(self, layout: Any) -> RunSpec:  # the suite's Layout (unused: the run has a path)
        del layout
        variant = "deduped" if "deduped" in self.model else "standard"
        return RunSpec(
            name=self.name,
            path=self.path,
            model=self.model,
            n_params=_params(self.path),
            variant=variant,
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExternalSection:
    endpoint: str | None
    skip_reported: bool
    crows: str | None
    runs: tuple[ExternalRun, ...]


def parse_external(
    data: dict[str, Any], layout_root: Path | None, error: Callable[[str, str], Exception]
) -> ExternalSection:
    """The typed `external` section; `error(dotted, message)` builds the one-line error."""
    from checkpoints_index.fetch import resolve_model
    from checkpoints_index.schedule import checkpoint_steps

    for key in data:
        if key not in SECTION_KEYS:
            raise error(f"external.{key}", f"unknown key (known: {', '.join(SECTION_KEYS)})")
    runs_data = data.get("runs")
    if not isinstance(runs_data, dict) or not runs_data:
        raise error("external.runs", "must be a non-empty mapping of run name -> settings")
    runs = []
    for name, item in runs_data.items():
        where = f"external.runs.{name}"
        if not isinstance(item, dict):
            raise error(where, f"must be a mapping ({', '.join(RUN_KEYS)})")
        for key in item:
            if key not in RUN_KEYS:
                raise error(f"{where}.{key}", f"unknown key (known: {', '.join(RUN_KEYS)})")
        for key in ("model", "steps", "rows"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise error(f"{where}.{key}", f"must be a non-empty string, got {item.get(key)!r}")
        batch = item.get("batch_size")
        if batch is not None and (not isinstance(batch, int) or batch < 1):
            raise error(f"{where}.batch_size", f"must be an integer >= 1, got {batch!r}")
        try:
            resolve_model(item["model"])
            checkpoint_steps(item["steps"], 1 << 20)
        except ValueError as exc:
            raise error(f"{where}", str(exc)) from None
        root = layout_root or Path(".")
        runs.append(
            ExternalRun(
                name=str(name),
                model=item["model"],
                steps=item["steps"],
                rows=item["rows"],
                batch_size=batch,
                path=root / "runs" / str(name),
            )
        )
    for key in ("endpoint", "crows"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise error(f"external.{key}", f"must be a string, got {data[key]!r}")
    if not isinstance(data.get("skip_reported", False), bool):
        raise error("external.skip_reported", "must be true or false")
    return ExternalSection(
        endpoint=data.get("endpoint"),
        skip_reported=bool(data.get("skip_reported", False)),
        crows=data.get("crows"),
        runs=tuple(runs),
    )


def _params(path: Path) -> int:
    """Total parameters of the last catalogued checkpoint (from its safetensors header)."""
    from safetensors import safe_open

    from analysis.sources import open_checkpoints

    ckpts = open_checkpoints(path)
    folder = ckpts.folder(ckpts.steps[-1])
    total = 0
    for weights in sorted(folder.glob("*.safetensors")):
        with safe_open(str(weights), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (a safe_open handle, not a dict)
                count = 1
                for dim in handle.get_slice(key).get_shape():
                    count *= int(dim)
                total += count
    return total
