"""The SQLite catalog of a run and its checkpoints, at `RUN/catalog.sqlite`.

A RUN directory holds one run (model, variant, data seed, weight seed, resolved config) and
its checkpoint folders. The catalog records each complete checkpoint: step, tokens seen, path
(relative to RUN), sha256 of `model.safetensors`, sha256 of `SHA256SUMS` (which covers every
file), whether optimizer state is present, and when it was created. Analysis code selects
checkpoints through `Catalog.select`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from checkpoints_index.layout import (
    CATALOG,
    CHECKPOINTS,
    MODEL_FILE,
    OPTIMIZER_FILE,
    SUMS_FILE,
    TRAINER_STATE_FILE,
    checkpoint_dir,
    complete_dirs,
    step_of,
)
from checkpoints_index.records import CheckpointRecord, RunRecord, utc_from_timestamp, utc_now
from checkpoints_index.sums import check_folder, read_sums
from suite_core import CheckpointError
from suite_core.hashing import sha256_file
from suite_core.records import first_difference

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    model TEXT NOT NULL, variant TEXT NOT NULL,
    data_seed INTEGER NOT NULL, weight_seed INTEGER NOT NULL,
    config TEXT NOT NULL, created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    step INTEGER PRIMARY KEY, tokens_seen INTEGER, path TEXT NOT NULL,
    sha256 TEXT NOT NULL, sums_sha256 TEXT NOT NULL,
    has_optimizer INTEGER NOT NULL, created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    step INTEGER NOT NULL, name TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    PRIMARY KEY (step, name)
);
CREATE TABLE IF NOT EXISTS flags (
    step INTEGER NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL
);
"""
COLUMNS = "step, tokens_seen, path, sha256, sums_sha256, has_optimizer, created"


