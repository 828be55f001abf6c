"""Timing canaries: canaries placed only early or only late in GPT-NeoX's training order.

The training order is GPT-NeoX's packed index mapping (`dataloader_replay.mapping`) fixed by the
data seed: `doc_idx` (a shuffle of the documents that depends only on their number), the packing
(`sample_idx`, from the token counts) and `shuffle_idx` (a shuffle of the samples that depends
only on their number). So where a sentence lands is known exactly once the tokenizer and every
document's token count are known, and that is how the canaries are placed:

1. the timing canaries are first inserted into provisional hosts, and the corpus is deduplicated
   and its BPE tokenizer trained exactly as the suite will (same functions, same settings);
2. inserting a sentence after a sentence boundary (". ") adds the same words, so the tokenizer
   does not depend on which documents host the canaries, and adds exactly the sentence's tokens,
   so the total token count (hence the number of samples and `shuffle_idx`) is fixed;
3. walking the documents in `doc_idx` order, the stream offset of every document is known once
   the hosts before it are chosen; a document hosts the next pending copy when one of its
   boundaries puts the whole canary inside one sample (not on its shared last token, with
   `context` tokens before it) whose training row is in the wanted range. Choices never move an
   earlier document, so every copy lands exactly where it was placed.

Requires the standard data to be at most one epoch (each document occurs once in the order).
Placement holds for the standard data only: the deduplicated data has other documents, so its
order differs (the ledger states where the copies landed there).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dataloader_replay.mapping import build_doc_idx, build_shuffle_idx, num_epochs
from suite_core import DataError

PHASES = ("first_quarter", "last_quarter")


@dataclass(frozen=True, kw_only=True)
class Placement:
    """The suite settings the timing canaries are placed for (dedup, tokenizer, data)."""

    seq_length: int
    batch_size: int
    steps: int
    held_out_rows: int
    seed: int  # the data-order seed
    vocab_size: int
    threshold: float = 0.87
    num_perm: int = 128
    dedup_seed: int = 1
    context: int = 16  # tokens the canary study puts before a canary in its row

    @property
    def num_samples(self) -> int:
        return self.steps * self.batch_size + self.held_out_rows

    @property
    def trained_rows(self) -> int:
        return self.steps * self.batch_size

    def rows(self, phase: str) -> tuple[int, int]:
        """The training rows [lo, hi) of a phase."""
        t = self.trained_rows
        return (0, t // 4) if phase == "first_quarter" else (t - t // 4, t)


@dataclass(frozen=True, kw_only=True)
class TimingCanary:
    sentence: str  # the sentence inserted (intro + canary)
    canary: str
    phase: str
    copies: int


@dataclass(frozen=True, kw_only=True)
class Hosting:
    """Where one copy went: document index, the text with the sentence, its training row."""

    canary: int
    doc: int
    text: str
    row: int
    offset: int  # token offset of the canary's first token in its row


def boundaries(text: str) -> list[int]:
    """Insertion points after a sentence end (". "), and the end of the text."""
    return [i + 2 for i in range(len(text) - 1) if text[i : i + 2] == ". "] + [len(text)]


def insert_at(text: str, at: int, sentence: str) -> str:
    return f"{text} {sentence}" if at == len(text) else f"{text[:at]}{sentence} {text[at:]}"


def train_tokenizer_like_suite(texts: Sequence[str], placement: Placement) -> Any:
    """Dedup + BPE exactly as the suite's dedup and tokenizer stages do (in a temporary dir)."""
    from pythia_suite.corpus.dedup import DedupConfig, dedup_file
    from pythia_suite.corpus.tokenizer import train_tokenizer

    with tempfile.TemporaryDirectory(prefix="synth-timing-") as tmp:
        corpus, deduped = Path(tmp) / "corpus.jsonl", Path(tmp) / "deduped.jsonl"
        with open(corpus, "w", encoding="utf-8") as fh:
            for i, text in enumerate(texts):
                obj = {"text": text, "meta": {"pile_set_name": "x", "id": str(i)}}
                fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
        p = placement
        dedup_file(
            corpus,
            deduped,
            DedupConfig(threshold=p.threshold, num_perm=p.num_perm, seed=p.dedup_seed),
        )
        return train_tokenizer(deduped, Path(tmp) / "tokenizer.json", vocab_size=p.vocab_size)


