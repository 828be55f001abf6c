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
  with Zipf-distributed frequencies (the numbers' ranks in random order, or with
  `numbers_by_value` in the order of their values: 0 most frequent); `count` is the exact
  number of whole-word occurrences;
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
from pythia_suite.corpus.neardup import TARGETS, clusters_truth, plant_clusters
from pythia_suite.corpus.timing import PHASES, Placement, TimingCanary, place
from suite_core import DataError
from suite_core.atomic import atomic_path
from suite_core.hashing import sha256_file

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
    addends: int = 0  # > 0: arithmetic's second operand uniform in 1..addends (gen.arithmetic)
    numbers_by_value: bool = False  # the numbers' Zipf ranks follow their value (gen.Generator)
    quiz_all: bool = False  # every encyclopedia entry ends with every fact question, answered
    colon_headers: bool = True  # licence headers "X: conditions of use." (gen.Generator)
    boilerplate_levels: tuple[int, ...] = ()  # copies of each boilerplate passage
    passages_per_level: int = 0
    variants: tuple[int, int] = (1, 3)  # variants per near-duplicate cluster (min, max)
    cluster_targets: tuple[float, ...] = TARGETS  # Jaccard targets the variants are drawn from
    timing_canaries: int = 0  # canaries per timing phase (first and last quarter)
    timing_copies: int = 1  # host documents (= trained occurrences) per timing canary
    placement: Placement | None = None  # the suite settings timing canaries are placed for


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
    "default": Preset(
        name="default",
        stories=3500,
        encyclopedia=2300,
        arithmetic=2000,
        licenses=300,
        clusters=120,
        canaries_per_level=8,
        addends=5,
        numbers_by_value=True,
        quiz_all=True,
        colon_headers=False,
        boilerplate_levels=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        passages_per_level=4,
        variants=(3, 6),
        cluster_targets=(1.0, 1.0, 1.0, 0.98, 0.96, 0.95, 0.93, 0.9, 0.85, 0.7),
        timing_canaries=8,
        timing_copies=32,
        placement=Placement(
            seq_length=128, batch_size=16, steps=512, held_out_rows=512, seed=1234, vocab_size=2048
        ),
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


def synthesize(
    preset: str | Preset = "tiny", seed: int = 1234, placement: Placement | None = None
) -> tuple[list[SynthDoc], dict[str, Any]]:
    """Generate the corpus (in its final order) and its ground truth; deterministic. Timing
    canaries are placed for `placement` (default: the preset's own)."""
    p = preset if isinstance(preset, Preset) else get_preset(preset)
    placement = placement or p.placement
    rng = random.Random(seed)
    gen = Generator(
        rng,
        n_entities=p.entities,
        zipf_exponent=p.zipf_exponent,
        colon_headers=p.colon_headers,
        numbers_by_value=p.numbers_by_value,
    )
    drafts: list[dict[str, Any]] = []  # {"source", "text", "tag"}; tags link truth to documents
    drafts += [{"source": "Stories", "text": gen.story(occupations=True)} for _ in range(p.stories)]
    drafts += [
        {"source": "Encyclopedia", "text": gen.encyclopedia(quiz_all=p.quiz_all)}
        for _ in range(p.encyclopedia)
    ]
    drafts += [
        {"source": "Arithmetic", "text": gen.arithmetic(addends=p.addends)}
        for _ in range(p.arithmetic)
    ]
    drafts += [{"source": "Licenses", "text": gen.licence()} for _ in range(p.licenses)]
    canaries = _plant_canaries(rng, p, drafts)
    passages = _plant_boilerplate(rng, gen, p, drafts)
    shingle_words = MinHashParams().shingle_words
    cluster_drafts = plant_clusters(
        rng,
        gen,
        n_clusters=p.clusters,
        shingle_words=shingle_words,
        variants=p.variants,
        targets=p.cluster_targets,
    )
    drafts += cluster_drafts
    rng.shuffle(drafts)
    canaries += _plant_timing(rng, p, drafts, placement)
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
                "timing": c.get("timing"),
            }
            for c in canaries
        ],
        "boilerplate": [
            {
                "passage": i,
                "kind": b["kind"],
                "count": b["count"],
                "text": b["text"],
                "doc_ids": sorted(ids[id(d)] for d in b["hosts"]),
            }
            for i, b in enumerate(passages)
        ],
        "timing": None if placement is None or not p.timing_canaries else _timing_truth(placement),
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
    "boilerplate": "each doc in doc_ids starts with the passage text followed by a newline; "
    "no other doc contains it",
    "timing": "a canary with timing first_quarter (last_quarter) occurs, in the standard data "
    "prepared with timing.placement, only in training rows [0, T/4) ([T - T/4, T)), T = steps * "
    "batch_size, once per host document, whole inside its row after at least `context` tokens",
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
            for d in mine:
                d["busy"] = True
            canaries.append(
                {"canary": text, "count": count, "context": intro.split("{c}")[0], "hosts": mine}
            )
    return canaries