class Catalog:
    """The catalog of one RUN directory. Use `Catalog.open(run_dir)`, ideally in a `with`."""

    def __init__(self, run_dir: Path, connection: sqlite3.Connection) -> None:
        self.run_dir = run_dir
        self._db = connection

    @classmethod
    def open(cls, run_dir: str | Path, *, create: bool = True, read_only: bool = False) -> Catalog:
        """Open (or, with `create`, create) `RUN/catalog.sqlite`; RUN must exist.

        `read_only`: the file must exist and nothing is written to it (not even the schema)."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise FileNotFoundError(f"{run_dir}: run directory does not exist")
        path = run_dir / CATALOG
        if (read_only or not create) and not path.is_file():
            raise FileNotFoundError(f"{path}: no catalog")
        if path.exists() and not path.is_file():
            raise CheckpointError(f"{path}: not a usable SQLite catalog (not a regular file)")
        try:
            if read_only:
                connection = sqlite3.connect(
                    f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=60
                )
            else:
                connection = sqlite3.connect(path, timeout=60)
        except sqlite3.Error as exc:
            raise CheckpointError(f"{path}: not a usable SQLite catalog ({exc})") from None
        try:
            if read_only:
                tables = {
                    row[0]
                    for row in connection.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table'"
                    )
                }
                if not {"runs", "checkpoints"} <= tables:
                    raise sqlite3.DatabaseError("tables 'runs' and 'checkpoints' missing")
            else:
                connection.executescript(SCHEMA)
        except sqlite3.Error as exc:
            connection.close()
            raise CheckpointError(f"{path}: not a usable SQLite catalog ({exc})") from None
        return cls(run_dir, connection)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # runs -----------------------------------------------------------------------------
    def register_run(
        self, *, model: str, variant: str, data_seed: int, weight_seed: int, config: dict[str, Any]
    ) -> RunRecord:
        """Record the run; re-registering must match exactly (ValueError naming the field)."""
        config = json.loads(json.dumps(config, sort_keys=True))  # what will be stored
        given: dict[str, Any] = {
            "model": model,
            "variant": variant,
            "data_seed": data_seed,
            "weight_seed": weight_seed,
            "config": config,
        }
        existing = self.run()
        if existing is not None:
            field = first_difference({k: getattr(existing, k) for k in given}, given)
            if field is not None:
                raise CheckpointError(
                    f"{self.run_dir / CATALOG}: {field}: differs from the run registered in "
                    f"this directory (one run per RUN directory; use a new --out)"
                )
            return existing
        record = RunRecord(**given, created=utc_now())
        with self._db:
            self._db.execute(
                "INSERT INTO runs VALUES (1, ?, ?, ?, ?, ?, ?)",
                (
                    model,
                    variant,
                    data_seed,
                    weight_seed,
                    json.dumps(config, sort_keys=True),
                    record.created,
                ),
            )
        return record

    def run(self) -> RunRecord | None:
        """The registered run, or None."""
        row = self._db.execute(
            "SELECT model, variant, data_seed, weight_seed, config, created FROM runs"
        ).fetchone()
        if row is None:
            return None
        model, variant, data_seed, weight_seed, config, created = row
        return RunRecord(
            model=model,
            variant=variant,
            data_seed=data_seed,
            weight_seed=weight_seed,
            config=json.loads(config),
            created=created,
        )

    # checkpoints ----------------------------------------------------------------------
    def add_checkpoint(self, record: CheckpointRecord) -> None:
        """Insert (or replace) the row of `record.step`; called by `save_checkpoint`."""
        with self._db:
            self._db.execute(
                f"INSERT OR REPLACE INTO checkpoints ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.step,
                    record.tokens_seen,
                    record.path,
                    record.sha256,
                    record.sums_sha256,
                    int(record.has_optimizer),
                    record.created,
                ),
            )

    def checkpoints(self) -> list[CheckpointRecord]:
        """Every catalogued checkpoint, by step."""
        rows = self._db.execute(f"SELECT {COLUMNS} FROM checkpoints ORDER BY step").fetchall()
        return [_record(row) for row in rows]

    def get(self, step: int) -> CheckpointRecord:
        """The record of `step`; ValueError naming the step if it is not catalogued."""
        row = self._db.execute(
            f"SELECT {COLUMNS} FROM checkpoints WHERE step = ?", (step,)
        ).fetchone()
        if row is None:
            raise CheckpointError(f"{self.run_dir / CATALOG}: step {step}: no such checkpoint")
        return _record(row)

    def select(
        self,
        *,
        steps: Iterable[int] | None = None,
        every: int | None = None,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> list[CheckpointRecord]:
        """Checkpoints by step: exactly `steps` (each must exist), and/or multiples of `every`
        within [`min_step`, `max_step`]."""
        records = self.checkpoints() if steps is None else [self.get(s) for s in sorted(set(steps))]
        if every is not None:
            if every < 1:
                raise CheckpointError(f"every: must be >= 1, got {every}")
            records = [r for r in records if r.step % every == 0]
        return [
            r
            for r in records
            if (min_step is None or r.step >= min_step) and (max_step is None or r.step <= max_step)
        ]

    def latest_complete(self) -> CheckpointRecord | None:
        """The newest checkpoint whose folder is on disk with its `SHA256SUMS` (after `sync`)."""
        self.sync()
        on_disk = complete_dirs(self.run_dir)
        for record in reversed(self.checkpoints()):
            if record.step in on_disk and is_own(record):
                return record
        return None

    def sync(self) -> tuple[list[int], list[int]]:
        """Add complete folders missing from the catalog; forget rows whose folder vanished.

        Returns (added steps, forgotten steps). Temporary `.stepN.tmp-*` folders are ignored.
        """
        on_disk = complete_dirs(self.run_dir)
        known = {r.step: r for r in self.checkpoints()}
        added = [s for s in on_disk if s not in known]
        for step in added:
            log.warning("%s: complete on disk but not in the catalog; adding it", on_disk[step])
            self.add_checkpoint(record_from_folder(self.run_dir, step))
        # rows of another run's folders (a branch's parent checkpoints) are not this run's to sync
        forgotten = [s for s in known if s not in on_disk and is_own(known[s])]
        for step in forgotten:
            log.warning(
                "%s: folder is gone or incomplete; forgetting it in the catalog",
                known[step].folder(self.run_dir),
            )
        if forgotten:
            with self._db:
                self._db.executemany(
                    "DELETE FROM checkpoints WHERE step = ?", [(s,) for s in forgotten]
                )
        return added, forgotten

    def verify(self, steps: Iterable[int] | None = None) -> list[str]:
        """Re-hash every file of the selected checkpoints; one message per problem.

        Read-only. Without `steps`, `stepN` folders on disk that the catalog does not list
        (complete or not) are problems too: `sync` is how a crash's leftovers are re-catalogued.
        """
        records = self.checkpoints()
        if steps is not None:
            wanted = set(steps)
            missing = sorted(wanted - {r.step for r in records})
            records = [r for r in records if r.step in wanted]
        else:
            missing = []
        problems = [f"{self.run_dir / CATALOG}: step {s}: no such checkpoint" for s in missing]
        for record in records:
            problems += record_problems(self.run_dir, record)
        if steps is None:
            problems += self.uncatalogued()
        return problems

    def uncatalogued(self) -> list[str]:
        """One message per `stepN` folder of RUN/checkpoints the catalog does not list."""
        known = {r.folder(self.run_dir).absolute() for r in self.checkpoints()}
        root = self.run_dir / CHECKPOINTS
        if not root.is_dir():
            return []
        out = []
        for child in sorted(root.iterdir()):
            step = step_of(child)
            if step is None or not child.is_dir() or child.absolute() in known:
                continue
            if (child / SUMS_FILE).is_file():
                out.append(
                    f"{child}: complete checkpoint not in the catalog "
                    "(`pythia-suite checkpoints sync` adds it)"
                )
            else:
                out.append(f"{child}: damaged checkpoint ({SUMS_FILE} is missing)")
        return out


def is_own(record: CheckpointRecord) -> bool:
    """Whether the record's folder is this run's `checkpoints/stepN` (not a linked parent's)."""
    parts = Path(record.path).parts
    return len(parts) == 2 and parts[0] == CHECKPOINTS


def record_problems(run_dir: Path, record: CheckpointRecord) -> list[str]:
    """Problems of one checkpoint: its files against `SHA256SUMS`, and that against the catalog.

    A folder catalogued by `checkpoints index` (a Hugging Face folder, no `SHA256SUMS`) is
    checked against the file hashes the catalog holds for it."""
    folder = record.folder(run_dir)
    if not (folder / SUMS_FILE).exists() and not record.path.startswith(f"{CHECKPOINTS}/"):
        return indexed_problems(run_dir, record)
    problems = check_folder(folder)
    if problems:
        return problems
    if sha256_file(folder / SUMS_FILE) != record.sums_sha256:
        problems.append(f"{folder}: {SUMS_FILE}: sha256 differs from the catalog's")
    if read_sums(folder).get(MODEL_FILE) != record.sha256:
        problems.append(f"{folder}: {MODEL_FILE}: sha256 differs from the catalog's")
    return problems


def sums_text(sums: dict[str, str]) -> str:
    """The `SHA256SUMS` text of name -> digest (sorted `HEX  NAME` lines)."""
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))


