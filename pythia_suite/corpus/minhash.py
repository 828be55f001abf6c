"""Fast MinHash signatures, bit-identical to `datasketch.MinHash(..., scheme="affine32")`.

Shingling (the one rule used by dedup and by the ground truth of the synthetic corpus):
the text is lowercased and split into word tokens with the regex `\\w+` (Unicode word
characters); a shingle is a run of `k` (default 5) consecutive words, written as the words
joined by one space. A document with fewer than `k` words has exactly one shingle: all of its
words joined by spaces (the empty string for a document without words).

Shingle hash (`shingle_hash32`), a 32-bit hash chosen so that it can be computed vectorized:
each word is hashed with CRC-32 of its UTF-8 bytes (`zlib.crc32`), and the words of a shingle
are folded with a polynomial `h = h * 0x01000193 + crc32(word) mod 2**32` starting from
`h = 0x811C9DC5`. datasketch's affine32 scheme then pre-mixes every value with the MurmurHash3
32-bit finalizer (fmix32), so the weak polynomial fold is spread before the permutations.

Permutations (datasketch 2.0.0, scheme "affine32"): `gen = np.random.RandomState(seed)`;
`a = gen.randint(0, 2**31, num_perm, dtype=uint32) * 2 + 1` (odd), then
`b = gen.randint(0, 2**32, num_perm, dtype=uint32)`; a value is `a * fmix32(h) + b mod 2**32`
and the signature is the per-permutation minimum over the document's shingles.

`signatures()` computes a chunk of documents at once: the word hashes come from a cache (one
CRC-32 per distinct word), the shingle hashes are folded for all shingles of the chunk in a
few numpy passes, and `np.minimum.reduceat` takes the per-document minima.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from suite_core import DataError

SCHEME = "affine32"
WORD_RE = re.compile(r"\w+")
FOLD_INIT = 0x811C9DC5
FOLD_MUL = 0x01000193
_MASK32 = 0xFFFFFFFF
LONG_CHARS = 1 << 20  # texts longer than this are signed by the streaming path
LONG_BLOCK_WORDS = 1 << 16
_FMIX = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35))


@dataclass(frozen=True, kw_only=True)
class MinHashParams:
    """Everything that determines a signature."""

    num_perm: int = 128
    seed: int = 1
    shingle_words: int = 5

    def __post_init__(self) -> None:
        if self.num_perm < 2:
            raise DataError(f"num_perm: must be at least 2, got {self.num_perm}")
        if self.shingle_words < 1:
            raise DataError(f"shingle_words: must be at least 1, got {self.shingle_words}")

    def describe(self) -> dict[str, object]:
        """The shingling and hash scheme, for reports."""
        return {
            "shingling": f"lowercased \\w+ word {self.shingle_words}-grams joined by one space; "
            f"documents with fewer than {self.shingle_words} words: one shingle of all words",
            "shingle_hash": "fold of zlib.crc32(word utf-8): h = h*0x01000193 + crc mod 2^32, "
            "h0 = 0x811C9DC5 (pythia_suite.corpus.minhash.shingle_hash32)",
            "scheme": SCHEME,
            "permutations": "datasketch 2.0.0 affine32: fmix32 premix, a*h+b mod 2^32, "
            "a odd and b from np.random.RandomState(seed)",
            "num_perm": self.num_perm,
            "seed": self.seed,
        }


def words(text: str) -> list[str]:
    """The word tokens that shingles are made of."""
    return WORD_RE.findall(text.lower())


def shingles(text: str, k: int = 5) -> list[str]:
    """The shingles of `text` in order (with repeats), as space-joined word k-grams."""
    ws = words(text)
    if len(ws) < k:
        return [" ".join(ws)]
    return [" ".join(ws[i : i + k]) for i in range(len(ws) - k + 1)]


def shingle_set(text: str, k: int = 5) -> set[str]:
    """The set of shingles whose Jaccard similarity dedup estimates."""
    return set(shingles(text, k))


def jaccard(a: set[str], b: set[str]) -> float:
    """Exact Jaccard similarity of two shingle sets."""
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def shingle_hash32(shingle: str) -> int:
    """The 32-bit hash of one shingle (pass this as `hashfunc` to datasketch)."""
    h = FOLD_INIT
    if shingle:
        for w in shingle.split(" "):
            h = (h * FOLD_MUL + zlib.crc32(w.encode("utf-8"))) & _MASK32
    return h


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutation parameters `(a, b)`, uint32 each."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer on a uint32 array (wrapping arithmetic)."""
    s1, m1, s2, m2 = _FMIX
    h = h ^ (h >> s1)
    h = h * m1
    h = h ^ (h >> s2)
    h = h * m2
    return h ^ (h >> s1)


class _WordHashes(dict[str, int]):
    """CRC-32 of each distinct word, computed once."""

    def __missing__(self, word: str) -> int:
        value = zlib.crc32(word.encode("utf-8"))
        self[word] = value
        return value


