"""analysis/ledger.py against an independent naive scan of the replayed batches.

It lives with the bias fixtures because they hold the one shared run with a branch: the
pronoun-swap branch's ledger must differ from its parent's after the branch step only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.ledger import build_ledger, read_ledger
from dataloader_replay.sources import open_run
from dataloader_replay.tokenizer import read_tokenizer
from pythia_suite.cli import main
from tests.analysis.bias.conftest import BRANCH_STEP, BiasRuns

MAX_TOKENS = 12  # cluster documents' first 12 tokens fit the 33-token rows at many offsets


@pytest.fixture(scope="module")
def ledgers(bias_runs: BiasRuns) -> dict[str, pd.DataFrame]:
    return {
        name: build_ledger(path, bias_runs.truth_path, max_tokens=MAX_TOKENS)
        for name, path in (("base", bias_runs.base), ("swap", bias_runs.swap))
    }


def naive_scan(run: Path, items: pd.DataFrame, tokenizer_path: Path) -> set[tuple]:
    """Every (item, row, step, offset), by Python comparison of each item's tokens (re-encoded
    from its text) at every offset of every row of every replayed batch (`batch(step)`)."""
    tok = read_tokenizer(tokenizer_path)
    view = open_run(run)
    steps = json.loads((run / "run.json").read_text())["steps"]
    patterns = [
        (item, tok.encode(text, add_special_tokens=False).ids[:MAX_TOKENS])
        for item, text in zip(items["item"], items["text"])
    ]
    found = set()
    for step in range(steps):
        for i, row in enumerate(view.batch(step).tolist()):
            for item, p in patterns:
                for off in range(len(row) - len(p) + 1):
                    if row[off] == p[0] and row[off : off + len(p)] == p:
                        found.add((item, step * view.batch_size + i, step, off))
    return found


@pytest.mark.parametrize("name", ["base", "swap"])
def test_ledger_agrees_with_a_naive_scan(bias_runs: BiasRuns, ledgers: dict, name: str) -> None:
    ledger = ledgers[name]
    run = bias_runs.base if name == "base" else bias_runs.swap
    got = set(map(tuple, ledger.table[["item", "row", "step", "offset"]].to_numpy().tolist()))
    expected = naive_scan(run, ledger.items, bias_runs.data / "tokenizer.json")
    assert got == expected
    assert len(ledger.table) == len(got)  # no record twice
    kinds = set(ledger.items["kind"])
    assert {"canary", "term", "occupation", "cluster"} <= kinds
    assert set(ledger.table["kind"]) >= {"canary", "term", "occupation", "cluster"}


def test_branch_ledger_differs_after_its_branch_step(ledgers: dict) -> None:
    base, swap = ledgers["base"].table, ledgers["swap"].table
    cols = ["item", "row", "step", "offset"]
    before = [t[t["step"] < BRANCH_STEP][cols].reset_index(drop=True) for t in (base, swap)]
    pd.testing.assert_frame_equal(before[0], before[1])
    after = [t[t["step"] >= BRANCH_STEP] for t in (base, swap)]
    male = [a[a["item"].str.endswith("/male")] for a in after]
    female = [a[a["item"].str.endswith("/female")] for a in after]
    assert len(male[0]) > 0 and len(male[1]) == 0  # "... said that he" became "she"
    assert len(female[1]) == len(female[0]) + len(male[0])
    exp_base, exp_swap = ledgers["base"].exposures(), ledgers["swap"].exposures()
    assert (exp_base != exp_swap).any()
    early_base = ledgers["base"].exposures(step=BRANCH_STEP)
    pd.testing.assert_series_equal(early_base, ledgers["swap"].exposures(step=BRANCH_STEP))


def test_exposures_and_first_exposure(ledgers: dict) -> None:
    ledger = ledgers["base"]
    t = ledger.table
    item = t["item"].value_counts().index[0]
    rows = t.loc[t["item"] == item, "row"].to_numpy()
    step = int(np.median(rows)) // ledger.batch_size
    assert ledger.exposures([item], step=step)[item] == int((rows < step * ledger.batch_size).sum())
    assert ledger.first_exposure([item])[item] == rows.min() // ledger.batch_size
    never = min(set(ledger.items["item"]) - set(t["item"]))
    assert pd.isna(ledger.first_exposure([never])[never])
    assert ledger.exposures([never])[never] == 0


def test_cli_writes_h5_and_csv(bias_runs: BiasRuns, ledgers: dict, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "ledger"
    assert main(["ledger", str(bias_runs.swap), "--out", str(out), "--max-tokens", "12"]) == 0
    assert "occurrences of" in capsys.readouterr().out
    back = read_ledger(out / "swap.h5")
    pd.testing.assert_frame_equal(back.table, ledgers["swap"].table, check_dtype=False)
    assert back.fingerprint == ledgers["swap"].fingerprint and back.steps == 40
    assert back.config["transform"]["start_step"] == BRANCH_STEP
    csv = pd.read_csv(out / "swap.csv")
    assert list(csv.columns) == ["item", "kind", "run", "row", "step", "offset"]
    assert len(csv) == len(back.table)


def _one_line_exit_2(args: list[str], capsys) -> str:  # type: ignore[no-untyped-def]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("pythia-suite: error: ")
    return err


def test_truth_of_another_corpus_exits_2(bias_runs: BiasRuns, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    other = dict(bias_runs.truth, corpus_sha256="0" * 64)
    path = tmp_path / "truth.json"
    path.write_text(json.dumps(other))
    out = tmp_path / "out"
    err = _one_line_exit_2(
        ["ledger", str(bias_runs.base), "--truth", str(path), "--out", str(out)], capsys
    )
    assert f"{path}: field 'corpus_sha256'" in err and "another corpus" in err
    assert not out.exists()


def test_run_whose_data_is_gone_exits_2(bias_runs: BiasRuns, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    run.mkdir()
    config = json.loads((bias_runs.base / "run.json").read_text())
    config["data"]["path"] = str(tmp_path / "moved-away")
    (run / "run.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    err = _one_line_exit_2(
        ["ledger", str(run), "--truth", str(bias_runs.truth_path), "--out", str(out)], capsys
    )
    assert f"{run / 'run.json'}: field 'data.path'" in err and "no such directory" in err
    assert not out.exists()
