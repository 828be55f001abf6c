"""Counting over real prepared rows and runs: one pass = brute force per step, several processes
= one process, numpy engine = tokengrams engine, a run's transform is counted as seen."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from analysis.sources import open_rows
from analysis.term_frequency.results import read_counts, write_counts
from analysis.term_frequency.scan import CountConfig, count_terms
from analysis.term_frequency.terms import Term, text_term
from dataloader_replay.tokenizer import read_tokenizer

STEPS = (0, 3, 7, 20, 40)


@pytest.fixture(scope="module")
def terms(tiny_data: Path) -> list[Term]:
    tok = read_tokenizer(tiny_data / "tokenizer.json")
    texts = [" 64", " 85", " plus", "Q: What is", " the", ".\n", " Rinvepel"]
    return [text_term(t, tok) for t in texts] + [Term(name="0", tokens=(0,))]


def brute(rows: np.ndarray, tokens: tuple[int, ...]) -> int:
    n = len(tokens)
    windows = np.lib.stride_tricks.sliding_window_view(rows, n, axis=1)
    return int(np.all(windows == np.array(tokens), axis=-1).sum())


def test_counts_equal_brute_force_at_every_step(tiny_data: Path, terms: list[Term]) -> None:
    result = count_terms(tiny_data, terms, CountConfig(steps=STEPS, chunk_tokens=1000))
    data = open_rows(tiny_data)
    for s, step in enumerate(STEPS):
        rows = data.rows(0, step * data.batch_size)
        assert result.counts[s].tolist() == [brute(rows, t.tokens) for t in terms]
    assert result.counts[-1].min() > 0 and result.counts[0].max() == 0
    assert result.tokens == 40 * 8 * 65


def test_processes_and_engines_agree(tiny_data: Path, terms: list[Term]) -> None:
    one = count_terms(tiny_data, terms, CountConfig(steps=STEPS, pairs=True, window=8))
    three = count_terms(
        tiny_data,
        terms,
        CountConfig(steps=STEPS, pairs=True, window=8, processes=3, chunk_tokens=2000),
    )
    grams = count_terms(
        tiny_data, terms, CountConfig(steps=STEPS, pairs=True, window=8, engine="tokengrams")
    )
    assert np.array_equal(one.counts, three.counts) and np.array_equal(one.pairs, three.pairs)
    assert np.array_equal(one.counts, grams.counts) and np.array_equal(one.pairs, grams.pairs)
    assert one.pairs[-1].sum() > 0


def test_bare_prefix_defaults_to_pythia_batch(tiny_data: Path, terms: list[Term]) -> None:
    with pytest.raises(ValueError, match="needs rows"):
        count_terms(tiny_data / "train", terms, CountConfig(steps=(1,)))  # B = 1024 > 320 rows
    prefix = count_terms(tiny_data / "train", terms, CountConfig(steps=(5,), batch_size=8))
    assert (
        prefix.counts[0].tolist()
        == count_terms(tiny_data, terms, CountConfig(steps=(5,))).counts[0].tolist()
    )


def test_run_counts_what_its_model_saw(
    tmp_path: Path, tiny_run: Path, tiny_data: Path, terms: list[Term]
) -> None:
    """A run whose transform swaps ' 64' and ' 85' from step 10 on counts the swapped rows."""
    a, b = terms[0].tokens[0], terms[1].tokens[0]
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    spec = {"name": "token_swap", "pairs": [[a, b]], "start_step": 10}
    (swapped / "run.json").write_text(
        json.dumps({"data": {"path": str(tiny_data), "transform": spec}})
    )
    plain = count_terms(tiny_run, terms[:2], CountConfig(steps=(10, 40)))
    seen = count_terms(swapped, terms[:2], CountConfig(steps=(10, 40)))
    assert seen.counts[0].tolist() == plain.counts[0].tolist()  # before the swap starts
    late = plain.counts[1] - plain.counts[0]
    assert seen.counts[1].tolist() == (plain.counts[0] + late[::-1]).tolist()
    assert seen.fingerprint != plain.fingerprint


def test_hdf5_and_csv_outputs(tmp_path: Path, tiny_data: Path, terms: list[Term]) -> None:
    result = count_terms(tiny_data, terms, CountConfig(steps=(0, 40), pairs=True))
    h5 = write_counts(result, tmp_path / "c.h5")
    frame = read_counts(h5)
    assert frame.set_index(["term", "step"])["count"].to_dict() == {
        (r["term"], r["step"]): r["count"] for r in result.records()
    }
    with open(write_counts(result, tmp_path / "c.csv"), newline="") as fh:
        table = list(csv.reader(fh))  # the term ".\n" holds a newline: quoted
    assert table[0] == ["term", "term2", "tokens", "tokens2", "step", "count"]
    assert table[12] == [".\n", "", "15,200", "", "40", str(result.counts[1, 5])]
    assert len(table) == 1 + 2 * len(terms) + 2 * len(terms) * (len(terms) + 1) // 2
    with pytest.raises(FileExistsError):
        write_counts(result, h5)