class SignatureComputer:
    """Computes signatures for chunks of documents; reuse one instance for a whole corpus."""

    def __init__(self, params: MinHashParams) -> None:
        self.params = params
        self.a, self.b = permutations(params.num_perm, params.seed)
        self._cache = _WordHashes()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Signatures `[len(texts), num_perm]` uint32 for one chunk of documents."""
        if not texts:
            return np.empty((0, self.params.num_perm), dtype=np.uint32)
        if len(self._cache) > 2_000_000:
            self._cache.clear()
        if any(len(t) > LONG_CHARS for t in texts):  # huge documents: one at a time, streamed
            return np.concatenate(
                [self._long(t)[None, :] if len(t) > LONG_CHARS else self([t]) for t in texts]
            )
        hashes, doc_first = self._shingle_hashes(texts)
        phv = np.multiply.outer(self.a, fmix32(hashes))  # [P, S] uint32, wraps mod 2^32
        phv += self.b[:, None]
        # Reducing along the contiguous axis is ~20x faster than along axis 0.
        return np.ascontiguousarray(np.minimum.reduceat(phv, doc_first, axis=1).T)  # [D, P]

    def _long(self, text: str) -> np.ndarray:
        """Signature of one huge text, bit-identical to the chunk path: words are read in
        blocks (carrying the last k - 1 word hashes over), and the minimum is kept as it goes,
        so memory is bounded by the block, not the document."""
        k = self.params.shingle_words
        running = np.full(self.params.num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
        carry = np.empty(0, dtype=np.uint32)
        total, block = 0, []
        matches = WORD_RE.finditer(text.lower())
        while True:
            block = [m.group() for _, m in zip(range(LONG_BLOCK_WORDS), matches)]
            total += len(block)
            hashes = np.fromiter(
                map(zlib.crc32, (w.encode("utf-8") for w in block)), np.uint32, len(block)
            )
            window = np.concatenate([carry, hashes])
            n = len(window) - k + 1
            if n > 0 and len(hashes):
                h = np.full(n, FOLD_INIT, dtype=np.uint32)
                for j in range(k):
                    h = h * np.uint32(FOLD_MUL) + window[j : j + n]
                mixed = fmix32(h)
                for lo in range(0, n, 1 << 14):  # [P, 16k] at a time
                    phv = np.multiply.outer(self.a, mixed[lo : lo + (1 << 14)]) + self.b[:, None]
                    np.minimum(running, phv.min(axis=1), out=running)
            carry = window[len(window) - (k - 1) :] if k > 1 else window[:0]
            if len(block) < LONG_BLOCK_WORDS:
                break
        if total < k:  # fewer words than a shingle: the chunk path's one-shingle rule
            return self([text])[0]
        return running

    def _shingle_hashes(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(hash of every shingle of the chunk, index of each document's first shingle)."""
        k = self.params.shingle_words
        all_words: list[str] = []
        counts = np.empty(len(texts), dtype=np.int64)
        for i, text in enumerate(texts):
            ws = WORD_RE.findall(text.lower())
            counts[i] = len(ws)
            all_words.extend(ws)
        word_hash = np.fromiter(map(self._cache.__getitem__, all_words), np.uint32, len(all_words))
        word_hash = np.append(
            word_hash, np.uint32(0)
        )  # a pad so that gathers never go past the end
        word_start = np.concatenate(([0], np.cumsum(counts)[:-1]))
        n_shingles = np.maximum(counts - k + 1, 1)  # [D]
        doc_first = np.concatenate(([0], np.cumsum(n_shingles)[:-1]))
        doc_of = np.repeat(np.arange(len(texts)), n_shingles)  # [S]
        start = word_start[doc_of] + (np.arange(len(doc_of)) - doc_first[doc_of])  # [S]
        length = np.minimum(counts, k)[doc_of]  # [S] words in each shingle
        h = np.full(len(doc_of), FOLD_INIT, dtype=np.uint32)
        for j in range(k):
            step = h * np.uint32(FOLD_MUL) + word_hash[np.minimum(start + j, len(word_hash) - 1)]
            h = np.where(j < length, step, h)
        return h, doc_first


def iter_signatures(
    texts: Iterable[str], params: MinHashParams, *, chunk_words: int = 200_000
) -> Iterator[np.ndarray]:
    """Yield signature chunks `[n, num_perm]` for a stream of texts, in order."""
    compute = SignatureComputer(params)
    chunk: list[str] = []
    size = 0
    for text in texts:
        chunk.append(text)
        size += len(text) // 6 + 1  # rough word count bound the chunk's memory
        if size >= chunk_words:
            yield compute(chunk)
            chunk, size = [], 0
    if chunk:
        yield compute(chunk)


def signatures(texts: Sequence[str], params: MinHashParams) -> np.ndarray:
    """Signatures `[len(texts), num_perm]` uint32 for a list of texts."""
    parts = list(iter_signatures(texts, params))
    if not parts:
        return np.empty((0, params.num_perm), dtype=np.uint32)
    return np.concatenate(parts)


def candidate_probability(jaccard: float, b: int, r: int) -> float:
    """Probability that a pair of Jaccard `jaccard` shares at least one of `b` bands of `r` rows."""
    return float(1.0 - (1.0 - jaccard**r) ** b)


def choose_bands(threshold: float, num_perm: int, recall: float = 0.99) -> tuple[int, int]:
    """Bands `b` and rows `r` (`b * r <= num_perm`) with the most rows (fewest spurious
    candidates) such that a pair at exactly `threshold` is a candidate with probability
    `>= recall`; among those, the most bands (the highest recall)."""
    if not 0.0 < recall < 1.0:
        raise ValueError(f"candidate recall: must be in (0, 1), got {recall}")
    for r in range(num_perm, 0, -1):
        b = num_perm // r
        if candidate_probability(threshold, b, r) >= recall:
            return b, r
    raise ValueError(
        f"threshold {threshold}: no bands of {num_perm} permutations reach candidate recall "
        f"{recall}; raise --num-perm"
    )


def word_digest(text: str) -> bytes:
    """16-byte BLAKE2b digest of the lowercased word sequence: documents with equal digests
    have equal shingle sets (exact-copy grouping before LSH)."""
    import hashlib

    return hashlib.blake2b(" ".join(words(text)).encode("utf-8"), digest_size=16).digest()
