"""Planted truth of the embedded corpus (`truth.json` of `corpus synth`) as scoring windows.

- Canaries: every occurrence of a canary's tokens in the training rows (in training order);
  window = the `context` tokens before it in its row + its first `target` tokens. Extraction
  score = fraction of canary tokens greedy decoding reproduces from the context.
- Near-duplicate clusters: the first `k + target` tokens of each cluster's base document (the
  text the standard corpus repeats and the deduped corpus keeps once), the same windows for
  every model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dataloader_replay.find import find_tokens
from dataloader_replay.indexed import open_indexed
from dataloader_replay.tokenizer import read_tokenizer
from suite_core import DataError

CANARY_PATTERN = 6  # tokens of a canary searched for (a canary may run past its row's end)


@dataclass(kw_only=True)
class Windows:
    """Token windows [N, k + target] to score with prompt k, and what each one is."""

    tokens: np.ndarray
    k: int
    target: int
    table: pd.DataFrame  # one line per window


def canary_windows(
    data: Any, truth: dict[str, Any], *, context: int = 16, target: int = 16
) -> Windows:
    """Windows of every canary occurrence that fits its row with `context` tokens before it."""
    tok = read_tokenizer(Path(_data_dir(data)) / "tokenizer.json")
    lines, wins = [], []
    for i, c in enumerate(truth["canaries"]):
        ids = tok.encode(" " + c["canary"]).ids
        t = target
        if len(ids) < t:
            continue
        for occ in find_tokens(getattr(data, "data", data), ids[: min(CANARY_PATTERN, len(ids))]):
            if occ.offset < context or occ.offset + t > data.seq_length + 1:
                continue
            row = data.rows(occ.row, occ.row + 1)[0].astype(np.int64)
            if list(row[occ.offset : occ.offset + t]) != ids[:t]:
                continue
            wins.append(row[occ.offset - context : occ.offset + t])
            lines.append(
                {
                    "canary": i,
                    "count": int(c["count"]),
                    "row": occ.row,
                    "offset": occ.offset,
                    "target_tokens": t,
                }
            )
    table = pd.DataFrame(lines, columns=["canary", "count", "row", "offset", "target_tokens"])
    arr = np.stack(wins) if wins else np.zeros((0, context + target), dtype=np.int64)
    return Windows(tokens=arr, k=context, target=target, table=table)


def cluster_windows(
    data_dir: Path, truth: dict[str, Any], *, k: int = 32, target: int = 32
) -> Windows:
    """The first k + target tokens of every near-duplicate cluster's base document, taken
    from `documents.{bin,idx}` of the data prepared from the full (standard) corpus."""
    data_dir = Path(data_dir)
    doc_lines = np.load(data_dir / "doc_lines.npy")
    line_of = {int(line): d for d, line in enumerate(doc_lines.tolist())}
    docs = open_indexed(data_dir / "documents")
    lines, wins = [], []
    for c in truth["near_duplicates"]["clusters"]:
        doc = line_of.get(_line_of_id(c["base"]))
        if doc is None:
            continue
        tokens = np.asarray(docs[doc], dtype=np.int64)
        if tokens.size < k + target:
            continue
        wins.append(tokens[: k + target])
        lines.append(
            {
                "cluster": int(c["cluster"]),
                "copies": len(c["docs"]),
                "removed": len(c.get("expected_removed", [])),
                "doc": doc,
            }
        )
    del docs
    table = pd.DataFrame(lines, columns=["cluster", "copies", "removed", "doc"])
    arr = np.stack(wins) if wins else np.zeros((0, k + target), dtype=np.int64)
    return Windows(tokens=arr, k=k, target=target, table=table)


def _line_of_id(doc_id: str) -> int:
    """`synth-000123` is the document on line 124 of corpus.jsonl (ids follow input order)."""
    return int(doc_id.rsplit("-", 1)[1]) + 1


def _data_dir(data: Any) -> Path:
    inner = getattr(data, "data", data)
    if getattr(inner, "directory", None) is None:
        raise DataError(
            f"{getattr(inner, 'name', data)}: planted truth needs a prepared data "
            "directory (with tokenizer.json)"
        )
    return Path(inner.directory)
