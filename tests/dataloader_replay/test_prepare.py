"""prepare: files readable by megatron-core, training order == the independent reference."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dataloader_replay.prepare import prepare
from dataloader_replay.replay import TrainData
from tests.dataloader_replay.conftest import EOD, PREPARED, Corpus, doc_lengths, write_corpus
from tests.dataloader_replay.neox_reference import ref_mapping, ref_rows

NUM_SAMPLES = 161  # GPT-NeoX's default: ceil(40 steps * 4 rows * 1.005); rows 160, 161 held out


def megatron_dataset(prefix: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.datasets.indexed_dataset import IndexedDataset
    return IndexedDataset(str(prefix))


def test_megatron_reads_documents_and_train(prepared: Path, corpus: Corpus) -> None:
    docs = megatron_dataset(prepared / "documents")
    assert docs.index.dtype == np.uint16
    assert len(docs) == len(corpus.docs)
    for i, expected in enumerate(corpus.docs):
        assert docs[i].tolist() == expected
    train = megatron_dataset(prepared / "train")
    _, rows = ref_rows(corpus.docs, PREPARED["seq_length"], NUM_SAMPLES, PREPARED["seed"])
    assert train.index.dtype == np.uint16 and len(train) == len(rows)
    assert [train[i].tolist() for i in range(len(train))] == rows


def test_index_arrays_and_manifest(prepared: Path, corpus: Corpus, small_tokenizer: Path) -> None:
    num_samples = NUM_SAMPLES
    epochs, doc_idx, sample_idx, shuffle_idx = ref_mapping(
        corpus.docs, PREPARED["seq_length"], num_samples, PREPARED["seed"]
    )
    assert np.load(prepared / "doc_idx.npy").tolist() == doc_idx
    assert [tuple(x) for x in np.load(prepared / "sample_idx.npy").tolist()] == sample_idx
    assert np.load(prepared / "shuffle_idx.npy").tolist() == shuffle_idx
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest["num_epochs"] == epochs > 1
    assert {k: manifest[k] for k in PREPARED} == PREPARED
    assert manifest["num_samples"] == num_samples
    assert (manifest["eod_id"], manifest["pad_id"], manifest["vocab_size"]) == (EOD, 1, 4096)
    assert manifest["dtype"] == "uint16"
    assert manifest["sources"] == ["Pile-CC", "Github", "ArXiv"]
    src = np.load(prepared / "doc_sources.npy")
    assert [manifest["sources"][s] for s in src] == corpus.sources
    assert (prepared / "tokenizer.json").read_bytes() == small_tokenizer.read_bytes()
    from suite_core.hashing import sha256_file

    assert manifest["input"]["sha256"] == sha256_file(corpus.path)
    for name, digest in manifest["files"].items():
        assert sha256_file(prepared / name) == digest
    assert set(manifest["files"]) == {p.name for p in prepared.iterdir()} - {"manifest.json"}


def test_rows_are_exact_concatenations(prepared: Path, corpus: Corpus) -> None:
    """Each row continues a document token by token or crosses an EOD into a document start."""
    starts = {doc[0] for doc in corpus.docs}
    td = TrainData.open(prepared)
    for row in td.rows(0, td.num_rows).astype(np.int64):
        for a, b in zip(row[:-1], row[1:]):
            assert b == a + 1 or (a == EOD and b in starts) or (b == EOD and a != EOD)


def test_all_samples_cover_every_epoch_exactly(tmp_path: Path, small_tokenizer: Path) -> None:
    """With num_samples = every packed sample, rows minus their one-token overlap, taken in
    sample order, are the shuffled stream; their multiset is epochs x corpus minus the tail."""
    corpus = write_corpus(tmp_path / "c.jsonl", doc_lengths(25, seed=3))
    tokens = sum(len(d) for d in corpus.docs)
    seq_length, epochs = 8, 3
    total = (epochs * tokens - 1) // seq_length
    prepare(
        corpus.path,
        small_tokenizer,
        tmp_path / "d",
        seq_length=seq_length,
        batch_size=1,
        steps=total,
        seed=7,
        num_samples=total,
    )
    td = TrainData.open(tmp_path / "d")
    assert td.manifest.num_epochs == epochs and td.num_rows == total
    order = np.argsort(np.load(tmp_path / "d" / "shuffle_idx.npy"))
    rows = td.rows(0, total)[order]  # sample order
    for a, b in zip(rows[:-1], rows[1:]):
        assert a[-1] == b[0]  # the one-token overlap
    covered = Counter(rows[:, :-1].ravel().tolist())
    covered[int(rows[-1, -1])] += 1
    _, doc_idx, _, _ = ref_mapping(corpus.docs, seq_length, total, 7)
    stream = [t for k in doc_idx for t in corpus.docs[k]]
    assert len(stream) == epochs * tokens
    expected = Counter(
        {t: c * epochs for t, c in Counter(t for d in corpus.docs for t in d).items()}
    )
    expected.subtract(Counter(stream[total * seq_length + 1 :]))
    assert covered == +expected


def test_int32_when_vocab_exceeds_uint16(tmp_path: Path, big_tokenizer: Path) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl", doc_lengths(20, seed=5), first_id=65_500)
    assert max(max(d) for d in corpus.docs) > 65_535
    manifest = prepare(
        corpus.path, big_tokenizer, tmp_path / "d", seq_length=10, batch_size=3, steps=9, seed=11
    )
    assert manifest.dtype == "int32" and manifest.vocab_size == 70_000
    docs = megatron_dataset(tmp_path / "d" / "documents")
    train = megatron_dataset(tmp_path / "d" / "train")
    assert docs.index.dtype == np.int32 and train.index.dtype == np.int32
    assert [docs[i].tolist() for i in range(len(docs))] == corpus.docs
    _, rows = ref_rows(corpus.docs, 10, 28, 11)  # ceil(9 * 3 * 1.005)
    assert [train[i].tolist() for i in range(len(train))] == rows
    batch = TrainData.open(tmp_path / "d").batch(2)
    assert batch.dtype == np.int32 and batch.tolist() == rows[6:9]


def test_rebuild_is_byte_identical(
    prepared: Path, corpus: Corpus, small_tokenizer: Path, tmp_path: Path
) -> None:
    prepare(corpus.path, small_tokenizer, tmp_path / "again", **PREPARED)
    names = sorted(p.name for p in prepared.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "again").iterdir())
    for name in names:
        assert (prepared / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


def test_provenance_reassembles_each_row(prepared: Path, corpus: Corpus) -> None:
    td = TrainData.open(prepared)
    for row in range(0, td.num_rows, 7):
        parts = td.provenance(row)
        tokens = []
        for p in parts:
            assert p["pile_set_name"] == corpus.sources[p["doc"]]
            assert p["line"] == p["doc"] + 1
            assert p["row_end"] - p["row_start"] == p["doc_end"] - p["doc_start"]
            tokens += corpus.docs[p["doc"]][p["doc_start"] : p["doc_end"]]
        assert tokens == td.rows(row, row + 1)[0].tolist()


def test_num_samples_fewer_than_steps_is_an_error(
    corpus: Corpus, small_tokenizer: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="--num-samples"):
        prepare(
            corpus.path,
            small_tokenizer,
            tmp_path / "d",
            seq_length=8,
            batch_size=4,
            steps=10,
            num_samples=39,
        )
    assert not (tmp_path / "d").exists()
