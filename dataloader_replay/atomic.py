"""Write-to-a-temporary-name-then-rename, so that a failure never leaves a file that looks whole."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def refuse_existing(path: Path, *, overwrite: bool = False) -> None:
    """Raise `FileExistsError` naming `path` if it exists and overwriting was not asked for."""
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: output already exists (remove it first or choose another path)")


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


def _fsync_tree(path: Path) -> None:
    paths = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
