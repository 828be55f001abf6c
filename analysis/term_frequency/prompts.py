"""Few-shot prompts and answer scoring (pure): Pythia's arithmetic format and fact recall.

Arithmetic, as in the Pythia paper's term-frequency study (after Razeghi et al. 2022):
`Q:What is {x1} plus {x2}? A:` (or `times`), no space after `A:`, the target without a leading
space; k solved examples ("shots") with other x1 come first, joined by a blank line; the model
decodes greedily until a newline; the answer is correct when the first `\\d{1,5}` of the output
equals x1 op x2. The embedded corpus writes `Q: What is a plus b? A: c.`, so the "corpus"
format (space after `Q:`, target ` c.`) asks its models in the form they were trained on.

Fact recall (truth.json `eval.facts`): `Q: In which land is Rinvepel? A:` -> ` Pelnar.`; correct
when the output up to its first period or newline equals the answer (whitespace stripped).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from suite_core import DataError

NUMBER = re.compile(r"\d{1,5}")
SHOT_SEPARATOR = "\n\n"
OPERATIONS = {"plus": lambda a, b: a + b, "minus": lambda a, b: a - b, "times": lambda a, b: a * b}


@dataclass(frozen=True, kw_only=True)
class ArithmeticFormat:
    """How a question and its target are written."""

    name: str
    question: str  # with {x1}, {op}, {x2}
    target: str  # with {y}


FORMATS = {
    "pythia": ArithmeticFormat(
        name="pythia", question="Q:What is {x1} {op} {x2}? A:", target="{y}"
    ),
    "corpus": ArithmeticFormat(
        name="corpus", question="Q: What is {x1} {op} {x2}? A:", target=" {y}."
    ),
}


@dataclass(frozen=True, kw_only=True)
class Item:
    """One test question: its prompt without shots, the target text, the term it is about."""

    task: str  # "arithmetic-plus", "facts", ...
    term: str  # the term whose frequency the item is plotted against (x1, or the entity)
    question: str
    target: str  # the solved form, used when the item is a shot
    answer: str  # what scoring compares: the number, or the answer text


def get_format(name: str) -> ArithmeticFormat:
    if name not in FORMATS:
        raise DataError(f"--format: unknown {name!r} (choose from {', '.join(FORMATS)})")
    return FORMATS[name]


def arithmetic_items(
    x1_values: Sequence[int],
    x2_values: Sequence[int],
    *,
    op: str,
    fmt: ArithmeticFormat,
    max_answer: int | None = None,
    min_answer: int = 0,
) -> list[Item]:
    """Items x1 op x2 for every x1 and x2 whose answer lies in [min_answer, max_answer]."""
    if op not in OPERATIONS:
        raise DataError(f"--ops: unknown operation {op!r} (choose from {', '.join(OPERATIONS)})")
    items = []
    for x1 in x1_values:
        for x2 in x2_values:
            y = OPERATIONS[op](x1, x2)
            if y < min_answer or (max_answer is not None and y > max_answer):
                continue
            items.append(
                Item(
                    task=f"arithmetic-{op}",
                    term=str(x1),
                    question=fmt.question.format(x1=x1, op=op, x2=x2),
                    target=fmt.target.format(y=y),
                    answer=str(y),
                )
            )
    return items


def fact_items(truth: dict[str, Any]) -> list[Item]:
    """The fact-recall questions of a synthetic corpus's truth.json (`eval.facts`)."""
    facts = (truth.get("eval") or {}).get("facts")
    if not isinstance(facts, list) or not facts:
        raise DataError("truth.json: field 'eval.facts' missing or empty")
    return [
        Item(
            task="facts",
            term=str(f["terms"][0]),
            question=f["prompt"],
            target=f["answer"],
            answer=f["answer"],
        )
        for f in facts
    ]


def sample_shots(items: Sequence[Item], index: int, k: int, *, seed: int) -> list[int]:
    """Indices of k shots for item `index`: items of the same task about another term, drawn
    without replacement by a generator seeded with (seed, index, k), so that the choice does
    not depend on batching or on which other items are evaluated."""
    if k == 0:
        return []
    me = items[index]
    pool = [j for j, it in enumerate(items) if it.task == me.task and it.term != me.term]
    if len(pool) < k:
        raise DataError(
            f"--shots: {k} shots need {k} items with another term, {me.task} has {len(pool)}"
        )
    rng = np.random.default_rng([seed, index, k])
    return [pool[j] for j in rng.choice(len(pool), size=k, replace=False)]


def build_prompt(items: Sequence[Item], index: int, shots: Sequence[int]) -> str:
    """Solved shots, a blank line between each, then the question."""
    parts = [items[j].question + items[j].target for j in shots] + [items[index].question]
    return SHOT_SEPARATOR.join(parts)


def first_line(completion: str) -> str:
    return completion.split("\n", 1)[0]


def extract_number(completion: str) -> str | None:
    """The first run of 1-5 digits of the completion's first line, or None."""
    m = NUMBER.search(first_line(completion))
    return m.group(0) if m else None


def is_correct(item: Item, completion: str) -> bool:
    """Arithmetic: the first number equals the answer; facts: the text up to the first period
    or newline equals the answer (whitespace and the final period stripped)."""
    if item.task.startswith("arithmetic"):
        return extract_number(completion) == item.answer
    said = first_line(completion).split(".", 1)[0].strip()
    return said == item.answer.strip().rstrip(".").strip()
