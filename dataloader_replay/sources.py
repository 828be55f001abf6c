"""`open_source(SPEC)`: the one way every reader opens training rows.

SPEC is one of
- a prepared data directory (`manifest.json`, `train.{bin,idx}`) or a bare `.bin/.idx` prefix:
  the merged file, memory-mapped (`TrainData.open`);
- a folder of EleutherAI's sharded layout, `document.idx` + `document-000KK-of-000NN.bin`
  (any stem, any number of shards of any sizes), plain or a Hugging Face cache snapshot
  (`datasets--OWNER--NAME/snapshots/REVISION/`): read in place, never unsharded (`shards.py`);
- `hf://datasets/OWNER/NAME[@REVISION]` or an `http(s)://` base URL of the same layout: read
  by range requests with an on-disk range cache (`remote.py`).
A RUN (`open_run`) is its run.json's data (checked by fingerprint) seen through its transform.
Every source gives the same bytes for the same rows. Published facts about EleutherAI's
datasets (`pythia_facts.py`) are enforced at their pinned revisions, warned about otherwise.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

from dataloader_replay.pythia_facts import PublishedDataset, published
from dataloader_replay.replay import PYTHIA_BATCH_SIZE, TrainData, TransformedData
from dataloader_replay.shards import (
    SHARD_NAME,
    Files,
    Layout,
    LocalFiles,
    Origin,
    Piece,
    ShardedRows,
    place_shards,
    read_idx_info,
)
from dataloader_replay.transforms import validate_transform
from suite_core import ConfigError, DataError
from suite_core.layout import MANIFEST
from suite_core.records import RunJson

log = logging.getLogger(__name__)
REMOTE = re.compile(r"^(hf|https?):/+", re.IGNORECASE)
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def is_remote(spec: str | Path) -> bool:
    return bool(REMOTE.match(str(spec)))


def normalize(spec: str | Path) -> str:
    """`hf:/x` and `https:/x` (a URL that went through `Path`) back to `scheme://x`."""
    text = str(spec)
    m = REMOTE.match(text)
    return f"{m[1].lower()}://{text[m.end() :]}" if m else text


def open_source(
    spec: str | Path, *, batch_size: int | None = None, cache: Path | None = None
) -> TrainData:
    """Open training rows from any SOURCE (see the module docstring)."""
    if is_remote(spec):
        from dataloader_replay.remote import open_remote

        remote, listing, origin = open_remote(normalize(spec), cache=cache)
        return open_sharded(
            remote, listing, name=normalize(spec), batch_size=batch_size, origin=origin
        )
    path = Path(spec)
    if path.is_dir() and not (path / MANIFEST).is_file() and is_sharded_folder(path):
        files = LocalFiles(path)
        return open_sharded(
            files,
            files.listing(),
            name=str(path),
            batch_size=batch_size,
            origin=folder_origin(path),
        )
    return TrainData.open(path, batch_size=batch_size)


def is_sharded_folder(path: Path) -> bool:
    names = {p.name for p in path.iterdir()}
    return any(
        (m := SHARD_NAME.match(n)) is not None and f"{m['stem']}.idx" in names for n in names
    )


def folder_origin(folder: Path) -> Origin:
    """Repo and revision of an HF cache snapshot (`datasets--O--N/snapshots/REV/`), and the
    idx's sha256 from its blob name (the hub names LFS blobs by their sha256)."""
    parts = folder.resolve().parts
    if len(parts) < 3 or parts[-2] != "snapshots" or not parts[-3].startswith("datasets--"):
        return Origin()
    repo_id = parts[-3][len("datasets--") :].replace("--", "/", 1)
    idx_sha = None
    for idx in folder.glob("*.idx"):
        if idx.is_symlink() and SHA256_HEX.match(idx.resolve().name):
            idx_sha = idx.resolve().name
    return Origin(repo_id=repo_id, revision=parts[-1], identity=idx_sha)


