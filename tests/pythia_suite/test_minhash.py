"""Vectorized MinHash signatures are bit-identical to datasketch's affine32 MinHash."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash

from pythia_suite.corpus.minhash import (
    MinHashParams,
    SignatureComputer,
    candidate_probability,
    choose_bands,
    iter_signatures,
    jaccard,
    permutations,
    shingle_hash32,
    shingle_set,
    shingles,
    signatures,
    word_digest,
)
from pythia_suite.corpus.synth import synthesize

EDGE_CASES = [
    "",
    "!!! ... ???",
    "one",
    "Two words",
    "exactly five words are here",
    "Exactly Five words ARE here",
    "the the the the the the the the",  # repeated shingles
    "Ünïcode wörds: ça va très bien, merci beaucoup à tous",
    "tabs\tand\nnewlines\r\nand   spaces",
    "snake_case words_with_underscores 123 4.5 e-mail",
]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    docs, _ = synthesize("tiny", 7)
    return [d.text for d in docs[:400]] + EDGE_CASES


def datasketch_signature(text: str, params: MinHashParams) -> np.ndarray:
    m = MinHash(
        num_perm=params.num_perm, seed=params.seed, hashfunc=shingle_hash32, scheme="affine32"
    )
    m.update_batch(shingles(text, params.shingle_words))
    return m.hashvalues


@pytest.mark.parametrize("num_perm,seed,k", [(128, 1, 5), (64, 42, 5), (32, 3, 3)])
def test_signatures_bit_identical_to_datasketch(
    texts: list[str], num_perm: int, seed: int, k: int
) -> None:
    params = MinHashParams(num_perm=num_perm, seed=seed, shingle_words=k)
    ours = signatures(texts, params)
    assert ours.dtype == np.uint32 and ours.shape == (len(texts), num_perm)
    expected = np.stack([datasketch_signature(t, params) for t in texts])
    assert expected.dtype == np.uint32
    np.testing.assert_array_equal(ours, expected)


def test_permutations_match_datasketch() -> None:
    a, b = permutations(128, 5)
    m = MinHash(num_perm=128, seed=5, scheme="affine32")
    np.testing.assert_array_equal(a, m.permutations[0])
    np.testing.assert_array_equal(b, m.permutations[1])
    assert (a & 1).all()


def test_chunking_does_not_change_signatures(texts: list[str]) -> None:
    params = MinHashParams()
    whole = SignatureComputer(params)(texts)
    chunks = np.concatenate(list(iter_signatures(texts, params, chunk_words=500)))
    np.testing.assert_array_equal(whole, chunks)
    assert len(list(iter_signatures(texts, params, chunk_words=500))) > 5


def test_shingling_rule() -> None:
    assert shingles("A b, C d e F!") == ["a b c d e", "b c d e f"]
    assert shingles("Hi there") == ["hi there"]
    assert shingles("...") == [""]
    assert shingle_set("x y z w v x y z w v") == {
        "x y z w v",
        "y z w v x",
        "z w v x y",
        "w v x y z",
        "v x y z w",
    }
    assert shingle_hash32("") == 0x811C9DC5
    # the fold is order-sensitive
    assert shingle_hash32("a b c d e") != shingle_hash32("e d c b a")


def test_estimate_tracks_exact_jaccard(texts: list[str]) -> None:
    """Fraction of equal slots estimates the exact Jaccard (binomial error, 4 sigma)."""
    base = texts[0].split(" ")
    params = MinHashParams(num_perm=256)
    for cut in (2, 6, 12):
        variant = " ".join(base[:-cut] + ["zzz"] * cut)
        exact = jaccard(shingle_set(texts[0]), shingle_set(variant))
        sig = signatures([texts[0], variant], params)
        estimate = float(np.mean(sig[0] == sig[1]))
        sigma = (exact * (1 - exact) / params.num_perm) ** 0.5
        assert abs(estimate - exact) <= 4 * sigma + 1e-9


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="num_perm"):
        MinHashParams(num_perm=1)
    with pytest.raises(ValueError, match="shingle_words"):
        MinHashParams(shingle_words=0)
    assert signatures([], MinHashParams()).shape == (0, 128)


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.87, 0.9, 0.95])
def test_bands_reach_the_candidate_recall_with_the_most_rows(threshold: float) -> None:
    b, r = choose_bands(threshold, 128)
    assert b * r <= 128
    p = candidate_probability(threshold, b, r)
    assert p >= 0.99 and p == 1 - (1 - threshold**r) ** b
    assert candidate_probability(threshold, 128 // (r + 1), r + 1) < 0.99  # one more row fails
    assert choose_bands(0.87, 128) == (14, 9)


def test_candidate_probability_matches_simulated_signatures() -> None:
    """Monte Carlo: pairs with exact Jaccard J (datasketch's affine32 MinHash) share a band of
    (14, 9) with the predicted probability, within 4 binomial standard errors."""
    b, r = 14, 9
    trials, hits = 300, 0
    for t in range(trials):
        common = [f"c{t}_{i}" for i in range(87)]
        a = set(common) | {f"a{t}_{i}" for i in range(7)}
        c = set(common) | {f"b{t}_{i}" for i in range(6)}  # J = 87 / 100
        ma = MinHash(num_perm=128, seed=1, scheme="affine32")
        ma.update_batch([s.encode() for s in a])
        mc = MinHash(num_perm=128, seed=1, scheme="affine32")
        mc.update_batch([s.encode() for s in c])
        eq = (ma.hashvalues[: b * r] == mc.hashvalues[: b * r]).reshape(b, r).all(axis=1)
        hits += bool(eq.any())
    p = candidate_probability(0.87, b, r)
    assert abs(hits / trials - p) <= 4 * (p * (1 - p) / trials) ** 0.5 + 1e-9


def test_word_digest_groups_equal_word_sequences() -> None:
    assert word_digest("Hello, World  foo") == word_digest("hello world\nFOO!")
    assert word_digest("a b") != word_digest("b a") and len(word_digest("")) == 16
    assert shingle_set("Hello, World  foo") == shingle_set("hello world\nFOO!")
