"""Fixtures: WordLevel tokenizers and `range(n)`-style corpora whose every token is known.

Vocabulary: `<|endoftext|>` = 0, `<|padding|>` = 1, word `t{k}` = k + 2. Document d is the words
for a run of consecutive, never reused ids, so a token id names its document and position.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

EOD = 0
SOURCES = ("Pile-CC", "Github", "ArXiv")


def write_tokenizer(path: Path, vocab_size: int) -> Path:
    """A WordLevel tokenizer (whitespace split) with `vocab_size` ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {"<|endoftext|>": 0, "<|padding|>": 1}
    vocab.update({f"t{k}": k + 2 for k in range(vocab_size - 2)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|padding|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok.save(str(path))
    return path


@dataclass(frozen=True, kw_only=True)
class Corpus:
    path: Path
    docs: list[list[int]]  # token ids per document, EOD appended
    sources: list[str]  # pile_set_name per document


def write_corpus(path: Path, lengths: list[int], *, first_id: int = 2) -> Corpus:
    """Documents of consecutive distinct ids (then EOD), one JSON line each."""
    docs, sources, lines = [], [], []
    next_id = first_id
    for i, n in enumerate(lengths):
        ids = list(range(next_id, next_id + n))
        next_id += n
        source = SOURCES[i % len(SOURCES)]
        text = " ".join(f"t{k - 2}" for k in ids)
        lines.append(json.dumps({"text": text, "meta": {"pile_set_name": source}}))
        docs.append(ids + [EOD])
        sources.append(source)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Corpus(path=path, docs=docs, sources=sources)


def doc_lengths(n_docs: int, seed: int = 0, low: int = 1, high: int = 40) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(x) for x in rng.integers(low, high, size=n_docs)]


@pytest.fixture(scope="session")
def small_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.json", 4096)


@pytest.fixture(scope="session")
def big_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """More than 65536 ids: the data must be stored as int32."""
    return write_tokenizer(tmp_path_factory.mktemp("bigtok") / "tokenizer.json", 70_000)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.jsonl", doc_lengths(60))


PREPARED = {"seq_length": 16, "batch_size": 4, "steps": 40, "seed": 1234}


@pytest.fixture(scope="session")
def prepared(
    tmp_path_factory: pytest.TempPathFactory, corpus: Corpus, small_tokenizer: Path
) -> Path:
    """A data directory over `corpus` (several epochs: 160 rows of 17 tokens)."""
    from dataloader_replay.prepare import prepare

    out = tmp_path_factory.mktemp("prepared") / "data"
    prepare(corpus.path, small_tokenizer, out, **PREPARED)
    return out