def open_sharded(
    files: Files,
    listing: Mapping[str, int | None],
    *,
    name: str,
    batch_size: int | None,
    origin: Origin,
) -> TrainData:
    """A `TrainData` over shards read in place through `files`."""
    layout = Layout.find(listing, files.where)
    idx_size = listing.get(layout.idx)
    if idx_size is None:
        raise DataError(f"{files.locate(layout.idx)}: missing (a broken link or not downloaded)")
    info = read_idx_info(files, layout.idx, idx_size)
    try:
        shards = place_shards(layout.names, listing, info.num_rows * info.row_bytes, files.locate)
    except DataError:
        probe = ShardedRows(files=files, layout=layout, info=info, shards=[])
        probe.row_bytes_range(info.num_rows - 1, info.num_rows)  # rows of other lengths?
        raise
    rows = ShardedRows(files=files, layout=layout, info=info, shards=shards)
    check_published(rows, origin)
    if rows.missing:
        log.warning(
            "%s: %d of %d shards absent (%s); only the steps whose rows lie in the others "
            "can be read",
            files.where,
            len(rows.missing),
            len(shards),
            ", ".join(rows.missing),
        )
    if batch_size is None:
        batch_size = PYTHIA_BATCH_SIZE
    if batch_size < 1:
        raise ConfigError(f"--batch-size: must be a positive integer, got {batch_size}")
    return TrainData(
        name=name,
        prefix=Path(files.where) / layout.stem,
        directory=None,
        batch_size=batch_size,
        seq_length=info.width - 1,
        num_rows=info.num_rows,
        vocab_size=None,
        manifest=None,
        store=rows,
        identity=origin.identity,
    )


def published_mismatches(rows: ShardedRows, facts: PublishedDataset) -> list[str]:
    """How the source differs from what EleutherAI published for the dataset."""
    info, out = rows.info, []
    found = {
        "sequence_count": (info.num_rows, facts.rows),
        "sequence_lengths": (info.width, facts.row_tokens),
        "dtype": (info.dtype.name, facts.dtype),
        "size": (info.idx_size, facts.idx_bytes),
        "shards": (len(rows.shards), facts.num_shards),
    }
    for field_name, (have, want) in found.items():
        if have != want:
            where = rows.files.locate(rows.layout.idx) if field_name != "shards" else "shards"
            out.append(f"{where}: field '{field_name}': {have}, published {want}")
    if len(rows.shards) == facts.num_shards:
        for shard, want in zip(rows.shards, facts.shard_sizes()):
            if shard.size is not None and shard.size != want:
                out.append(
                    f"{rows.files.locate(shard.name)}: field 'size': {shard.size} bytes, "
                    f"published {want}"
                )
    return out


def check_published(rows: ShardedRows, origin: Origin) -> None:
    """At a pinned revision of a published dataset, a mismatch is an error; at another
    revision of it, a warning."""
    facts = published(origin.repo_id)
    if facts is None:
        return
    problems = published_mismatches(rows, facts)
    if not problems:
        return
    pinned = origin.revision == facts.revision
    at = f"{facts.repo_id}@{origin.revision or '?'}"
    if pinned:
        raise DataError(f"{problems[0]} (EleutherAI's published shape at {at})")
    log.warning(
        "%s (%s is not the pinned revision %s; %d differences)",
        problems[0],
        at,
        facts.revision[:12],
        len(problems),
    )


def plan_steps(data: TrainData, start: int, end: int) -> list[Piece]:
    """The byte ranges replaying steps [start, end) reads (idx header and entries, shard
    slices) for a sharded source; the merged file's range for a merged one."""
    data.check_step(start, "steps")
    data.check_step(end - 1, "steps")
    r0, r1 = start * data.batch_size, end * data.batch_size
    if isinstance(data.store, ShardedRows):
        return data.store.plan(r0, r1)
    row = (data.seq_length + 1) * data.dtype.itemsize
    return [Piece(name=f"{data.prefix}.bin", start=r0 * row, end=r1 * row)]


def open_run(run: str | Path) -> TransformedData:
    """Read `RUN/run.json` (its data section: path, fingerprint, transform) and open that data,
    refused if it is not the data the run was trained on."""
    config = RunJson.read(run)
    where = config.path
    spec = dict(config.data.transform) if config.data.transform is not None else None
    try:
        validate_transform(spec)
    except ValueError as exc:
        raise DataError(f"{where}: data.{exc}") from None
    path = config.data_path
    recorded = config.data.fingerprint
    if not path.exists():
        raise FileNotFoundError(
            f"{where}: field 'data.path': {path}: no such directory (the run's data"
            + (
                f", fingerprint {recorded[:12]}...; moved? `train --resume --data NEW` records "
                "the new place"
                if recorded is not None
                else ""
            )
            + ")"
        )
    opened = open_source(path)
    if opened.manifest is not None:
        config.check_data(opened.manifest)
    elif recorded is not None:
        raise DataError(f"{where}: field 'data.path': {path} is not a prepared data directory")
    return TransformedData(data=opened, transform=spec, run=Path(run))
