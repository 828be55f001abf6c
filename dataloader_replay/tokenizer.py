"""Loading a `tokenizers` JSON file and its special ids (EOD = `<|endoftext|>`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

EOD_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|padding|>"


@dataclass(frozen=True, kw_only=True)
class LoadedTokenizer:
    tokenizer: Any  # tokenizers.Tokenizer
    eod_id: int
    pad_id: int | None
    vocab_size: int  # 1 + the largest id (added tokens included)


def load_tokenizer(path: Path) -> LoadedTokenizer:
    """`tokenizers.Tokenizer.from_file`; errors name the file."""
    from tokenizers import Tokenizer

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (--tokenizer)")
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for bad JSON
        raise ValueError(f"{path}: not a tokenizers JSON file ({exc})") from None
    eod = tok.token_to_id(EOD_TOKEN)
    if eod is None:
        raise ValueError(f"{path}: field 'vocab': no {EOD_TOKEN} token (needed as end-of-document)")
    vocab = tok.get_vocab(with_added_tokens=True)
    vocab_size = max(max(vocab.values()) + 1, tok.get_vocab_size(with_added_tokens=True))
    return LoadedTokenizer(tokenizer=tok, eod_id=int(eod), pad_id=tok.token_to_id(PAD_TOKEN),
                           vocab_size=int(vocab_size))
