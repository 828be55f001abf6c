"""Planted near-duplicate clusters of the synthetic corpus and their exact ground truth.

A cluster is a base document (a plain story or a licence, free of tracked terms) and 1-3
variants. A variant aims at a target Jaccard similarity J with the base: it is either a
reformatted copy (case and spacing only: J = 1 exactly) or a copy in which m single words, at
least `k` words apart, are replaced; each replacement changes the k shingles that contain it,
so with S shingles J ~ (S - k*m) / (S + k*m). The exact J of every pair is then measured on
the shingle sets dedup uses.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from pythia_suite.corpus import words as W
from pythia_suite.corpus.gen import Generator
from pythia_suite.corpus.minhash import WORD_RE, jaccard, shingle_set

# Targets straddle the default threshold 0.87; most keep a clear margin from it.
TARGETS = (1.0, 1.0, 0.98, 0.96, 0.95, 0.93, 0.9, 0.88, 0.85, 0.82, 0.78, 0.72, 0.65, 0.55, 0.45)
REPLACEMENTS = tuple(W.ADJECTIVES) + tuple(W.NOUNS) + tuple(W.VERBS)


def plant_clusters(
    rng: random.Random,
    gen: Generator,
    *,
    n_clusters: int,
    shingle_words: int,
    variants: tuple[int, int] = (1, 3),
    targets: tuple[float, ...] = TARGETS,
) -> list[dict[str, Any]]:
    """Drafts for `n_clusters` clusters: {"source", "text", "cluster", "role", "target"}."""
    drafts: list[dict[str, Any]] = []
    for c in range(n_clusters):
        if rng.random() < 0.5:
            source, base = "Licenses", gen.licence(min_clauses=9)
        else:
            source, base = "Stories", gen.story(occupations=False, min_sentences=14)
        drafts.append({"source": source, "text": base, "cluster": c, "role": "base", "target": 1.0})
        for _ in range(rng.randint(*variants)):
            target = rng.choice(targets)
            text = _variant(rng, base, target, shingle_words)
            drafts.append(
                {"source": source, "text": text, "cluster": c, "role": "variant", "target": target}
            )
    return drafts


def _variant(rng: random.Random, base: str, target: float, k: int) -> str:
    if target >= 1.0:
        return _reformat(rng, base)
    spans = [m.span() for m in WORD_RE.finditer(base)]
    n_shingles = max(len(spans) - k + 1, 1)
    m = max(1, round(n_shingles * (1 - target) / ((1 + target) * k)))
    offset = rng.randrange(k)
    grid = list(range(offset, len(spans), k))
    chosen = sorted(rng.sample(grid, min(m, len(grid))))
    out, last = [], 0
    for i in chosen:
        start, end = spans[i]
        old = base[start:end]
        new = rng.choice([w for w in REPLACEMENTS if w != old.lower()])
        out += [base[last:start], new.capitalize() if old[0].isupper() else new]
        last = end
    out.append(base[last:])
    return "".join(out)


def _reformat(rng: random.Random, base: str) -> str:
    """Same words, different bytes: doubled spaces after sentences, swapped case of the first letter."""
    text = base.replace(". ", ".  ") if rng.random() < 0.5 else base.replace("\n", "\n\n")
    if text == base:
        text = base + "\n"
    return text[0].swapcase() + text[1:]


def clusters_truth(
    drafts: list[dict[str, Any]], ids: dict[int, str], *, threshold: float, shingle_words: int
) -> dict[str, Any]:
    """Per cluster (documents in input order): pairwise exact Jaccard and the expected removals."""
    members: dict[int, list[dict[str, Any]]] = {}
    for d in drafts:  # drafts are in final (input) order
        if "cluster" in d:
            members.setdefault(d["cluster"], []).append(d)
    clusters, removed_total = [], 0
    for c in sorted(members):
        docs = members[c]
        sets = [shingle_set(d["text"], shingle_words) for d in docs]
        pairs = [
            {"a": ids[id(docs[i])], "b": ids[id(docs[j])], "jaccard": jaccard(sets[i], sets[j])}
            for i, j in itertools.combinations(range(len(docs)), 2)
        ]
        removed = _expected_removed(docs, sets, ids, threshold)
        removed_total += len(removed)
        clusters.append(
            {
                "cluster": c,
                "docs": [ids[id(d)] for d in docs],
                "base": next(ids[id(d)] for d in docs if d["role"] == "base"),
                "targets": {ids[id(d)]: d["target"] for d in docs if d["role"] == "variant"},
                "pairs": pairs,
                "expected_removed": removed,
            }
        )
    return {
        "threshold": threshold,
        "shingle_words": shingle_words,
        "expected_removed_total": removed_total,
        "clusters": clusters,
    }


def _expected_removed(
    docs: list[dict[str, Any]], sets: list[set[str]], ids: dict[int, str], threshold: float
) -> list[dict[str, Any]]:
    kept: list[int] = []
    removed = []
    for j in range(len(docs)):
        dup = next((i for i in kept if jaccard(sets[i], sets[j]) >= threshold), None)
        if dup is None:
            kept.append(j)
        else:
            removed.append(
                {
                    "id": ids[id(docs[j])],
                    "duplicate_of": ids[id(docs[dup])],
                    "jaccard": jaccard(sets[dup], sets[j]),
                }
            )
    return removed
