"""Batched greedy decoding against one prompt at a time, and few-shot accuracy joined with
counts on a tiny run (the completions and the table agree with an independent recount)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from analysis.sources import open_checkpoints
from analysis.term_frequency.across import ItemsConfig, make_items, run_fewshot
from analysis.term_frequency.decode import DecodeConfig, greedy_complete, stop_ids
from analysis.term_frequency.fewshot import FewShotConfig
from analysis.term_frequency.results import read_fewshot
from dataloader_replay.tokenizer import read_tokenizer

PROMPTS = [
    "Q: What is 64 plus 3? A:",
    "Q: In which land is Rinvepel? A:",
    "Once",
    "Q: What is 1 plus 1? A: 2.\n\nQ: What is 5 plus 2? A:",
]


@pytest.fixture(scope="module")
def model_and_tok(tiny_run: Path, tiny_data: Path) -> tuple[Any, Any]:
    return open_checkpoints(tiny_run).load(40), read_tokenizer(tiny_data / "tokenizer.json")


def test_batched_equals_one_at_a_time(model_and_tok: tuple[Any, Any]) -> None:
    model, tok = model_and_tok
    batched = greedy_complete(model, tok, PROMPTS, DecodeConfig(batch_size=4))
    single = [greedy_complete(model, tok, [p], DecodeConfig(batch_size=1))[0] for p in PROMPTS]
    assert batched == single
    assert all("\n" not in c for c in batched)


def test_greedy_matches_argmax_of_full_forward(model_and_tok: tuple[Any, Any]) -> None:
    """The KV-cached decode equals recomputing the whole sequence at every token."""
    import torch

    model, tok = model_and_tok
    stops = set(stop_ids(tok))
    ids = [0] + tok.encode(PROMPTS[0], add_special_tokens=False).ids
    new: list[int] = []
    with torch.inference_mode():
        for _ in range(16):
            nxt = int(model(torch.tensor([ids + new])).logits[0, -1].argmax())
            new.append(nxt)
            if nxt in stops:
                break
    expected = tok.decode(new, skip_special_tokens=True).split("\n", 1)[0]
    assert greedy_complete(model, tok, PROMPTS[:1]) == [expected]


def test_context_overflow_refused(model_and_tok: tuple[Any, Any]) -> None:
    model, tok = model_and_tok
    with pytest.raises(ValueError, match="exceed the model's context of 64"):
        greedy_complete(model, tok, [" ".join(["Q: What"] * 40)])


def test_fewshot_table(tmp_path: Path, tiny_run: Path, truth: dict[str, Any]) -> None:
    config = ItemsConfig(x1=tuple(range(0, 100, 9)), x2=(1, 2, 3))
    result = run_fewshot(
        tiny_run,
        truth=truth,
        steps=[0, 40],
        items_config=config,
        fewshot=FewShotConfig(shots=(0, 1, 8)),
        out=tmp_path / "fs.h5",
    )
    joined, comp = result.joined, result.completions
    assert sorted(joined["shots"].unique()) == [0, 1]  # 8-shot prompts exceed 64 tokens: skipped
    assert set(joined["task"]) == {"facts", "arithmetic-plus"}
    items = make_items(config, truth)
    assert len(items) == 200 + 11 * 3  # x1 = 99: 99 + x2 > 99, no item
    assert len(comp) == 2 * 2 * len(items)
    # scoring recomputed from the questions: the first number equals x1 + x2
    for row in comp[comp["task"] == "arithmetic-plus"].itertuples():
        x1, x2 = map(int, re.findall(r"\d+", items[row.item].question))
        assert row.correct == (_first_number(row.completion) == str(x1 + x2))
    # accuracy per term = mean of its items' correct flags
    mine = comp.groupby(["task", "term", "shots", "step"])["correct"].mean()
    assert joined.set_index(["task", "term", "shots", "step"])["accuracy"].to_dict() == (
        pytest.approx(mine.to_dict())
    )
    # the count column is the count of ' x1' (entities: ' E' and 'E') in rows [0, step * B)
    counts = {
        (t.name, s): int(result.counts.counts[i, j])
        for j, t in enumerate(result.counts.terms)
        for i, s in enumerate(result.counts.steps)
    }
    row = joined[(joined["task"] == "arithmetic-plus") & (joined["term"] == "9")].iloc[-1]
    assert row["count"] == counts[(" 9", int(row["step"]))] > 0
    fact = joined[(joined["task"] == "facts")].iloc[-1]
    assert fact["count"] == counts[(" " + fact["term"], 40)] + counts[(fact["term"], 40)]
    assert (joined.loc[joined["step"] == 0, "count"] == 0).all()
    back = read_fewshot(tmp_path / "fs.h5")
    assert back["accuracy"].tolist() == pytest.approx(joined["accuracy"].tolist())
    assert back["term"].tolist() == joined["term"].tolist()
    assert set(result.sha256) == {0, 40}


def _first_number(text: str) -> str | None:
    m = re.search(r"\d{1,5}", text)
    return m.group(0) if m else None
