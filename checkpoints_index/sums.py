"""sha256 of checkpoint files and the `SHA256SUMS` manifest (`sha256sum -c` compatible)."""

from __future__ import annotations

import os
from pathlib import Path

from checkpoints_index.layout import SUMS_FILE
from suite_core import CheckpointError
from suite_core.hashing import sha256_file


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (directories: so that renames inside it are durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_sums(folder: Path, names: list[str]) -> dict[str, str]:
    """Hash `names` in `folder` and write `SHA256SUMS` (sorted, `HEX  NAME` lines); fsync it."""
    sums = {name: sha256_file(folder / name) for name in sorted(names)}
    text = "".join(f"{digest}  {name}\n" for name, digest in sums.items())
    path = folder / SUMS_FILE
    with open(path, "w", encoding="ascii", newline="\n") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return sums


def read_sums(folder: Path) -> dict[str, str]:
    """Name -> hex digest from `folder/SHA256SUMS`; ValueError naming file:line if malformed."""
    path = folder / SUMS_FILE
    sums: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="ascii").splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name or "/" in name or name in sums:
            raise CheckpointError(f"{path}:{number}: malformed SHA256SUMS line {line!r}")
        try:
            int(digest, 16)
        except ValueError:
            raise CheckpointError(f"{path}:{number}: malformed sha256 {digest!r}") from None
        sums[name] = digest
    return sums


def check_folder(folder: Path) -> list[str]:
    """Problems found re-hashing every file of a checkpoint folder against its `SHA256SUMS`.

    Each problem names the folder and the file. An empty list means every file matches and no
    unlisted file is present.
    """
    if not folder.is_dir():
        return [f"{folder}: checkpoint folder is missing"]
    if not (folder / SUMS_FILE).is_file():
        return [f"{folder}: {SUMS_FILE} is missing (incomplete checkpoint)"]
    try:
        sums = read_sums(folder)
    except (ValueError, UnicodeDecodeError) as exc:
        return [f"{folder}: {SUMS_FILE}: {exc}"]
    problems = []
    for name, expected in sums.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{folder}: {name}: listed in {SUMS_FILE} but missing")
        elif (actual := sha256_file(path)) != expected:
            problems.append(
                f"{folder}: {name}: sha256 mismatch "
                f"(expected {expected[:12]}..., got {actual[:12]}...)"
            )
    for path in sorted(folder.iterdir()):
        if path.name != SUMS_FILE and path.name not in sums:
            problems.append(f"{folder}: {path.name}: not listed in {SUMS_FILE}")
    return problems
