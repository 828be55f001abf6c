"""find_tokens against a brute-force scan of every row."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataloader_replay import find as find_module
from dataloader_replay.find import find_tokens
from dataloader_replay.replay import TrainData


def brute_force(rows: list[list[int]], pattern: list[int], batch_size: int) -> list[dict]:
    out = []
    for r, row in enumerate(rows):
        for c in range(len(row) - len(pattern) + 1):
            if row[c : c + len(pattern)] == pattern:
                out.append({"row": r, "step": r // batch_size, "offset": c})
    return out


@pytest.mark.parametrize("chunk_tokens", [17 * 3, 1 << 22])
def test_find_equals_brute_force(
    prepared: Path, monkeypatch: pytest.MonkeyPatch, chunk_tokens: int
) -> None:
    monkeypatch.setattr(find_module, "CHUNK_TOKENS", chunk_tokens)
    td = TrainData.open(prepared)
    rows = td.rows(0, td.num_rows).tolist()
    row = rows[10]
    patterns = [[0], row[3:6], row[:17], [row[5], 0], [4095], [70_000], row[2:4] + [999_999]]
    found_any = 0
    for pattern in patterns:
        got = [o.as_dict() for o in find_tokens(td, pattern)]
        assert got == brute_force(rows, pattern, td.batch_size)
        found_any += bool(got)
    assert found_any >= 3
    assert list(find_tokens(td, row[:17] + [1])) == []  # longer than a row
