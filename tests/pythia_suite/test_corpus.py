"""The synthetic corpus: determinism, schema, and truth.json recounted from corpus.jsonl."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from dataloader_replay.find import find_tokens
from dataloader_replay.prepare import prepare
from dataloader_replay.replay import TrainData
from dataloader_replay.tokenizer import read_tokenizer
from pythia_suite.cli import main
from pythia_suite.corpus.minhash import jaccard, shingle_set
from pythia_suite.corpus.synth import PRESETS, synthesize, write_corpus
from pythia_suite.corpus.timing import Placement
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


# --- the default world's designs, on a tiny corpus with all of them planted ------------------

WORLD = dataclasses.replace(
    PRESETS["tiny"],
    name="tiny-world",
    addends=5,
    numbers_by_value=True,
    boilerplate_levels=(1, 4, 16),
    passages_per_level=2,
    timing_canaries=2,
    timing_copies=3,
    placement=Placement(
        seq_length=64, batch_size=8, steps=48, held_out_rows=32, seed=7, vocab_size=1024, context=8
    ),
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], list[str]]:
    """The tiny world synthesized, deduplicated, tokenized and prepared as a suite would."""
    from pythia_suite.corpus.dedup import DedupConfig, dedup_file
    from pythia_suite.corpus.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("world")
    write_corpus(out / "corpus", preset=WORLD, seed=SEED)
    p = WORLD.placement
    assert p is not None
    dedup_file(out / "corpus" / "corpus.jsonl", out / "deduped.jsonl", DedupConfig())
    train_tokenizer(out / "deduped.jsonl", out / "tokenizer.json", vocab_size=p.vocab_size)
    prepare(
        out / "corpus" / "corpus.jsonl",
        out / "tokenizer.json",
        out / "data",
        seq_length=p.seq_length,
        batch_size=p.batch_size,
        steps=p.steps,
        seed=p.seed,
        num_samples=p.num_samples,
    )
    texts = [d["text"] for d in read_texts(out / "corpus" / "corpus.jsonl")]
    return out, json.loads((out / "corpus" / "truth.json").read_text()), texts


def test_timing_canaries_occur_only_in_their_quarter(
    world: tuple[Path, dict[str, Any], list[str]],
) -> None:
    out, truth, _ = world
    p = WORLD.placement
    assert p is not None
    data = TrainData.open(out / "data")
    tok = read_tokenizer(out / "tokenizer.json")
    quarter = p.trained_rows // 4
    assert truth["timing"]["rows"] == {
        "first_quarter": [0, quarter],
        "last_quarter": [p.trained_rows - quarter, p.trained_rows],
    }
    timed = [c for c in truth["canaries"] if c["timing"]]
    assert sorted(c["timing"] for c in timed) == ["first_quarter"] * 2 + ["last_quarter"] * 2
    for c in timed:
        ids = tok.encode(" " + c["canary"]).ids
        trained = [o for o in find_tokens(data, ids) if o.row < p.trained_rows]
        lo, hi = truth["timing"]["rows"][c["timing"]]
        # once per host, every occurrence in its quarter, whole inside its row after the context
        assert len(trained) == c["count"] == len(c["doc_ids"]) == 3
        assert all(lo <= o.row < hi and p.context <= o.offset for o in trained)
        assert all(o.offset + len(ids) <= p.seq_length for o in trained)
    graded = [c for c in truth["canaries"] if not c["timing"]]
    assert len(graded) == 7 * WORLD.canaries_per_level


def test_boilerplate_truth_is_exact(world: tuple[Path, dict[str, Any], list[str]]) -> None:
    _, truth, texts = world
    passages = truth["boilerplate"]
    assert [b["count"] for b in passages] == [1, 1, 4, 4, 16, 16]
    ids = [d["meta"]["id"] for d in read_texts(world[0] / "corpus" / "corpus.jsonl")]
    for b in passages:
        holders = sorted(i for i, t in zip(ids, texts) if b["text"] in t)
        assert holders == b["doc_ids"] and len(holders) == b["count"]
        assert all(t.startswith(b["text"] + "\n") for i, t in zip(ids, texts) if i in holders)
        assert b["kind"] in ("licence header", "file header", "code preamble")
        assert not re.search(r"\d|\b(he|she|his|her|him|hers)\b", b["text"])


def test_arithmetic_addends_are_small(world: tuple[Path, dict[str, Any], list[str]]) -> None:
    _, truth, texts = world
    sums = [
        (int(a), op, int(b))
        for t in texts
        for a, op, b in re.findall(r"Q: What is (\d+) (plus|minus) (\d+)\?", t)
    ]
    assert len(sums) > 1000
    assert all(1 <= b <= 5 for a, op, b in sums if op == "plus")
    # a minus line only where a + b would pass 99 (the operands are then swapped by size)
    assert all(a >= 95 or b >= 95 for a, op, b in sums if op == "minus")
    recount = count_terms(texts, [r["term"] for r in truth["terms"]["numbers"]])
    assert {r["term"]: r["count"] for r in truth["terms"]["numbers"]} == recount


def test_default_world_is_placed_for_the_default_suite() -> None:
    """`make demo` synthesizes with the default suite's own settings: the placement is exact."""
    from pythia_suite.suite.presets import PRESETS as SUITES

    suite, world = SUITES["default"], PRESETS["default"]
    assert suite["corpus"]["synth"] == "default" and world.placement is not None
    p, d = world.placement, suite["data"]
    assert (p.seq_length, p.batch_size, p.steps, p.held_out_rows, p.seed) == (
        d["seq_length"], d["batch_size"], d["steps"], d["held_out_rows"], d["seed"]
    )  # fmt: skip
    assert p.vocab_size == suite["tokenizer"]["vocab_size"]
    assert (p.threshold, p.num_perm, p.dedup_seed) == tuple(suite["dedup"].values())
    assert world.canaries_per_level >= 8 and world.boilerplate_levels[-1] == 256


