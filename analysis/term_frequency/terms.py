"""Terms to count: token sequences, given as ids or as text tokenized with the data's tokenizer.

A term file holds one term per line, each a JSON value: a string is a text (leading spaces
matter: `" 42"` and `"42"` are different tokens), a list of integers is a token sequence.
Blank lines and lines starting with `#` are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite_core import DataError


@dataclass(frozen=True, kw_only=True)
class Term:
    """One term: its display name and the token sequence that is counted."""

    name: str  # the text, or the ids joined by commas
    tokens: tuple[int, ...]


def parse_token_ids(value: str, *, where: str = "--tokens") -> Term:
    """`"17,42"` -> Term(name="17,42", tokens=(17, 42)); ValueError for empty or non-integers."""
    parts = [p.strip() for p in value.split(",")]
    if not value.strip() or any(not p for p in parts):
        raise DataError(f"{where}: empty term or empty token in {value!r}")
    try:
        ids = tuple(int(p) for p in parts)
    except ValueError:
        raise DataError(f"{where}: {value!r} is not a comma-separated list of token ids") from None
    return token_term(ids, where=where)


def token_term(ids: Sequence[int], *, where: str) -> Term:
    if len(ids) == 0:
        raise DataError(f"{where}: empty term (no tokens)")
    if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids):
        raise DataError(f"{where}: token ids must be non-negative integers, got {list(ids)}")
    return Term(name=",".join(map(str, ids)), tokens=tuple(int(i) for i in ids))


def text_term(text: str, tokenizer: Any, *, where: str = "--text") -> Term:
    """The text tokenized without special tokens; ValueError if it tokenizes to nothing."""
    if text == "":
        raise DataError(f"{where}: empty term")
    if tokenizer is None:
        raise DataError(
            f"{where}: {text!r} needs a tokenizer (the data has none; give --tokenizer FILE)"
        )
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    if not ids:
        raise DataError(f"{where}: {text!r} tokenizes to nothing")
    return Term(name=text, tokens=tuple(int(i) for i in ids))


def read_terms_file(path: Path, tokenizer: Any) -> list[Term]:
    """Terms of a file, one JSON string (text) or JSON list of ids per line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such terms file")
    terms = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{n}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(
                f"{where}: not a JSON string (text) or JSON list of token ids: {line[:60]!r}"
            ) from None
        if isinstance(value, str):
            terms.append(text_term(value, tokenizer, where=where))
        elif isinstance(value, list):
            terms.append(token_term(value, where=where))
        else:  # a user's file: ValueError, as for every bad line
            raise DataError(
                f"{where}: expected a JSON string or a list of token ids, "
                f"got {type(value).__name__}"
            )
    if not terms:
        raise DataError(f"{path}: no terms (one JSON string or list of ids per line)")
    return terms


def check_vocabulary(terms: Iterable[Term], vocab_size: int | None, *, where: str) -> None:
    """ValueError naming the first term with a token id >= vocab_size (when it is known)."""
    if vocab_size is None:
        return
    for term in terms:
        bad = [t for t in term.tokens if t >= vocab_size]
        if bad:
            raise DataError(
                f"{where}: term {term.name!r}: token id {bad[0]} is outside the "
                f"data's vocabulary of {vocab_size}"
            )


def unique_terms(terms: Iterable[Term]) -> list[Term]:
    """Terms in order, later duplicates (same token sequence) dropped."""
    seen: set[tuple[int, ...]] = set()
    out = []
    for term in terms:
        if term.tokens not in seen:
            seen.add(term.tokens)
            out.append(term)
    return out
