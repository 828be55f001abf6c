"""Data interventions applied to a batch as the model sees it.

A spec is `None` (identity) or a dict:
`{"name": "token_swap", "pairs": [[a, b], ...], "start_step": k}`: in every row of batches at
step >= k, token id a becomes b and b becomes a (the basis of pronoun-swap interventions).
`start_step` defaults to 0. An id may appear in one pair only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TRANSFORMS = ("token_swap",)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_transform(spec: dict[str, Any] | None) -> None:
    """`ValueError` naming the field for any defect in a transform spec."""
    if spec is None:
        return
    where = "transform"
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: expected an object or null, got {type(spec).__name__}")
    name = spec.get("name")
    if name not in TRANSFORMS:
        raise ValueError(f"{where}: field 'name': unknown transform {name!r} (known: {TRANSFORMS})")
    unknown = set(spec) - {"name", "pairs", "start_step"}
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)} for {name}")
    pairs = spec.get("pairs")
    if not isinstance(pairs, list) or not pairs:
        raise ValueError(f"{where}: field 'pairs': expected a non-empty list of [a, b] pairs")
    seen: set[int] = set()
    for i, pair in enumerate(pairs):
        if (not isinstance(pair, list | tuple) or len(pair) != 2
                or not all(_is_int(x) and x >= 0 for x in pair)):
            raise ValueError(f"{where}: field 'pairs[{i}]': expected [a, b], two token ids >= 0")
        if pair[0] == pair[1] or seen & set(pair):
            raise ValueError(f"{where}: field 'pairs[{i}]': token ids must be distinct and "
                             "appear in one pair only")
        seen.update(pair)
    start = spec.get("start_step", 0)
    if not _is_int(start) or start < 0:
        raise ValueError(f"{where}: field 'start_step': expected an integer >= 0, got {start!r}")


def apply_transform(spec: dict[str, Any] | None, batch: np.ndarray, step: int) -> np.ndarray:
    """The batch at `step` as the model sees it under `spec` (a new array when it changes)."""
    validate_transform(spec)
    if spec is None or step < spec.get("start_step", 0):
        return batch
    limit = np.iinfo(batch.dtype).max
    out = batch.copy()
    for i, (a, b) in enumerate(spec["pairs"]):
        if max(a, b) > limit:
            raise ValueError(f"transform: field 'pairs[{i}]': id {max(a, b)} does not fit the "
                             f"data's dtype {batch.dtype}")
        out[batch == a] = b
        out[batch == b] = a
    return out
