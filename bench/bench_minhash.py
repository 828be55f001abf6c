"""MinHash signatures: pythia_suite's vectorized computation vs one datasketch.MinHash per document.

Both sides do the whole job from text: shingling, shingle hashing, permutations, minima. The
datasketch side uses the very same shingles and hash function (`shingle_hash32` as `hashfunc`,
scheme "affine32"); the signatures must be identical (asserted). Also printed for reference:
datasketch with its default SHA-1 hash (different signatures, so not compared).

    python bench/bench_minhash.py            # the `small` preset (~30k documents)
    python bench/bench_minhash.py --quick    # 1500 documents of the `tiny` preset
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from datasketch import MinHash
from machine import print_machine

from pythia_suite.corpus.minhash import MinHashParams, shingle_hash32, shingles, signatures
from pythia_suite.corpus.synth import synthesize


def datasketch_signatures(texts: list[str], params: MinHashParams, hashfunc: object) -> np.ndarray:
    out = np.empty((len(texts), params.num_perm), dtype=np.uint32)
    for i, text in enumerate(texts):
        kw = {"hashfunc": hashfunc} if hashfunc is not None else {}
        m = MinHash(num_perm=params.num_perm, seed=params.seed, scheme="affine32", **kw)
        sh = shingles(text, params.shingle_words)
        m.update_batch(sh if hashfunc is not None else [s.encode("utf-8") for s in sh])
        out[i] = m.hashvalues
    return out


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small run for development")
    parser.add_argument("--num-perm", type=int, default=128)
    args = parser.parse_args()
    print_machine()
    preset = "tiny" if args.quick else "small"
    docs, _ = synthesize(preset, 1234)
    texts = [d.text for d in docs][: 1500 if args.quick else None]
    params = MinHashParams(num_perm=args.num_perm)
    words = sum(len(t.split()) for t in texts)
    print(
        f"corpus: {preset} preset, {len(texts)} documents, {words} words, num_perm {params.num_perm}"
    )

    ours, t_ours = timed(signatures, texts, params)
    theirs, t_theirs = timed(datasketch_signatures, texts, params, shingle_hash32)
    assert np.array_equal(ours, theirs), "signatures differ from datasketch"
    _, t_sha1 = timed(datasketch_signatures, texts, params, None)

    n = len(texts)
    print(f"pythia_suite.corpus.minhash.signatures : {n / t_ours:12,.0f} docs/s  ({t_ours:.2f} s)")
    print(
        f"datasketch MinHash per document : {n / t_theirs:12,.0f} docs/s  ({t_theirs:.2f} s)  identical signatures"
    )
    print(
        f"datasketch, default sha1_hash32 : {n / t_sha1:12,.0f} docs/s  ({t_sha1:.2f} s)  (reference only)"
    )
    print(
        f"speedup vs datasketch (same hash): {t_theirs / t_ours:.1f}x   vs datasketch sha1: {t_sha1 / t_ours:.1f}x"
        "   (target >= 5x)"
    )


if __name__ == "__main__":
    main()
