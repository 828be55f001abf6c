"""`pythia-suite verify DATA|RUN`: recheck prepared data, or a run and everything it rests on.

For a prepared data directory: `dataloader_replay.integrity.verify_data`. For a folder of
EleutherAI's shards: each file's sha256 against the published one
(`dataloader_replay.shard_verify`). For a RUN: the data
its run.json names (by path, and it must have the run's fingerprint) as above; metrics.jsonl
holds steps 1..N in order and each logged batch_sha256 equals the batch replayed from the data
(transform applied); N is at most the run's steps and at least its newest checkpoint; every
catalogued checkpoint re-hashes to its SHA256SUMS and catalog row, and every stepN folder is
catalogued. Nothing is written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from checkpoints_index.catalog import Catalog
from checkpoints_index.layout import CATALOG
from dataloader_replay.integrity import verify_data
from dataloader_replay.shard_verify import is_shard_folder, verify_shards
from dataloader_replay.verify import logged_hashes, verify_run
from suite_core import CheckpointError, DataError
from suite_core.layout import MANIFEST, METRICS, RUN_JSON
from suite_core.records import RunJson

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Report:
    path: Path
    lines: list[str] = field(default_factory=list)  # what was checked, for the summary
    problems: list[str] = field(default_factory=list)
    batches: int = 0  # logged batch hashes replayed and matched (a run)
    checkpoints: int = 0  # checkpoints re-hashed (a run)

    def raise_first(self) -> None:
        """CheckpointError naming the first problem (the others logged), if there is any."""
        if not self.problems:
            return
        for problem in self.problems[1:]:
            log.error("%s", problem)
        more = len(self.problems) - 1
        raise CheckpointError(self.problems[0] + (f" (and {more} more problems)" if more else ""))


def verify_path(path: str | Path) -> Report:
    """Verify a prepared data directory or a run directory; problems are collected."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such directory (expected prepared data or a run)")
    if (path / RUN_JSON).is_file():
        return _verify_run(path)
    if (path / MANIFEST).is_file():
        data = verify_data(path)
        return Report(path=path, lines=[data.summary()], problems=data.problems)
    if is_shard_folder(path):
        shards = verify_shards(path)
        return Report(path=path, lines=[shards.summary()], problems=shards.problems)
    raise FileNotFoundError(
        f"{path}: neither prepared data ({MANIFEST}), a run ({RUN_JSON}) nor a folder of shards"
    )


def _verify_run(run: Path) -> Report:
    report = Report(path=run)
    try:
        config = RunJson.read(run)
        if config.steps is None:
            raise DataError("field 'steps' missing")
        data_path, run_steps = config.data_path, config.steps
    except ValueError as exc:
        report.problems.append(f"{run / RUN_JSON}: not a run configuration ({exc})")
        return report
    if data_path.is_dir():
        data = verify_data(data_path)
        report.lines.append(data.summary())
        report.problems += data.problems
    try:
        logged = _replay(run, report)
    except (ValueError, OSError) as exc:
        report.problems.append(str(exc))
        logged = None
    report.problems += _checkpoint_problems(run, logged, run_steps, report)
    return report


def verify_batches(run: Path) -> Report:
    """Only the logged batches of `run` (`replay RUN --verify`): each batch_sha256 of
    metrics.jsonl against the batch replayed from the data. A bad run.json, data or metrics
    file raises; a mismatch is the report's problem."""
    report = Report(path=run)
    _replay(run, report)
    return report


def _replay(run: Path, report: Report) -> int:
    """Replay every logged batch into `report`; the number of logged steps."""
    result = verify_run(run)  # the fingerprint, the metrics lines, the replayed hashes
    if result.mismatch is not None:
        m = result.mismatch
        report.problems.append(
            f"{run / METRICS}:{m.line}: step {m.step}: batch_sha256 "
            f"mismatch (logged {m.logged}, replayed {m.replayed})"
        )
    else:
        report.batches = result.checked
    logged = len(logged_hashes(run / METRICS))
    report.lines.append(f"{run / METRICS}: steps 1..{logged}, {result.checked} batches replayed")
    return logged


def _checkpoint_problems(
    run: Path, logged: int | None, run_steps: int, report: Report
) -> list[str]:
    problems = []
    if logged is not None and logged > run_steps:
        problems.append(f"{run / METRICS}: logs {logged} steps, the run has {run_steps}")
    if not (run / CATALOG).is_file():
        if (run / "checkpoints").is_dir():
            problems.append(
                f"{run / CATALOG}: no catalog (`pythia-suite checkpoints sync` builds it)"
            )
        elif logged:
            problems.append(
                f"{run}: {METRICS} logs {logged} steps but the run has no "
                f"checkpoints/ and no {CATALOG}"
            )
        return problems
    try:
        with Catalog.open(run, read_only=True) as catalog:
            records = catalog.checkpoints()
            problems += catalog.verify()
    except (ValueError, OSError) as exc:
        return [*problems, str(exc)]
    report.lines.append(f"{run / CATALOG}: {len(records)} checkpoints re-hashed")
    report.checkpoints = 0 if problems else len(records)
    newest = max((r.step for r in records), default=0)
    if logged is not None and logged < newest:
        problems.append(
            f"{run / METRICS}: logs steps 1..{logged} but checkpoint step{newest} "
            "exists (lines are missing)"
        )
    return problems
