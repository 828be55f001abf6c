"""apply_transform: identity, token_swap from start_step, and spec validation."""

from __future__ import annotations

import numpy as np
import pytest

from dataloader_replay.transforms import apply_transform, changed_positions

BATCH = np.array([[5, 7, 9, 5], [7, 7, 1, 2]], dtype=np.uint16)


def test_identity_and_swap() -> None:
    assert apply_transform(None, BATCH, 3) is BATCH
    spec = {"name": "token_swap", "pairs": [[5, 7], [1, 300]], "start_step": 2}
    assert apply_transform(spec, BATCH, 1) is BATCH
    out = apply_transform(spec, BATCH, 2)
    assert out.dtype == np.uint16
    assert out.tolist() == [[7, 5, 9, 7], [5, 5, 300, 2]]
    assert BATCH.tolist() == [[5, 7, 9, 5], [7, 7, 1, 2]]  # input untouched
    assert apply_transform(spec, out, 9).tolist() == BATCH.tolist()  # an involution
    no_start = {"name": "token_swap", "pairs": [[9, 2]]}
    assert apply_transform(no_start, BATCH, 0).tolist() == [[5, 7, 2, 5], [7, 7, 1, 9]]


@pytest.mark.parametrize(
    "spec,field",
    [
        ([1, 2], "expected an object"),
        ({"name": "shuffle"}, "field 'name'"),
        ({"name": "token_swap"}, "field 'pairs'"),
        ({"name": "token_swap", "pairs": []}, "field 'pairs'"),
        ({"name": "token_swap", "pairs": [[1, 2, 3]]}, r"field 'pairs\[0\]'"),
        ({"name": "token_swap", "pairs": [[1, -2]]}, r"field 'pairs\[0\]'"),
        ({"name": "token_swap", "pairs": [[1, 1.5]]}, r"field 'pairs\[0\]'"),
        ({"name": "token_swap", "pairs": [[1, 2], [2, 3]]}, r"field 'pairs\[1\]'"),
        ({"name": "token_swap", "pairs": [[4, 4]]}, r"field 'pairs\[0\]'"),
        ({"name": "token_swap", "pairs": [[1, 2]], "start_step": -1}, "field 'start_step'"),
        ({"name": "token_swap", "pairs": [[1, 2]], "start_step": "0"}, "field 'start_step'"),
        ({"name": "token_swap", "pairs": [[1, 2]], "extra": 1}, "unknown field"),
    ],
)
def test_bad_specs(spec: object, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        apply_transform(spec, BATCH, 0)  # type: ignore[arg-type]


def test_id_outside_dtype() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        apply_transform({"name": "token_swap", "pairs": [[5, 70_000]]}, BATCH, 0)


def test_token_map_one_directional() -> None:
    spec = {"name": "token_map", "map": [[5, 1], [7, 1]], "start_step": 1}
    assert apply_transform(spec, BATCH, 0) is BATCH
    out = apply_transform(spec, BATCH, 1)
    assert out.tolist() == [[1, 1, 9, 1], [1, 1, 1, 2]]  # 5 -> 1 and 7 -> 1; 1 stays 1
    assert BATCH.tolist() == [[5, 7, 9, 5], [7, 7, 1, 2]]
    mask = changed_positions(spec, BATCH, 1)
    assert mask.tolist() == [[True, True, False, True], [True, True, False, False]]
    assert not changed_positions(spec, BATCH, 0).any()


@pytest.mark.parametrize(
    "spec,field",
    [
        ({"name": "token_map", "pairs": [[1, 2]]}, "unknown field"),
        ({"name": "token_map", "map": []}, "field 'map'"),
        ({"name": "token_map", "map": [[1, 2], [1, 3]]}, r"field 'map\[1\]'"),
        ({"name": "token_map", "map": [[1, 2], [2, 3]]}, r"field 'map\[1\]'"),
        ({"name": "token_map", "map": [[2, 3], [1, 2]]}, r"field 'map\[1\]'"),
        ({"name": "token_map", "map": [[4, 4]]}, r"field 'map\[0\]'"),
    ],
)
def test_bad_token_maps(spec: object, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        apply_transform(spec, BATCH, 0)  # type: ignore[arg-type]
