"""Loading a `tokenizers` JSON file and its special ids (EOD = `<|endoftext|>`).

The one tokenizer loader of the suite: `pythia_suite.corpus.tokenizer` (training) re-exports it.
Errors name the file.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from suite_core import DataError

EOD_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|padding|>"
# Largest vocabulary the suite accepts (tokenizer training, model rows): far above any real
# tokenizer (GPT-NeoX-20B: 50,277; the largest published: ~256k), far below the Rust trainer's
# u32 limits (which abort the process) and small enough for int32 token ids.
MAX_VOCAB_SIZE = 1 << 24


@dataclass(frozen=True, kw_only=True)
class LoadedTokenizer:
    tokenizer: Any  # tokenizers.Tokenizer
    eod_id: int
    pad_id: int | None
    vocab_size: int  # 1 + the largest id (added tokens included)


def read_tokenizer(path: Path, *, require_eod: bool = True) -> Any:
    """`tokenizers.Tokenizer` from a `tokenizer.json`; `ValueError` naming the file if unusable."""
    from tokenizers import Tokenizer

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such tokenizer file")
    try:
        raw = path.read_bytes().decode("utf-8")
        json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a tokenizer.json (not valid JSON: {exc})") from None
    try:
        tok = Tokenizer.from_str(raw)
    except Exception as exc:  # noqa: BLE001  (tokenizers raises its own exception type)
        raise DataError(f"{path}: not a tokenizer.json ({exc})") from None
    if require_eod and tok.token_to_id(EOD_TOKEN) is None:
        raise DataError(f"{path}: tokenizer has no {EOD_TOKEN} token (the end-of-document token)")
    return tok


def load_tokenizer(path: Path) -> LoadedTokenizer:
    """The tokenizer with its EOD / padding ids and vocabulary size."""
    tok = read_tokenizer(path)
    vocab = tok.get_vocab(with_added_tokens=True)
    vocab_size = max(max(vocab.values()) + 1, tok.get_vocab_size(with_added_tokens=True))
    return LoadedTokenizer(
        tokenizer=tok,
        eod_id=int(tok.token_to_id(EOD_TOKEN)),
        pad_id=tok.token_to_id(PAD_TOKEN),
        vocab_size=int(vocab_size),
    )


# Documents longer than this are tokenized piece by piece: a whole 47 MB line encoded at once
# takes the Rust tokenizer to gigabytes (offsets, alignments and token strings per byte).
PIECE_CHARS = 1 << 20


def split_text(text: str, max_chars: int = PIECE_CHARS) -> list[str]:
    """`text` cut into pieces of at most `max_chars` characters, each cut just before a single
    space that follows a non-space and precedes a non-space character.

    There every pre-tokenizer of the suite (GPT-2 style byte-level regex, whitespace split)
    already has a word boundary, and the piece after it starts with that space, so encoding the
    pieces gives the same ids as encoding the whole text. Texts up to `max_chars` (every normal
    document) are returned whole. A stretch of `max_chars` without such a space (hostile input)
    is cut hard, which may change the ids at that cut only.
    """
    if len(text) <= max_chars:
        return [text]
    pieces, start = [], 0
    while len(text) - start > max_chars:
        cut = start + max_chars
        low = start + max_chars // 2
        while True:
            cut = text.rfind(" ", low, cut)
            if cut <= start or (not text[cut - 1].isspace() and not text[cut + 1].isspace()):
                break
        if cut <= start:
            cut = start + max_chars
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


def encode(tokenizer: Any, texts: Sequence[str], eod_id: int, dtype: np.dtype) -> list[np.ndarray]:
    """Token ids of each text with the EOD token appended (one batch; shared by the engines)."""
    short = [t for t in texts if len(t) <= PIECE_CHARS]
    encodings = iter(tokenizer.encode_batch(short, add_special_tokens=False))
    out = []
    for text in texts:
        if len(text) <= PIECE_CHARS:
            ids: Any = next(encodings).ids
        else:  # a huge document: encode it piece by piece (same ids, bounded memory)
            ids = array("i")
            for piece in split_text(text):
                ids.extend(tokenizer.encode(piece, add_special_tokens=False).ids)
        tokens = np.empty(len(ids) + 1, dtype=dtype)
        tokens[:-1] = ids
        tokens[-1] = eod_id
        out.append(tokens)
    return out