def _plant_boilerplate(
    rng: random.Random, gen: Generator, p: Preset, drafts: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Prepend each passage, as a header line block, to `count` distinct free documents."""
    passages: list[dict[str, Any]] = [
        {"text": gen.boilerplate(), "count": count}
        for count in p.boilerplate_levels
        for _ in range(p.passages_per_level)
    ]
    pool = [d for d in drafts if not d.get("busy")]
    n_needed = sum(b["count"] for b in passages)
    if n_needed > len(pool):
        raise DataError(f"preset {p.name}: {n_needed} boilerplate hosts needed, {len(pool)} free")
    hosts = rng.sample(pool, n_needed)
    used = 0
    for b in passages:
        b["kind"] = _boiler_kind(b["text"])
        b["hosts"] = hosts[used : used + b["count"]]
        used += b["count"]
        for d in b["hosts"]:
            d["text"] = f"{b['text']}\n{d['text']}"
            d["busy"] = True
    return passages


def _boiler_kind(text: str) -> str:
    first = text.split("\n", 1)[0]
    return (
        "code preamble"
        if first.startswith("#")
        else ("file header" if first.startswith("File ") else "licence header")
    )


def _plant_timing(
    rng: random.Random, p: Preset, drafts: list[dict[str, Any]], placement: Placement | None
) -> list[dict[str, Any]]:
    """Timing canaries, each in `timing_copies` hosts whose rows are all in its quarter."""
    if not p.timing_canaries:
        return []
    if placement is None:
        raise DataError(f"preset {p.name}: timing canaries need a placement (data settings)")
    specs = []
    for phase in PHASES:
        for _ in range(p.timing_canaries):
            text = canary_text(rng)
            intro = rng.choice(W.CANARY_INTROS)
            specs.append(
                TimingCanary(
                    sentence=intro.format(c=text), canary=text, phase=phase, copies=p.timing_copies
                )
            )
    eligible = [
        d["source"] in ("Stories", "Encyclopedia") and not d.get("busy") and "cluster" not in d
        for d in drafts
    ]
    hosted = place([d["text"] for d in drafts], eligible, specs, placement)
    out: list[dict[str, Any]] = [
        {
            "canary": c.canary,
            "count": c.copies,
            "context": c.sentence.split(c.canary)[0],
            "hosts": [],
            "timing": c.phase,
        }
        for c in specs
    ]
    for h in hosted:
        drafts[h.doc]["text"] = h.text
        drafts[h.doc]["busy"] = True
        out[h.canary]["hosts"].append(drafts[h.doc])
    return out


def _timing_truth(placement: Placement) -> dict[str, Any]:
    lo, hi = placement.rows("first_quarter"), placement.rows("last_quarter")
    return {
        "placement": asdict(placement),
        "trained_rows": placement.trained_rows,
        "rows": {"first_quarter": list(lo), "last_quarter": list(hi)},
    }


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


def write_corpus(
    out: Path,
    *,
    preset: str | Preset = "tiny",
    seed: int = 1234,
    placement: Placement | None = None,
) -> dict[str, Any]:
    """Write `out/corpus.jsonl` and `out/truth.json` atomically (the directory appears whole)."""
    out = Path(out)
    docs, truth = synthesize(preset, seed, placement)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        with open(tmp / "corpus.jsonl", "wb") as fh:
            fh.writelines(doc.jsonl() + b"\n" for doc in docs)
        truth["corpus_sha256"] = sha256_file(tmp / "corpus.jsonl")  # the corpus it describes
        (tmp / "truth.json").write_text(
            json.dumps(truth, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    log.info(
        "%s: %d documents (%s preset, seed %d)",
        out,
        len(docs),
        getattr(preset, "name", preset),
        seed,
    )
    return truth
