"""Huge single documents are tokenized piece by piece: the ids equal whole-document ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dataloader_replay.tokenizer import split_text


def _text(n_docs: int) -> str:
    rng = np.random.default_rng(0)
    words = ["the", "cat", "Pile", "don't", "x=1;", "  two", "\tTab", "naïve", "42", "!!"]
    return " ".join(rng.choice(words, n_docs).tolist()) + "\n end"


def test_split_text_keeps_short_texts_whole_and_joins_back() -> None:
    assert split_text("a b c", 10) == ["a b c"]
    text = _text(5000)
    pieces = split_text(text, 300)
    assert "".join(pieces) == text and max(map(len, pieces)) <= 300 and len(pieces) > 10
    assert all(p.startswith(" ") and not p[1].isspace() for p in pieces[1:])
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]  # no space: hard cut


def test_pieces_give_whole_document_ids(tmp_path: Path) -> None:
    from pythia_suite.corpus.tokenizer import train_tokenizer

    text = _text(20000)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"text": text, "meta": {}}) + "\n")
    tok = train_tokenizer(corpus, tmp_path / "tok.json", vocab_size=400)
    whole = tok.encode(text, add_special_tokens=False).ids
    for size in (200, 1000, 7777):
        pieced = [
            i for p in split_text(text, size) for i in tok.encode(p, add_special_tokens=False).ids
        ]
        assert pieced == whole, size


def test_long_document_signature_is_bit_identical(monkeypatch) -> None:
    from pythia_suite.corpus import minhash

    texts = [_text(3000), "tiny doc", _text(40), "one two"]
    expected = minhash.SignatureComputer(minhash.MinHashParams())(texts)
    monkeypatch.setattr(minhash, "LONG_CHARS", 30)
    monkeypatch.setattr(minhash, "LONG_BLOCK_WORDS", 7)
    got = minhash.SignatureComputer(minhash.MinHashParams())(texts)
    assert np.array_equal(got, expected)
