"""Byte-level BPE tokenizers in the layout of GPT-NeoX-20B's `tokenizer.json`.

`train_tokenizer` trains one with Hugging Face `tokenizers`: NFC normalizer, ByteLevel
pre-tokenizer / post-processor / decoder (no prefix space), a BPE model without unknown token,
and the special tokens `<|endoftext|>` = id 0 (end of document) and `<|padding|>` = id 1.
Any other `tokenizer.json` (GPT-NeoX-20B's own included) can be used by the rest of the suite
through `load_tokenizer` / `eod_id`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from dataloader_replay.jsonl import iter_documents
from dataloader_replay.tokenizer import EOD_TOKEN, MAX_VOCAB_SIZE, PAD_TOKEN, split_text
from dataloader_replay.tokenizer import read_tokenizer as load_tokenizer  # noqa: F401  (re-export)
from suite_core import ConfigError, DataError
from suite_core.atomic import atomic_path, refuse_existing

log = logging.getLogger(__name__)

SPECIAL_TOKENS = (EOD_TOKEN, PAD_TOKEN)  # ids 0 and 1, as in GPT-NeoX-20B


def new_tokenizer() -> Tokenizer:
    """An untrained byte-level BPE tokenizer configured like GPT-NeoX-20B's."""
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tokenizer(
    input: Path, out: Path, *, vocab_size: int, min_frequency: int = 2
) -> Tokenizer:
    """Train on the `text` of every document of a `.jsonl(.zst)` corpus; write `out` atomically."""
    input, out = Path(input), Path(out)
    minimum = len(SPECIAL_TOKENS) + len(pre_tokenizers.ByteLevel.alphabet())
    if not minimum <= vocab_size <= MAX_VOCAB_SIZE:
        raise ConfigError(
            f"vocab_size: must be between {minimum} (specials + 256 bytes) and "
            f"{MAX_VOCAB_SIZE:,}, got {vocab_size:,}"
        )
    if min_frequency < 0:
        raise ConfigError(f"min_frequency: must be >= 0, got {min_frequency}")
    if not input.is_file():
        raise FileNotFoundError(f"{input}: no such file (INPUT)")
    refuse_existing(out)
    tok = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_texts(input), trainer=trainer)
    assert tok.token_to_id(EOD_TOKEN) == 0 and tok.token_to_id(PAD_TOKEN) == 1
    with atomic_path(out) as tmp:
        tok.save(str(tmp), pretty=True)
    log.info("%s: vocabulary of %d tokens", out, tok.get_vocab_size())
    return tok


def _texts(path: Path) -> Iterator[str]:
    for doc in iter_documents(path):
        yield from split_text(doc.text)  # same word counts, bounded memory for huge documents


def eod_id(tok: Tokenizer) -> int:
    """Id of `<|endoftext|>`, the end-of-document token; `ValueError` if absent."""
    token_id = tok.token_to_id(EOD_TOKEN)
    if token_id is None:
        raise DataError(f"tokenizer: no {EOD_TOKEN} token (the end-of-document token)")
    return int(token_id)


def pad_id(tok: Tokenizer) -> int | None:
    """Id of `<|padding|>`, or None if the tokenizer has none."""
    token_id = tok.token_to_id(PAD_TOKEN)
    return None if token_id is None else int(token_id)
