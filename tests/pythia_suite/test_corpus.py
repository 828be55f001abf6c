"""The synthetic corpus: determinism, schema, and truth.json recounted from corpus.jsonl."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pythia_suite.cli import main
from pythia_suite.corpus.minhash import jaccard, shingle_set
from pythia_suite.corpus.synth import PRESETS, synthesize
from pythia_suite.corpus.words import OCCUPATIONS

SEED = 1234
MALE, FEMALE = {"he", "him", "his"}, {"she", "her", "hers"}


def read_texts(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def count_terms(texts: list[str], terms: list[str]) -> dict[str, int]:
    """Whole-word, case-sensitive occurrences (the rule stated in truth.json)."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(re.findall(r"(?<!\w)(\w+)(?!\w)", text))
    return {t: counts[t] for t in terms}


def count_occupations(texts: list[str]) -> dict[str, dict[str, int]]:
    """Sentences with exactly one occupation and pronouns of exactly one gender."""
    out = {occ: {"male": 0, "female": 0} for occ in OCCUPATIONS}
    for text in texts:
        for sentence in re.split(r"(?<=[.?!])\s+", text):
            words = re.findall(r"\w+", sentence.lower())
            occs = [w for w in words if w in OCCUPATIONS]
            genders = {
                g for w in words for g, ps in (("male", MALE), ("female", FEMALE)) if w in ps
            }
            if len(occs) == 1 and len(genders) == 1:
                out[occs[0]][genders.pop()] += 1
    return out


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "corpus"
    assert main(["corpus", "synth", "--out", str(out), "--seed", str(SEED)]) == 0
    return out


@pytest.fixture(scope="module")
def corpus(synth_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    return read_texts(synth_dir / "corpus.jsonl"), json.loads(
        (synth_dir / "truth.json").read_text()
    )


def test_synth_is_byte_identical_for_a_seed(synth_dir: Path, tmp_path: Path) -> None:
    again, other = tmp_path / "again", tmp_path / "other"
    assert (
        main(["corpus", "synth", "--out", str(again), "--seed", str(SEED), "--preset", "tiny"]) == 0
    )
    for name in ("corpus.jsonl", "truth.json"):
        assert (again / name).read_bytes() == (synth_dir / name).read_bytes()
    assert main(["corpus", "synth", "--out", str(other), "--seed", str(SEED + 1)]) == 0
    assert (other / "corpus.jsonl").read_bytes() != (synth_dir / "corpus.jsonl").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "other"]  # no temporaries left


