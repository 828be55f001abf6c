"""`verify_run`: recompute every logged batch hash of a run and compare with its metrics.

`RUN/metrics.jsonl` holds one JSON object per update n = 1, 2, ...: `step` = n and
`batch_sha256` of the batch at step n - 1 (the batch that took checkpoint n - 1 to n), as the
model saw it (transform applied). Every line must be such an object and the steps must run
1..N with no gap or repeat: a deleted, duplicated or blanked line is an error, not a skip.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from dataloader_replay.batch_hashes import batch_sha256
from dataloader_replay.sources import open_run
from suite_core import DataError
from suite_core.layout import RunLayout

_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, kw_only=True)
class Mismatch:
    step: int  # the logged update n (its batch is the one at step n - 1)
    line: int  # 1-based line in metrics.jsonl
    logged: str
    replayed: str


@dataclass(frozen=True, kw_only=True)
class VerifyResult:
    checked: int
    mismatch: Mismatch | None


def logged_hashes(path: Path) -> list[tuple[int, int, str]]:
    """(line, step, batch_sha256) of every metrics line; the lines must log steps 1..N in order.

    A blank, malformed or unterminated line, a line without `step` or `batch_sha256`, and a
    gap or a repeated step are each a ValueError naming file:line."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    out: list[tuple[int, int, str]] = []
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.endswith(b"\n"):
                raise DataError(f"{path}:{number}: unterminated last line (a torn write)")
            try:
                obj = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise DataError(f"{path}:{number}: malformed JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{number}: expected a JSON object")
            step, digest = obj.get("step"), obj.get("batch_sha256")
            if not isinstance(step, int) or isinstance(step, bool) or step < 1:
                raise DataError(f"{path}:{number}: field 'step' must be an integer >= 1")
            if not isinstance(digest, str) or not _HEX.match(digest):
                raise DataError(
                    f"{path}:{number}: field 'batch_sha256' must be a sha256 hex digest"
                )
            expected = len(out) + 1
            if step != expected:
                what = "repeats" if step < expected else "skips to"
                raise DataError(
                    f"{path}:{number}: field 'step': {what} {step} where step "
                    f"{expected} was expected (metrics hold steps 1..N in order)"
                )
            out.append((number, step, digest))
    if not out:
        raise DataError(f"{path}: no line logs a batch_sha256")
    return out


def verify_run(run: str | Path) -> VerifyResult:
    """Compare each logged hash with the replayed batch; stop at the first mismatch."""
    run = Path(run)
    data = open_run(run)
    logged = logged_hashes(RunLayout(run).metrics)
    for i, (line, step, digest) in enumerate(
        tqdm(logged, desc="verify", unit="step", disable=None)
    ):
        try:
            data.check_step(step - 1, "step")
        except DataError as exc:
            raise DataError(f"{RunLayout(run).metrics}:{line}: {exc}") from None
        replayed = batch_sha256(data.batch(step - 1))
        if replayed != digest:
            return VerifyResult(
                checked=i, mismatch=Mismatch(step=step, line=line, logged=digest, replayed=replayed)
            )
    return VerifyResult(checked=len(logged), mismatch=None)
