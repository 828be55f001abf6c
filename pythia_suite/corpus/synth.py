"""The embedded default corpus: a synthetic "mini-Pile" with planted, known phenomena.

`synthesize(preset, seed)` returns the documents and the ground truth; `write_corpus` writes
`DIR/corpus.jsonl` (the Pile's schema: `{"text", "meta": {"pile_set_name", "id"}}`) and
`DIR/truth.json`. Output is byte-identical for the same preset and seed.

Planted phenomena (all recorded in truth.json):
- sources: Stories, Encyclopedia (fictional entities), Arithmetic (Q&A), Licenses (boilerplate);
- near-duplicate clusters: a base document plus variants made by substituting single words
  (or by reformatting only), with the exact Jaccard similarity of the shingle sets dedup uses
  (`pythia_suite.corpus.minhash.shingle_set`) for every pair, and the documents the dedup rule
  should remove at the threshold (computed with exact Jaccard, in input order);
- canaries: random strings, each in `count` different host documents (1, 2, 4, ... 64);
  a host document is otherwise an ordinary, unique document, so every copy survives dedup;
- terms: the numbers 0..99 (operands of arithmetic questions) and fictional city names, drawn
  with Zipf-distributed frequencies; `count` is the exact number of whole-word occurrences;
- occupations co-occurring with gendered pronouns at skewed rates (male/female counts planted).
Cluster documents contain no terms, canaries or occupations, so the counts in truth.json hold
for the deduplicated corpus as well.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pythia_suite.corpus import words as W
from pythia_suite.corpus.gen import Generator, canary_text
from pythia_suite.corpus.minhash import MinHashParams
from pythia_suite.corpus.neardup import clusters_truth, plant_clusters
from suite_core import DataError
from suite_core.atomic import atomic_path

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class Preset:
    name: str
    stories: int
    encyclopedia: int
    arithmetic: int
    licenses: int
    clusters: int  # near-duplicate clusters (each 2-4 documents)
    canaries_per_level: int
    canary_levels: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    entities: int = 100
    zipf_exponent: float = 1.0
    threshold: float = 0.87  # the dedup threshold the truth's expected removals refer to


PRESETS = {
    "tiny": Preset(
        name="tiny",
        stories=1200,
        encyclopedia=800,
        arithmetic=600,
        licenses=300,
        clusters=40,
        canaries_per_level=2,
    ),
    "small": Preset(
        name="small",
        stories=12000,
        encyclopedia=8000,
        arithmetic=6000,
        licenses=3000,
        clusters=400,
        canaries_per_level=10,
        entities=400,
    ),
}


@dataclass(frozen=True, kw_only=True)
class SynthDoc:
    id: str
    source: str
    text: str

    def jsonl(self) -> bytes:
        """The document as one line of the Pile's schema (no newline)."""
        obj = {"text": self.text, "meta": {"pile_set_name": self.source, "id": self.id}}
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise DataError(f"preset: unknown preset {name!r} (choose from {', '.join(PRESETS)})")
    return PRESETS[name]


def synthesize(preset: str = "tiny", seed: int = 1234) -> tuple[list[SynthDoc], dict[str, Any]]:
    """Generate the corpus (in its final order) and its ground truth; pure and deterministic."""
    p = get_preset(preset)
    rng = random.Random(seed)
    gen = Generator(rng, n_entities=p.entities, zipf_exponent=p.zipf_exponent)
    drafts: list[dict[str, Any]] = []  # {"source", "text", "tag"}; tags link truth to documents
    drafts += [{"source": "Stories", "text": gen.story(occupations=True)} for _ in range(p.stories)]
    drafts += [
        {"source": "Encyclopedia", "text": gen.encyclopedia()} for _ in range(p.encyclopedia)
    ]
    drafts += [{"source": "Arithmetic", "text": gen.arithmetic()} for _ in range(p.arithmetic)]
    drafts += [{"source": "Licenses", "text": gen.licence()} for _ in range(p.licenses)]
    canaries = _plant_canaries(rng, p, drafts)
    shingle_words = MinHashParams().shingle_words
    cluster_drafts = plant_clusters(rng, gen, n_clusters=p.clusters, shingle_words=shingle_words)
    drafts += cluster_drafts
    rng.shuffle(drafts)
    docs = [
        SynthDoc(id=f"synth-{i:06d}", source=d["source"], text=d["text"])
        for i, d in enumerate(drafts)
    ]
    ids = {id(d): doc.id for d, doc in zip(drafts, docs)}
    truth = {
        "schema_version": SCHEMA_VERSION,
        "preset": asdict(p),
        "seed": seed,
        "num_documents": len(docs),
        "sources": _source_counts(docs),
        "count_rules": COUNT_RULES,
        "canaries": [
            {
                "canary": c["canary"],
                "count": c["count"],
                "context": c["context"],
                "doc_ids": sorted(ids[id(d)] for d in c["hosts"]),
            }
            for c in canaries
        ],
        "terms": _terms_truth(gen, p),
        "occupations": _occupations_truth(gen),
        "near_duplicates": clusters_truth(
            drafts, ids, threshold=p.threshold, shingle_words=shingle_words
        ),
        "eval": _eval_questions(gen),
    }
    return docs, truth


