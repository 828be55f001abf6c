"""prepare's default sample count is GPT-NeoX's: ceil(steps * batch * 1.005), rows past S*B held out.

The corpus below is sized so that S * B samples fit in one epoch but GPT-NeoX's 0.5% more need
two: the default order must then be the two-epoch order of the independent reference, row for
row, and differ from the one-epoch order a plain S * B would give.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dataloader_replay.prepare import default_num_samples, prepare
from dataloader_replay.replay import TrainData
from tests.dataloader_replay.conftest import write_corpus
from tests.dataloader_replay.neox_reference import ref_num_epochs, ref_rows

SEQ, B, STEPS, SEED = 8, 4, 50, 5  # S * B = 200; GPT-NeoX asks for 201


def test_default_num_samples_is_gpt_neox_count() -> None:
    assert default_num_samples(143_000, 1024) == 147_164_160  # Pythia
    assert default_num_samples(50, 4) == 201
    assert default_num_samples(40, 4) == 161
    assert default_num_samples(1000, 200) == 201_000  # exact: no rounding up past it
    for s, b in [(1, 1), (7, 3), (143, 1024), (999, 32)]:
        assert default_num_samples(s, b) == math.ceil(s * b * 1005 / 1000)


@pytest.fixture(scope="module")
def crossing(tmp_path_factory: pytest.TempPathFactory, small_tokenizer: Path):
    root = tmp_path_factory.mktemp("crossing")
    # 1604 tokens per epoch (EODs included): (1604 - 1) // 8 = 200 samples in one epoch, not 201
    lengths = [29] * 53 + [13]  # 53 * 30 + 14 = 1604
    corpus = write_corpus(root / "c.jsonl", lengths)
    tokens = sum(len(d) for d in corpus.docs)
    assert tokens == 1604
    assert ref_num_epochs(tokens, SEQ, STEPS * B) == 1 and ref_num_epochs(tokens, SEQ, 201) == 2
    default, plain = root / "default", root / "plain"
    prepare(
        corpus.path, small_tokenizer, default, seq_length=SEQ, batch_size=B, steps=STEPS, seed=SEED
    )
    prepare(
        corpus.path,
        small_tokenizer,
        plain,
        seq_length=SEQ,
        batch_size=B,
        steps=STEPS,
        seed=SEED,
        num_samples=STEPS * B,
    )
    return corpus, TrainData.open(default), TrainData.open(plain)


def test_epoch_crossing_matches_neox_reference(crossing) -> None:
    corpus, default, _ = crossing
    assert default.manifest.num_samples == 201 and default.manifest.num_epochs == 2
    epochs, rows = ref_rows(corpus.docs, SEQ, 201, SEED)
    assert epochs == 2
    assert default.rows(0, default.num_rows).tolist() == rows


def test_the_extra_epoch_changes_the_order(crossing) -> None:
    corpus, default, plain = crossing
    assert plain.manifest.num_samples == 200 and plain.manifest.num_epochs == 1
    assert plain.rows(0, 200).tolist() == ref_rows(corpus.docs, SEQ, 200, SEED)[1]
    same = sum(a == b for a, b in zip(default.rows(0, 200).tolist(), plain.rows(0, 200).tolist()))
    assert same < 20  # a different shuffle over two epochs: almost no row in the same place


def test_rows_past_the_last_step_are_held_out(crossing) -> None:
    _, default, _ = crossing
    assert default.num_rows == 201 and default.num_steps == STEPS  # row 200 is never trained
    with pytest.raises(ValueError, match="past the end of the data"):
        default.batch(STEPS)
    assert default.rows(200, 201).shape == (1, SEQ + 1)  # but it can be read, as a control