def test_schema_sources_and_size(corpus: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    docs, truth = corpus
    assert truth["num_documents"] == len(docs)
    assert 2500 <= len(docs) <= 5000  # "a few thousand short documents"
    ids = [d["meta"]["id"] for d in docs]
    assert len(set(ids)) == len(ids)
    assert all(
        set(d) == {"text", "meta"} and set(d["meta"]) == {"pile_set_name", "id"} for d in docs
    )
    sources = Counter(d["meta"]["pile_set_name"] for d in docs)
    assert dict(sources) == truth["sources"]
    assert set(sources) == {"Stories", "Encyclopedia", "Arithmetic", "Licenses"}
    assert all(text["text"].isascii() for text in docs)


def test_term_counts_match_text_and_are_zipfian(
    corpus: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    docs, truth = corpus
    texts = [d["text"] for d in docs]
    for kind in ("numbers", "entities"):
        rows = truth["terms"][kind]
        recount = count_terms(texts, [r["term"] for r in rows])
        assert {r["term"]: r["count"] for r in rows} == recount
    numbers = truth["terms"]["numbers"]
    assert sorted(int(r["term"]) for r in numbers) == list(range(100))
    counts = [r["count"] for r in sorted(numbers, key=lambda r: r["rank"])]
    # Zipf over ranks: top ranks dominate (answers add a flatter component).
    assert counts[0] > 2 * counts[4] > 0 and sum(counts[:10]) > sum(counts[50:])
    entities = sorted(truth["terms"]["entities"], key=lambda r: r["rank"])
    assert entities[0]["count"] > 5 * entities[20]["count"] > 0
    assert any(e["count"] == 0 for e in entities)  # the Zipf tail includes unseen entities


def test_canaries_are_where_truth_says(corpus: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    docs, truth = corpus
    by_id = {d["meta"]["id"]: d["text"] for d in docs}
    assert sorted({c["count"] for c in truth["canaries"]}) == [1, 2, 4, 8, 16, 32, 64]
    hosts_seen: set[str] = set()
    for c in truth["canaries"]:
        holders = sorted(i for i, text in by_id.items() if c["canary"] in text)
        assert holders == c["doc_ids"] and len(holders) == c["count"]
        assert all(by_id[i].count(c["canary"]) == 1 for i in holders)
        assert all(c["context"] + c["canary"] in by_id[i] for i in holders)
        assert not hosts_seen & set(holders)  # one canary per host document
        hosts_seen |= set(holders)


def test_occupation_counts_match_text_and_are_skewed(
    corpus: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    docs, truth = corpus
    recount = count_occupations([d["text"] for d in docs])
    assert {
        r["occupation"]: {"male": r["male"], "female": r["female"]} for r in truth["occupations"]
    } == recount
    rows = {r["occupation"]: r for r in truth["occupations"]}
    assert rows["nurse"]["female"] > 4 * rows["nurse"]["male"]
    assert rows["carpenter"]["male"] > 4 * rows["carpenter"]["female"]
    for r in truth["occupations"]:
        total = r["male"] + r["female"]
        assert total > 100 and abs(r["female"] / total - r["target_female_rate"]) < 0.12


def test_near_duplicate_truth_is_exact(corpus: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    docs, truth = corpus
    by_id = {d["meta"]["id"]: d["text"] for d in docs}
    order = {d["meta"]["id"]: i for i, d in enumerate(docs)}
    nd = truth["near_duplicates"]
    assert nd["threshold"] == 0.87 and len(nd["clusters"]) == PRESETS["tiny"].clusters
    all_j = []
    for c in nd["clusters"]:
        assert [order[i] for i in c["docs"]] == sorted(order[i] for i in c["docs"])
        for p in c["pairs"]:
            assert p["jaccard"] == jaccard(shingle_set(by_id[p["a"]]), shingle_set(by_id[p["b"]]))
            all_j.append(p["jaccard"])
        for r in c["expected_removed"]:
            assert r["jaccard"] >= 0.87 and order[r["duplicate_of"]] < order[r["id"]]
    assert sum(j >= 0.95 for j in all_j) >= 15 and sum(j < 0.8 for j in all_j) >= 15
    assert nd["expected_removed_total"] == sum(len(c["expected_removed"]) for c in nd["clusters"])
    # formatting-only copies: different bytes, identical shingles
    assert any(
        p["jaccard"] == 1.0 and by_id[p["a"]] != by_id[p["b"]]
        for c in nd["clusters"]
        for p in c["pairs"]
    )


def test_eval_questions_reference_known_terms(
    corpus: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    _, truth = corpus
    numbers = {r["term"] for r in truth["terms"]["numbers"]}
    for q in truth["eval"]["arithmetic"]:
        a, b = q["terms"]
        assert {a, b} <= numbers and q["answer"] == f" {int(a) + int(b)}."
    assert len(truth["eval"]["facts"]) == 2 * len(truth["terms"]["entities"])


def test_small_preset_is_ten_times_tiny() -> None:
    tiny, small = PRESETS["tiny"], PRESETS["small"]
    assert small.stories + small.encyclopedia + small.arithmetic + small.licenses == 10 * (
        tiny.stories + tiny.encyclopedia + tiny.arithmetic + tiny.licenses
    )


def test_synth_refuses_existing_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "corpus").mkdir()
    assert main(["corpus", "synth", "--out", str(tmp_path / "corpus")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and err[0].startswith("pythia-suite: error: ")
        and str(tmp_path / "corpus") in err[0]
    )
    assert list((tmp_path / "corpus").iterdir()) == []


def test_synthesize_rejects_unknown_preset() -> None:
    with pytest.raises(ValueError, match="preset"):
        synthesize("huge", 1)
