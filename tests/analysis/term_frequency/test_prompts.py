"""Prompt formats, answer extraction on hand-made completions, the deterministic shot sampler."""

from __future__ import annotations

from typing import Any

import pytest

from analysis.term_frequency.prompts import (
    Item,
    arithmetic_items,
    build_prompt,
    extract_number,
    fact_items,
    get_format,
    is_correct,
    sample_shots,
)

PYTHIA = get_format("pythia")


def test_pythia_arithmetic_format() -> None:
    items = arithmetic_items([3, 12], [1, 2], op="plus", fmt=PYTHIA)
    assert [it.question for it in items[:2]] == ["Q:What is 3 plus 1? A:", "Q:What is 3 plus 2? A:"]
    assert [(it.term, it.target, it.answer) for it in items] == [
        ("3", "4", "4"),
        ("3", "5", "5"),
        ("12", "13", "13"),
        ("12", "14", "14"),
    ]
    times = arithmetic_items([7], [6], op="times", fmt=PYTHIA)[0]
    assert (times.question, times.answer) == ("Q:What is 7 times 6? A:", "42")
    corpus = arithmetic_items([98], [1, 2], op="plus", fmt=get_format("corpus"), max_answer=99)
    assert [(it.question, it.target) for it in corpus] == [("Q: What is 98 plus 1? A:", " 99.")]
    with pytest.raises(ValueError, match="--ops"):
        arithmetic_items([1], [1], op="divided by", fmt=PYTHIA)
    with pytest.raises(ValueError, match="--format"):
        get_format("gsm8k")


def test_shots_joined_by_blank_line() -> None:
    items = arithmetic_items([1, 2], [5], op="plus", fmt=PYTHIA)
    assert build_prompt(items, 1, [0]) == "Q:What is 1 plus 5? A:6\n\nQ:What is 2 plus 5? A:"
    assert build_prompt(items, 0, []) == "Q:What is 1 plus 5? A:"


@pytest.mark.parametrize(
    ("completion", "number", "correct"),
    [
        ("42", "42", True),
        ("42\nQ:What", "42", True),
        (" 42.", "42", True),
        ("The answer is 42 or 7", "42", True),
        ("4 2", "4", False),
        ("123456", "12345", False),
        ("\n42", None, False),
        ("forty-two", None, False),
        ("", None, False),
        ("042", "042", False),
    ],
)
def test_number_extraction(completion: str, number: str | None, correct: bool) -> None:
    item = Item(task="arithmetic-times", term="6", question="", target="42", answer="42")
    assert extract_number(completion) == number
    assert is_correct(item, completion) is correct


def test_fact_items_and_exact_match(truth: dict[str, Any]) -> None:
    items = fact_items(truth)
    assert len(items) == 2 * len(truth["terms"]["entities"])
    first = truth["eval"]["facts"][0]
    assert (items[0].question, items[0].answer, items[0].term) == (
        first["prompt"],
        first["answer"],
        first["terms"][0],
    )
    item = Item(task="facts", term="Rinvepel", question="", target=" Pelnar.", answer=" Pelnar.")
    assert is_correct(item, " Pelnar.")
    assert is_correct(item, " Pelnar. Many songs describe Rinvepel")
    assert is_correct(item, "Pelnar\nmore")
    assert not is_correct(item, " Pelnarwyn.")
    assert not is_correct(item, " Dunmor.")
    assert not is_correct(item, "\n Pelnar.")
    with pytest.raises(ValueError, match="eval.facts"):
        fact_items({"eval": {}})


def test_sampler_is_deterministic_and_excludes_the_term() -> None:
    items = arithmetic_items(range(10), range(1, 6), op="plus", fmt=PYTHIA)
    for index in (0, 17, 49):
        shots = sample_shots(items, index, 8, seed=1)
        assert shots == sample_shots(items, index, 8, seed=1)
        assert len(set(shots)) == 8 and index not in shots
        assert all(items[j].term != items[index].term for j in shots)
    assert sample_shots(items, 0, 8, seed=1) != sample_shots(items, 0, 8, seed=2)
    assert sample_shots(items, 3, 0, seed=1) == []
    assert sample_shots(items, 3, 2, seed=7) == [41, 30]  # fixed for seed 7: numpy default_rng
    with pytest.raises(ValueError, match="--shots"):
        sample_shots(items[:10], 0, 8, seed=1)  # x1 = 0 and 1 only: 5 items with another term
