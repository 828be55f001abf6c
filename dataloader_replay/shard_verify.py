"""`pythia-suite verify FOLDER` for a folder of shards: every file against a published sha256.

References, in order: the table given (tests), else EleutherAI's `utils/shard_hashes.txt`
(`pythia_facts.PUBLISHED_SHA256`, by file name), else, in a Hugging Face cache snapshot, the
blob a file links to (the hub names LFS blobs by their sha256). A file no reference covers is
reported as unchecked; a listed file that is absent, or a hash that differs, is a problem.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from dataloader_replay.pythia_facts import PUBLISHED_SHA256
from dataloader_replay.shards import SHARD_NAME
from suite_core.hashing import sha256_file

log = logging.getLogger(__name__)
CHUNK = 1 << 22
SHA256_HEX = 64


@dataclass(frozen=True, kw_only=True)
class ShardCheck:
    name: str
    status: str  # "ok", "mismatch", "missing", "unchecked"
    expected: str | None = None
    found: str | None = None
    source: str = ""  # where the expected hash comes from


@dataclass(frozen=True, kw_only=True)
class ShardReport:
    folder: Path
    checks: list[ShardCheck]

    @property
    def problems(self) -> list[str]:
        out = []
        for c in self.checks:
            if c.status == "mismatch":
                out.append(
                    f"{self.folder / c.name}: sha256 {c.found} differs from {c.expected} "
                    f"({c.source})"
                )
            elif c.status == "missing":
                out.append(f"{self.folder / c.name}: missing ({c.source} lists it)")
        return out

    def summary(self) -> str:
        count = {s: sum(c.status == s for c in self.checks) for s in ("ok", "unchecked")}
        return (
            f"{self.folder}: {count['ok']} files match their published sha256, "
            f"{count['unchecked']} have none to check against"
        )


def hash_with_progress(path: Path) -> str:
    """`sha256_file` with a progress bar (shards are gigabytes)."""
    size = path.stat().st_size
    bar = tqdm(total=size, unit="B", unit_scale=True, desc=path.name, disable=None, leave=False)
    with bar:
        return sha256_file(path, CHUNK, on_chunk=bar.update)


def is_shard_folder(folder: Path, table: Mapping[str, str] | None = None) -> bool:
    names = {p.name for p in folder.iterdir()}
    listed = table if table is not None else PUBLISHED_SHA256
    return bool(names & set(listed)) or any(SHARD_NAME.match(n) for n in names)


def verify_shards(folder: Path, table: Mapping[str, str] | None = None) -> ShardReport:
    """Hash every idx and shard file in `folder` and compare (see the module docstring)."""
    source = "the given table" if table is not None else "EleutherAI/pythia utils/shard_hashes.txt"
    reference = dict(table if table is not None else PUBLISHED_SHA256)
    present = sorted(
        p for p in folder.iterdir() if p.suffix in (".bin", ".idx") and not p.name.startswith(".")
    )
    checks = []
    for path in present:
        expected, origin = reference.get(path.name), source
        if expected is None and path.is_symlink() and len(path.resolve().name) == SHA256_HEX:
            expected, origin = path.resolve().name, "the hub's LFS sha256 (blob name)"
        if not path.exists():
            checks.append(ShardCheck(name=path.name, status="missing", source=origin))
            continue
        if expected is None:
            checks.append(ShardCheck(name=path.name, status="unchecked"))
            continue
        found = hash_with_progress(path)
        status = "ok" if found == expected else "mismatch"
        checks.append(
            ShardCheck(name=path.name, status=status, expected=expected, found=found, source=origin)
        )
    stems = {m["stem"] for p in present if (m := SHARD_NAME.match(p.name))}
    for name in sorted(reference):
        m = SHARD_NAME.match(name)
        stem = m["stem"] if m else name.removesuffix(".idx")
        if stem in stems and not (folder / name).exists() and not (folder / name).is_symlink():
            checks.append(ShardCheck(name=name, status="missing", source=source))
    return ShardReport(folder=folder, checks=checks)