def place(
    texts: list[str],
    eligible: list[bool],
    canaries: list[TimingCanary],
    placement: Placement,
) -> list[Hosting]:
    """Choose a host and boundary for every copy (see the module docstring)."""
    provisional = list(texts)
    pool = iter(i for i, ok in enumerate(eligible) if ok)
    for c in canaries:
        for _ in range(c.copies):
            i = next(pool)
            provisional[i] = insert_at(texts[i], boundaries(texts[i])[0], c.sentence)
    tok = train_tokenizer_like_suite(provisional, placement)
    return _walk(texts, eligible, canaries, placement, tok)


def _walk(
    texts: list[str],
    eligible: list[bool],
    canaries: list[TimingCanary],
    p: Placement,
    tok: Any,
) -> list[Hosting]:
    sizes = np.array([len(e.ids) + 1 for e in tok.encode_batch(texts)], dtype=np.int64)
    extra = [len(tok.encode(" " + c.sentence).ids) for c in canaries]
    total = int(sizes.sum()) + sum(n * c.copies for n, c in zip(extra, canaries))
    L = p.seq_length
    if num_epochs(total, L, p.num_samples) != 1:
        raise DataError(
            f"timing canaries: {p.num_samples} samples of {L + 1} tokens need more than one "
            f"epoch of the {total:,}-token corpus (placement needs one epoch)"
        )
    rng = np.random.RandomState(seed=p.seed)
    doc_idx = build_doc_idx(len(texts), 1, rng)
    shuffle_idx = build_shuffle_idx((total - 1) // L, rng)
    row_of = np.empty(len(shuffle_idx), dtype=np.int64)
    row_of[shuffle_idx.astype(np.int64)] = np.arange(len(shuffle_idx))
    pending = [c.copies for c in canaries]
    hosted: list[Hosting] = []
    pos = 0
    for d in doc_idx.tolist():
        size = int(sizes[d])
        if eligible[d] and any(pending):
            got = _try_host(texts[d], pos, size, canaries, pending, extra, p, tok, row_of)
            if got is not None:
                k, text, row, offset = got
                pending[k] -= 1
                hosted.append(Hosting(canary=k, doc=d, text=text, row=row, offset=offset))
                size += extra[k]
        pos += size
    if any(pending):
        raise DataError(
            f"timing canaries: {sum(pending)} copies found no host in their quarter "
            "(more documents or fewer timing canaries needed)"
        )
    return hosted


def _try_host(
    text: str,
    pos: int,
    size: int,
    canaries: list[TimingCanary],
    pending: list[int],
    extra: list[int],
    p: Placement,
    tok: Any,
    row_of: np.ndarray,
) -> tuple[int, str, int, int] | None:
    """The first (canary, boundary) that puts a pending copy in its phase's rows, if any."""
    L = p.seq_length
    phases = {canaries[k].phase for k in range(len(canaries)) if pending[k]}
    spans = row_of[pos // L : (pos + size + max(extra)) // L + 1]
    if not any(p.rows(ph)[0] <= r < p.rows(ph)[1] for ph in phases for r in spans.tolist()):
        return None  # no sample of this document is in a wanted range
    base = len(tok.encode(text).ids)
    order = [k for k in sorted(range(len(canaries)), key=lambda k: -pending[k]) if pending[k]]
    for at in boundaries(text):
        # tokens before the sentence: additive at a boundary, so the prefix's own count
        before = base if at == len(text) else len(tok.encode(text[: at - 1]).ids)
        for k in order:
            c = canaries[k]
            lead = len(tok.encode(" " + c.sentence.split(c.canary)[0].rstrip()).ids)
            n_ids = len(tok.encode(" " + c.canary).ids)
            s = pos + before + lead
            j = s // L
            lo, hi = p.rows(c.phase)
            if s - j * L < p.context or s + n_ids > j * L + L or j >= len(row_of):
                continue
            if not lo <= int(row_of[j]) < hi:
                continue
            new = insert_at(text, at, c.sentence)
            enc = tok.encode(new).ids
            if (
                len(enc) == base + extra[k]
                and _find(enc, tok.encode(" " + c.canary).ids) == s - pos
            ):
                return k, new, int(row_of[j]), s - j * L
    return None


def _find(seq: list[int], sub: list[int]) -> int:
    n = len(sub)
    for i in range(len(seq) - n + 1):
        if seq[i : i + n] == sub:
            return i
    return -1