COUNT_RULES = {
    "terms": "whole-word, case-sensitive occurrences in 'text' over all documents of corpus.jsonl "
    "(regex (?<!\\w)TERM(?!\\w))",
    "canaries": "each doc in doc_ids contains the canary string exactly once; no other doc contains it",
    "occupations": "sentences (split after . ? ! followed by whitespace) containing exactly one "
    "occupation word and pronouns (he/him/his or she/her/hers) of exactly one gender",
    "near_duplicates": "exact Jaccard of pythia_suite.corpus.minhash.shingle_set; expected_removed applies "
    "the dedup rule (remove if an earlier kept document has Jaccard >= threshold) with exact Jaccard",
}


def _plant_canaries(
    rng: random.Random, p: Preset, drafts: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Insert each canary into `count` distinct Stories/Encyclopedia documents (one canary per host)."""
    hosts_pool = [d for d in drafts if d["source"] in ("Stories", "Encyclopedia")]
    n_needed = p.canaries_per_level * sum(p.canary_levels)
    if n_needed > len(hosts_pool):
        raise DataError(
            f"preset {p.name}: {n_needed} canary hosts needed, {len(hosts_pool)} available"
        )
    hosts = rng.sample(hosts_pool, n_needed)
    canaries, used = [], 0
    for count in p.canary_levels:
        for _ in range(p.canaries_per_level):
            text = canary_text(rng)
            intro = rng.choice(W.CANARY_INTROS)
            mine = hosts[used : used + count]
            used += count
            for d in mine:
                d["text"] = _insert_sentence(rng, d["text"], intro.format(c=text))
            canaries.append(
                {"canary": text, "count": count, "context": intro.split("{c}")[0], "hosts": mine}
            )
    return canaries


def _insert_sentence(rng: random.Random, text: str, sentence: str) -> str:
    """Insert `sentence` at a random sentence boundary of `text` (start, after ". ", or end)."""
    cuts = [0] + [i + 2 for i in range(len(text) - 1) if text[i : i + 2] == ". "] + [len(text)]
    at = rng.choice(cuts)
    if at == len(text):
        return f"{text} {sentence}"
    return f"{text[:at]}{sentence} {text[at:]}"


def _source_counts(docs: list[SynthDoc]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in docs:
        counts[d.source] = counts.get(d.source, 0) + 1
    return dict(sorted(counts.items()))


def _terms_truth(gen: Generator, p: Preset) -> dict[str, Any]:
    numbers = [
        {"term": n, "rank": r + 1, "count": gen.tally.terms[n]} for r, n in enumerate(gen.numbers)
    ]
    entities = [
        {
            "term": e.name,
            "rank": e.rank,
            "count": gen.tally.terms[e.name],
            "land": e.land,
            "settlement": e.settlement,
            "product": e.product,
        }
        for e in gen.entities
    ]
    return {"zipf_exponent": p.zipf_exponent, "numbers": numbers, "entities": entities}


def _occupations_truth(gen: Generator) -> list[dict[str, Any]]:
    return [
        {
            "occupation": occ,
            "target_female_rate": rate,
            "male": gen.tally.occupations[occ]["male"],
            "female": gen.tally.occupations[occ]["female"],
        }
        for occ, rate in W.OCCUPATIONS.items()
    ]


def _eval_questions(gen: Generator) -> dict[str, list[dict[str, Any]]]:
    """Held-out prompts for the term-frequency study (prompt, answer, the terms involved)."""
    arithmetic = []
    for a in range(0, 100, 3):
        b = (a * 7 + 5) % (100 - a)
        arithmetic.append(
            {
                "prompt": f"Q: What is {a} plus {b}? A:",
                "answer": f" {a + b}.",
                "terms": [str(a), str(b)],
            }
        )
    facts = []
    for e in gen.entities:
        fixed = {"E": e.name, "L": e.land, "product": e.product}
        for question, answer in W.FACT_QUESTIONS:
            facts.append(
                {
                    "prompt": question.format(**fixed),
                    "answer": answer.format(**fixed),
                    "terms": [e.name],
                }
            )
    return {"arithmetic": arithmetic, "facts": facts}


def write_corpus(out: Path, *, preset: str = "tiny", seed: int = 1234) -> dict[str, Any]:
    """Write `out/corpus.jsonl` and `out/truth.json` atomically (the directory appears whole)."""
    out = Path(out)
    docs, truth = synthesize(preset, seed)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        with open(tmp / "corpus.jsonl", "wb") as fh:
            fh.writelines(doc.jsonl() + b"\n" for doc in docs)
        (tmp / "truth.json").write_text(
            json.dumps(truth, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    log.info("%s: %d documents (%s preset, seed %d)", out, len(docs), preset, seed)
    return truth
