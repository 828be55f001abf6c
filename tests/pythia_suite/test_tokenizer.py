"""Byte-level BPE training: specials, round-trips, transformers parity, determinism, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerFast

from pythia_suite.cli import main
from pythia_suite.corpus.synth import synthesize
from pythia_suite.corpus.tokenizer import eod_id, load_tokenizer, pad_id, train_tokenizer
from tests.pythia_suite.bad_corpora import BAD_CORPORA, assert_rejected

VOCAB = 1024
SAMPLES = [
    "The nurse said that she would finish the work soon.",
    "Q: What is 64 plus 7? A: 71.",
    "Ünïcode wörds, emoji 🙂 and\ttabs\nnewlines  double  spaces",
    "Rinvepel is known for its stone bridges.<|endoftext|>Next document",
    "",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("tok")
    docs, _ = synthesize("tiny", 99)
    docs = docs[:800]
    corpus = root / "corpus.jsonl"
    corpus.write_bytes(b"".join(d.jsonl() + b"\n" for d in docs))
    out = root / "tokenizer.json"
    assert (
        main(["tokenizer", "train", str(corpus), "--vocab-size", str(VOCAB), "--out", str(out)])
        == 0
    )
    return corpus, out, [d.text for d in docs[:50]]


def test_specials_and_vocab(trained: tuple[Path, Path, list[str]]) -> None:
    _, path, _ = trained
    tok = load_tokenizer(path)
    assert tok.get_vocab_size() == VOCAB
    assert tok.id_to_token(0) == "<|endoftext|>" and tok.id_to_token(1) == "<|padding|>"
    assert eod_id(tok) == 0 and pad_id(tok) == 1
    spec = json.loads(path.read_text())
    assert spec["pre_tokenizer"]["type"] == "ByteLevel" and spec["decoder"]["type"] == "ByteLevel"
    assert spec["pre_tokenizer"]["add_prefix_space"] is False and spec["model"]["type"] == "BPE"
    assert [t["id"] for t in spec["added_tokens"] if t["special"]] == [0, 1]
    assert tok.encode("a<|endoftext|>b").ids.count(0) == 1


def test_round_trip_and_compression(trained: tuple[Path, Path, list[str]]) -> None:
    _, path, texts = trained
    tok = load_tokenizer(path)
    for text in texts + SAMPLES[:3]:
        ids = tok.encode(text).ids
        assert tok.decode(ids) == text
    words = sum(len(t.split()) for t in texts)
    tokens = sum(len(tok.encode(t).ids) for t in texts)
    chars = sum(len(t) for t in texts)
    assert tokens < 2 * words and chars / tokens > 3  # English-like text: whole words are learned


def test_transformers_agrees(trained: tuple[Path, Path, list[str]]) -> None:
    _, path, texts = trained
    tok = load_tokenizer(path)
    hf = PreTrainedTokenizerFast(tokenizer_file=str(path))
    for text in texts[:10] + SAMPLES:
        assert hf(text)["input_ids"] == tok.encode(text).ids
        assert hf.decode(tok.encode(text).ids) == tok.decode(
            tok.encode(text).ids, skip_special_tokens=False
        )
    assert hf.convert_tokens_to_ids("<|endoftext|>") == 0


def test_training_is_deterministic(trained: tuple[Path, Path, list[str]], tmp_path: Path) -> None:
    corpus, path, _ = trained
    train_tokenizer(corpus, tmp_path / "again.json", vocab_size=VOCAB)
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()


def test_load_tokenizer_errors(tmp_path: Path, trained: tuple[Path, Path, list[str]]) -> None:
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "junk.json").write_text("not json {")
    with pytest.raises(ValueError, match=r"junk.json: not a tokenizer.json"):
        load_tokenizer(tmp_path / "junk.json")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(ValueError, match=r"other.json: not a tokenizer.json"):
        load_tokenizer(tmp_path / "other.json")
    spec = json.loads(trained[1].read_text())
    spec["added_tokens"] = spec["added_tokens"][1:]
    del spec["model"]["vocab"]["<|endoftext|>"]
    (tmp_path / "noeod.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=r"noeod.json: tokenizer has no <\|endoftext\|>"):
        load_tokenizer(tmp_path / "noeod.json")
    tok = load_tokenizer(tmp_path / "noeod.json", require_eod=False)
    with pytest.raises(ValueError, match="endoftext"):
        eod_id(tok)


@pytest.mark.parametrize("case", sorted(BAD_CORPORA))
def test_cli_bad_corpus(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["tokenizer", "train", "IN", "--vocab-size", "300", "--out", str(tmp_path / "t.json")]
    assert_rejected(case, argv, tmp_path, capsys)


def test_cli_existing_output_and_small_vocab(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"text": "hello world"}\n')
    (tmp_path / "t.json").write_text("{}")
    assert (
        main(
            [
                "tokenizer",
                "train",
                str(src),
                "--vocab-size",
                "300",
                "--out",
                str(tmp_path / "t.json"),
            ]
        )
        == 2
    )
    assert "t.json: output already exists" in capsys.readouterr().err
    assert (
        main(
            [
                "tokenizer",
                "train",
                str(src),
                "--vocab-size",
                "100",
                "--out",
                str(tmp_path / "u.json"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "vocab_size: must be between 258" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "t.json"]
