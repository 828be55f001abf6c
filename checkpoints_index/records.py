"""The records the catalog hands out: one run, its checkpoints."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunRecord:
    """The run a RUN directory holds (one run per directory)."""

    model: str
    variant: str
    data_seed: int
    weight_seed: int
    config: dict[str, Any]
    created: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class CheckpointRecord:
    """One complete checkpoint folder, as the catalog records it.

    `sha256` is the digest of `model.safetensors`; `sums_sha256` the digest of `SHA256SUMS`,
    which itself lists the digest of every file of the folder. `path` is relative to RUN.
    `created` (ISO-8601, UTC) lives only here, never inside the checkpoint files.
    """

    step: int
    tokens_seen: int | None
    path: str
    sha256: str
    sums_sha256: str
    has_optimizer: bool
    created: str

    def folder(self, run_dir: str | Path) -> Path:
        """The checkpoint folder on disk."""
        return Path(run_dir) / self.path

    def as_dict(self) -> dict[str, Any]:
        """Plain values (for JSON output)."""
        return dataclasses.asdict(self)


def utc_now() -> str:
    """The current time, ISO-8601 UTC, seconds precision."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def utc_from_timestamp(seconds: float) -> str:
    """A POSIX timestamp as ISO-8601 UTC, seconds precision."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
