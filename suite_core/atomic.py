"""Write-to-a-temporary-name-then-rename, so that a failure never leaves a file that looks whole."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def refuse_existing(path: Path, *, overwrite: bool = False) -> None:
    """Raise `FileExistsError` naming `path` if it exists and overwriting was not asked for."""
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path}: output already exists (remove it first or choose another path)"
        )


@contextlib.contextmanager
def atomic_path(path: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it to `path` only if the block succeeds.

    Works for files and directories. On failure the temporary is removed.
    """
    path = Path(path)
    refuse_existing(path, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.rmdir()  # the caller decides whether it becomes a file or a directory
    try:
        yield tmp
        _fsync_tree(tmp)
        if path.is_dir() and overwrite:
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise
    remove_leftovers(path)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a whole small file under a temporary sibling name, then rename it onto `path`
    (replacing it): a reader sees the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def leftovers(path: Path) -> list[Path]:
    """Temporaries `atomic_path` made for `path` that a killed process left behind."""
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp$")
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir() if pattern.match(p.name))


def remove_leftovers(path: Path) -> list[Path]:
    """Remove `leftovers(path)` (called after `path` was written successfully)."""
    found = leftovers(path)
    for stale in found:
        log.warning("%s: removing the leftover of an interrupted write of %s", stale, path)
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
    return found


def _fsync_tree(path: Path) -> None:
    paths = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
