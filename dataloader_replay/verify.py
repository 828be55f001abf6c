"""`verify_run`: recompute every logged batch hash of a run and compare with its metrics.

`RUN/metrics.jsonl` holds one JSON object per update n = 1, 2, ...: `step` = n and
`batch_sha256` of the batch at step n - 1 (the batch that took checkpoint n - 1 to n), as the
model saw it (transform applied). Lines without `batch_sha256` are ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from dataloader_replay.replay import batch_sha256, open_run


@dataclass(frozen=True, kw_only=True)
class Mismatch:
    step: int       # the logged update n (its batch is the one at step n - 1)
    line: int       # 1-based line in metrics.jsonl
    logged: str
    replayed: str


@dataclass(frozen=True, kw_only=True)
class VerifyResult:
    checked: int
    mismatch: Mismatch | None


def logged_hashes(path: Path) -> list[tuple[int, int, str]]:
    """(line, step, batch_sha256) of every metrics line that logs a batch hash."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    out = []
    with open(path, encoding="utf-8") as fh:
        for number, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: malformed JSON ({exc.msg})") from None
            if not isinstance(obj, dict) or "batch_sha256" not in obj:
                continue
            step, digest = obj.get("step"), obj["batch_sha256"]
            if not isinstance(step, int) or isinstance(step, bool) or step < 1:
                raise ValueError(f"{path}:{number}: field 'step' must be an integer >= 1")
            if not isinstance(digest, str):
                raise ValueError(f"{path}:{number}: field 'batch_sha256' must be a string")
            out.append((number, step, digest))
    if not out:
        raise ValueError(f"{path}: no line logs a batch_sha256")
    return out


def verify_run(run: str | Path) -> VerifyResult:
    """Compare each logged hash with the replayed batch; stop at the first mismatch."""
    run = Path(run)
    data = open_run(run)
    logged = logged_hashes(run / "metrics.jsonl")
    for i, (line, step, digest) in enumerate(tqdm(logged, desc="verify", unit="step",
                                                   disable=None)):
        if step - 1 >= data.num_steps:
            raise ValueError(f"{run / 'metrics.jsonl'}:{line}: field 'step': {step} is past "
                             f"the end of the data ({data.num_steps} steps)")
        replayed = batch_sha256(data.batch(step - 1))
        if replayed != digest:
            return VerifyResult(checked=i, mismatch=Mismatch(step=step, line=line,
                                                             logged=digest, replayed=replayed))
    return VerifyResult(checked=len(logged), mismatch=None)
