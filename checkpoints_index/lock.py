"""The run's lock: one writer of a run directory at a time (`train`, `train --resume`, the
suite's train stages, `checkpoints sync`).

An exclusive `flock` on the run directory itself (opened without following a symlink), so no
file is added to the run and a killed writer's lock goes with its process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from suite_core import CheckpointError


@contextlib.contextmanager
def run_lock(run_dir: Path, *, what: str = "training") -> Iterator[None]:
    """Hold RUN's lock while the block runs; CheckpointError if another process holds it."""
    run_dir = Path(run_dir)
    try:
        fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and run_dir.is_symlink():
            raise CheckpointError(f"{run_dir}: is a symlink; a run must be a real directory")
        if exc.errno == errno.ENOENT:
            raise FileNotFoundError(f"{run_dir}: no such directory") from None
        if exc.errno == errno.ENOTDIR:
            raise NotADirectoryError(f"{run_dir}: not a run directory") from None
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CheckpointError(
                f"{run_dir}: another process is writing this run (a `train` or `run` still "
                f"going); refusing {what} until it ends"
            ) from None
        yield
    finally:
        os.close(fd)