def catalogued_files(run_dir: Path, step: int) -> dict[str, str]:
    """Name -> sha256 the catalog holds for `step`'s files (a folder `checkpoints index`ed)."""
    with Catalog.open(run_dir, read_only=True) as catalog:
        rows = catalog._db.execute(
            "SELECT name, sha256 FROM files WHERE step = ?", (step,)
        ).fetchall()
    return dict(rows)


def indexed_problems(run_dir: Path, record: CheckpointRecord) -> list[str]:
    """Problems of an indexed folder: every file re-hashed against the catalog's."""
    import hashlib

    folder = record.folder(run_dir)
    if not folder.is_dir():
        return [f"{folder}: checkpoint folder is missing"]
    try:
        sums = catalogued_files(run_dir, record.step)
    except ValueError as exc:
        return [str(exc)]
    if not sums:
        return [f"{folder}: no file hashes in {run_dir / CATALOG} (re-run `checkpoints index`)"]
    problems = []
    if hashlib.sha256(sums_text(sums).encode()).hexdigest() != record.sums_sha256:
        problems.append(f"{folder}: file hashes in {CATALOG} differ from the checkpoint's row")
    for name, expected in sorted(sums.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{folder}: {name}: catalogued but missing")
        elif (actual := sha256_file(path)) != expected:
            problems.append(
                f"{folder}: {name}: sha256 mismatch "
                f"(expected {expected[:12]}..., got {actual[:12]}...)"
            )
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name not in sums:
            problems.append(f"{folder}: {path.name}: not in the catalog")
    return problems


def record_from_folder(
    run_dir: str | Path, step: int, *, tokens_seen: int | None = None, created: str | None = None
) -> CheckpointRecord:
    """The catalog record of a complete folder, from its `SHA256SUMS` (files are not re-hashed)."""
    folder = checkpoint_dir(run_dir, step)
    sums = read_sums(folder)
    if MODEL_FILE not in sums:
        raise CheckpointError(f"{folder / SUMS_FILE}: {MODEL_FILE} is not listed")
    if tokens_seen is None and TRAINER_STATE_FILE in sums:
        state = json.loads((folder / TRAINER_STATE_FILE).read_text(encoding="utf-8"))
        tokens_seen = tokens_from_state(state)
    return CheckpointRecord(
        step=step,
        tokens_seen=tokens_seen,
        path=f"{CHECKPOINTS}/{folder.name}",
        sha256=sums[MODEL_FILE],
        sums_sha256=sha256_file(folder / SUMS_FILE),
        has_optimizer=OPTIMIZER_FILE in sums,
        created=created or utc_from_timestamp((folder / SUMS_FILE).stat().st_mtime),
    )


def tokens_from_state(state: dict[str, Any]) -> int | None:
    """Tokens seen, from a trainer state's `tokens_seen` (or `tokens`) field, if an int."""
    value = state.get("tokens_seen", state.get("tokens"))
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _record(row: tuple[Any, ...]) -> CheckpointRecord:
    step, tokens, path, sha, sums_sha, has_opt, created = row
    return CheckpointRecord(
        step=step,
        tokens_seen=tokens,
        path=path,
        sha256=sha,
        sums_sha256=sums_sha,
        has_optimizer=bool(has_opt),
        created=created,
    )