def test_suite_passes_its_own_settings_to_the_placement(tmp_path: Path) -> None:
    """A suite that changes the data settings re-places the timing canaries (the corpus stage's
    key holds the placement); the tiny world has none. The key also holds the world's design, so
    a changed generator preset rebuilds the corpus; a corpus read from a file has no key."""
    from pythia_suite.suite.actions import synth_key, synth_placement
    from pythia_suite.suite.config import load_config

    default = load_config(None, preset="default")
    assert synth_placement(default) == PRESETS["default"].placement
    path = tmp_path / "s.yaml"
    path.write_text("data:\n  steps: 400\n  seq_length: 96\n")
    changed = load_config(path, preset="default")
    placed = synth_placement(changed)
    assert (placed.steps, placed.seq_length, placed.batch_size) == (400, 96, 16)
    assert synth_key(changed)["placement"]["steps"] == 400
    assert synth_key(default)["placement"]["steps"] == 512
    tiny = synth_key(load_config(None, preset="tiny"))
    assert tiny == {"world": dataclasses.asdict(PRESETS["tiny"])}
    assert synth_key(default)["world"]["numbers_by_value"] is True
    path.write_text("corpus:\n  synth: null\n  path: c.jsonl\n")
    assert synth_key(load_config(path, preset="default")) == {}


def test_numbers_by_value_counts_follow_first_operands(
    world: tuple[Path, dict[str, Any], list[str]],
) -> None:
    """With `numbers_by_value` (the default world) the Zipf ranks follow the numbers' values, the
    other sources are the same documents, and a number's count (first operand, second operand
    1..5 and answer) falls with its rank; in a random order the second operands and the answers
    of frequent numbers lift counts that first operands alone do not explain."""
    from scipy.stats import spearmanr

    _, truth, texts = world
    numbers = sorted(truth["terms"]["numbers"], key=lambda r: r["rank"])
    assert [r["term"] for r in numbers] == [str(n) for n in range(100)]
    # (without timing canaries: they are placed by rows, which longer numbers move)
    untimed = dataclasses.replace(WORLD, timing_canaries=0)
    shuffled, shuffled_truth = synthesize(
        dataclasses.replace(untimed, numbers_by_value=False), SEED
    )
    by_value, _ = synthesize(untimed, SEED)
    assert [d.source for d in by_value] == [d.source for d in shuffled]
    assert [d.text for d in by_value if d.source != "Arithmetic"] == [
        d.text for d in shuffled if d.source != "Arithmetic"
    ]
    rho = {}
    for name, rows in (("by value", numbers), ("shuffled", shuffled_truth["terms"]["numbers"])):
        rho[name] = spearmanr([r["rank"] for r in rows], [r["count"] for r in rows])[0]
    assert rho["by value"] < -0.9 and rho["shuffled"] > -0.7, rho
