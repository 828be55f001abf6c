"""Data interventions applied to a batch as the model sees it.

A spec is `None` (identity) or a dict:
`{"name": "token_swap", "pairs": [[a, b], ...], "start_step": k}`: in every row of batches at
step >= k, token id a becomes b and b becomes a. An id may appear in one pair only.
`{"name": "token_map", "map": [[a, b], ...], "start_step": k}`: one-directional, token id a
becomes b (several ids may map to one, e.g. his -> her and him -> her); a source id appears once
and no id is both a source and a target (the map is applied in one pass, never chained). This is
the pronoun-swap intervention (masculine -> feminine).
`start_step` defaults to 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from suite_core import DataError

TRANSFORMS = ("token_swap", "token_map")
_LIST_FIELD = {"token_swap": "pairs", "token_map": "map"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_transform(spec: dict[str, Any] | None) -> None:
    """`ValueError` naming the field for any defect in a transform spec."""
    if spec is None:
        return
    where = "transform"
    if not isinstance(spec, dict):
        raise DataError(f"{where}: expected an object or null, got {type(spec).__name__}")
    name = spec.get("name")
    if name not in TRANSFORMS:
        raise DataError(f"{where}: field 'name': unknown transform {name!r} (known: {TRANSFORMS})")
    key = _LIST_FIELD[name]
    unknown = set(spec) - {"name", key, "start_step"}
    if unknown:
        raise DataError(f"{where}: unknown field(s) {sorted(unknown)} for {name}")
    pairs = spec.get(key)
    if not isinstance(pairs, list) or not pairs:
        raise DataError(f"{where}: field '{key}': expected a non-empty list of [a, b] pairs")
    sources: set[int] = set()
    targets: set[int] = set()
    for i, pair in enumerate(pairs):
        if (
            not isinstance(pair, list | tuple)
            or len(pair) != 2
            or not all(_is_int(x) and x >= 0 for x in pair)
        ):
            raise DataError(f"{where}: field '{key}[{i}]': expected [a, b], two token ids >= 0")
        a, b = pair
        if name == "token_swap" and (a == b or (sources | targets) & {a, b}):
            raise DataError(
                f"{where}: field '{key}[{i}]': token ids must be distinct and "
                "appear in one pair only"
            )
        if name == "token_map" and (a == b or a in sources or a in targets or b in sources):
            raise DataError(
                f"{where}: field '{key}[{i}]': a source id must appear once and "
                "never as a target (the map is not chained)"
            )
        sources.add(a)
        targets.add(b)
    start = spec.get("start_step", 0)
    if not _is_int(start) or start < 0:
        raise DataError(f"{where}: field 'start_step': expected an integer >= 0, got {start!r}")


def apply_transform(spec: dict[str, Any] | None, batch: np.ndarray, step: int) -> np.ndarray:
    """The batch at `step` as the model sees it under `spec` (a new array when it changes)."""
    validate_transform(spec)
    if spec is None or step < spec.get("start_step", 0):
        return batch
    limit = np.iinfo(batch.dtype).max
    key = _LIST_FIELD[spec["name"]]
    out = batch.copy()
    for i, (a, b) in enumerate(spec[key]):
        if max(a, b) > limit:
            raise DataError(
                f"transform: field '{key}[{i}]': id {max(a, b)} does not fit the "
                f"data's dtype {batch.dtype}"
            )
        out[batch == a] = b
        if spec["name"] == "token_swap":
            out[batch == b] = a
    return out


def changed_positions(spec: dict[str, Any] | None, batch: np.ndarray, step: int) -> np.ndarray:
    """Boolean mask of the positions `apply_transform` changes in `batch` at `step`."""
    validate_transform(spec)
    if spec is None or step < spec.get("start_step", 0):
        return np.zeros(batch.shape, dtype=bool)
    pairs = spec[_LIST_FIELD[spec["name"]]]
    ids = [a for a, _ in pairs] + ([b for _, b in pairs] if spec["name"] == "token_swap" else [])
    return np.isin(batch, np.asarray(ids, dtype=np.int64))
