"""Term and step parsing: what is accepted, and the one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer

from analysis.term_frequency.terms import (
    Term,
    check_vocabulary,
    parse_token_ids,
    read_terms_file,
    text_term,
    unique_terms,
)


@pytest.fixture(scope="module")
def tok(corpus_dir: Path) -> Tokenizer:
    return Tokenizer.from_file(str(corpus_dir.parent / "tokenizer.json"))


def test_token_ids() -> None:
    assert parse_token_ids("17, 42") == Term(name="17,42", tokens=(17, 42))
    for bad in ("", ",", "17,,42", "x", "-3"):
        with pytest.raises(ValueError, match="--tokens"):
            parse_token_ids(bad)


def test_text_leading_space_matters(tok: Tokenizer) -> None:
    assert text_term(" 42", tok).tokens == (tok.token_to_id("Ġ42"),)
    assert text_term("42", tok).tokens != text_term(" 42", tok).tokens
    with pytest.raises(ValueError, match="empty term"):
        text_term("", tok)
    with pytest.raises(ValueError, match="tokenizes to nothing"):
        text_term("   ", Tokenizer.from_str(_no_bytes_tokenizer()))
    with pytest.raises(ValueError, match="needs a tokenizer"):
        text_term(" 42", None)


def _no_bytes_tokenizer() -> str:
    """A word-level tokenizer that drops what it does not know (so text can vanish)."""
    from tokenizers import models, pre_tokenizers

    t = Tokenizer(models.WordLevel({"a": 0}, unk_token=None))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    return t.to_str()


def test_terms_file(tmp_path: Path, tok: Tokenizer) -> None:
    good = tmp_path / "terms.txt"
    good.write_text('# numbers\n" 42"\n\n[17, 3]\n"Q: What"\n', encoding="utf-8")
    terms = read_terms_file(good, tok)
    assert [t.name for t in terms] == [" 42", "17,3", "Q: What"]
    for line, message in (
        ("42 plus", "not a JSON string"),
        ("[]", "empty term"),
        ("{}", "expected a JSON string"),
        ('""', "empty term"),
        ("[1.5]", "non-negative integers"),
    ):
        bad = tmp_path / "bad.txt"
        bad.write_text(f'" 7"\n{line}\n', encoding="utf-8")
        with pytest.raises(ValueError, match=f"^{bad}:2: .*{message}"):
            read_terms_file(bad, tok)
    with pytest.raises(FileNotFoundError, match="no such terms file"):
        read_terms_file(tmp_path / "missing.txt", tok)


def test_vocabulary_and_duplicates() -> None:
    terms = [
        Term(name="a", tokens=(1, 2)),
        Term(name="b", tokens=(1, 2)),
        Term(name="c", tokens=(600,)),
    ]
    assert [t.name for t in unique_terms(terms)] == ["a", "c"]
    with pytest.raises(ValueError, match="^DIR: term 'c': token id 600 is outside .* 512"):
        check_vocabulary(terms, 512, where="DIR")
    check_vocabulary(terms, None, where="DIR")  # unknown vocabulary (a bare prefix): no check
