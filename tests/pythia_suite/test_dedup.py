"""Dedup on the planted clusters: truth.json's exact-Jaccard removals matched exactly, datasketch
as oracle (exact and estimated verification), a brute-force oracle of the rule for both engines'
resolution (streaming and per component), bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zstandard
from datasketch import MinHash, MinHashLSH

from pythia_suite.cli import main
from pythia_suite.corpus.dedup import DedupConfig, dedup_texts, report_path
from pythia_suite.corpus.minhash import (
    jaccard,
    shingle_hash32,
    shingle_set,
    shingles,
    signatures,
)
from tests.pythia_suite.bad_corpora import BAD_CORPORA, assert_rejected
from tests.pythia_suite.test_corpus import count_occupations, count_terms

THRESHOLD = 0.87
ABOVE, BELOW = (
    THRESHOLD + 0.07,
    THRESHOLD - 0.10,
)  # outside these, LSH + 128-slot estimates err < 1%


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("dedup")
    assert main(["corpus", "synth", "--out", str(root / "c"), "--seed", "1234"]) == 0
    out = root / "deduped.jsonl"
    assert main(["dedup", str(root / "c" / "corpus.jsonl"), "--out", str(out)]) == 0
    lines = (root / "c" / "corpus.jsonl").read_bytes().splitlines()
    return {
        "root": root,
        "input_lines": lines,
        "docs": [json.loads(x) for x in lines],
        "truth": json.loads((root / "c" / "truth.json").read_text()),
        "out_lines": out.read_bytes().splitlines(),
        "report": json.loads(report_path(out).read_text()),
    }


def removed_ids(run: dict[str, Any]) -> set[str]:
    return {r["id"] for g in run["report"]["groups"] for r in g["removed"]}


def test_output_is_kept_raw_lines_in_order(run: dict[str, Any]) -> None:
    removed = removed_ids(run)
    expected = [
        line for line, d in zip(run["input_lines"], run["docs"]) if d["meta"]["id"] not in removed
    ]
    assert run["out_lines"] == expected
    rep = run["report"]
    assert rep["input_documents"] == len(run["docs"]) and rep["kept"] == len(expected)
    assert rep["removed"] == len(removed) == len(run["docs"]) - len(expected)
    assert (rep["lsh"]["b"], rep["lsh"]["r"]) == (14, 9)
    # P(candidate) at the threshold: 1 - (1 - 0.87^9)^14
    assert rep["lsh"]["candidate_recall_at_threshold"] == round(1 - (1 - 0.87**9) ** 14, 6)
    assert rep["lsh"]["candidate_recall_at_threshold"] >= 0.99
    assert rep["minhash"]["scheme"] == "affine32" and rep["parameters"]["threshold"] == THRESHOLD
    assert rep["parameters"]["verify"] == "exact" and "exact Jaccard" in rep["rule"]
    texts = [d["text"] for d in run["docs"]]
    for g in rep["groups"]:
        assert g["kept"]["id"] not in removed
        for r in g["removed"]:
            assert run["docs"][r["doc"]]["meta"]["id"] == r["id"] and r["line"] == r["doc"] + 1
            exact = jaccard(shingle_set(texts[g["kept"]["doc"]]), shingle_set(texts[r["doc"]]))
            assert r["jaccard"] == exact >= THRESHOLD and r["doc"] > g["kept"]["doc"]


def test_truth_expected_removed_matched_exactly(run: dict[str, Any]) -> None:
    """truth.json's `expected_removed` applies the rule with exact Jaccard inside each planted
    cluster; dedup (exact verification) removes exactly those documents, as their duplicates."""
    removed = {r["id"]: g["kept"]["id"] for g in run["report"]["groups"] for r in g["removed"]}
    nd = run["truth"]["near_duplicates"]
    expected = {r["id"]: r["duplicate_of"] for c in nd["clusters"] for r in c["expected_removed"]}
    assert len(expected) == nd["expected_removed_total"] > 20
    assert removed == expected


def test_every_canary_copy_and_count_survives(run: dict[str, Any]) -> None:
    kept = [json.loads(x) for x in run["out_lines"]]
    kept_ids = {d["meta"]["id"] for d in kept}
    truth = run["truth"]
    for c in truth["canaries"]:
        assert set(c["doc_ids"]) <= kept_ids
    texts = [d["text"] for d in kept]
    for kind in ("numbers", "entities"):
        rows = truth["terms"][kind]
        assert count_terms(texts, [r["term"] for r in rows]) == {
            r["term"]: r["count"] for r in rows
        }
    occ = {
        r["occupation"]: {"male": r["male"], "female": r["female"]} for r in truth["occupations"]
    }
    assert count_occupations(texts) == occ


@pytest.fixture(scope="module")
def sketches(run: dict[str, Any]) -> list[tuple[MinHash, set[str]]]:
    """datasketch's own MinHash of every document, with its shingle set."""
    out = []
    for d in run["docs"]:
        m = MinHash(num_perm=128, seed=1, hashfunc=shingle_hash32, scheme="affine32")
        m.update_batch(shingles(d["text"]))
        out.append((m, shingle_set(d["text"])))
    return out


@pytest.mark.parametrize("verify", ["exact", "estimate"])
def test_same_decisions_as_pure_datasketch(
    run: dict[str, Any], sketches: list[tuple[MinHash, set[str]]], verify: str, tmp_path: Path
) -> None:
    """Oracle: one datasketch MinHash per document, datasketch's MinHashLSH with our bands, and
    exact Jaccard of the shingle sets (or datasketch's jaccard() estimate)."""
    config = DedupConfig(verify=verify)
    lsh = MinHashLSH(num_perm=128, params=config.bands)
    kept: dict[int, tuple[MinHash, set[str]]] = {}
    for i, (m, own) in enumerate(sketches):
        sims = (
            jaccard(kept[c][1], own) if verify == "exact" else m.jaccard(kept[c][0])
            for c in lsh.query(m)
        )
        if not any(s >= THRESHOLD for s in sims):
            lsh.insert(i, m)
            kept[i] = (m, own)
    if verify == "exact":
        report = run["report"]
    else:
        out = tmp_path / "est.jsonl"
        src = run["root"] / "c" / "corpus.jsonl"
        assert main(["dedup", str(src), "--out", str(out), "--verify", "estimate"]) == 0
        report = json.loads(report_path(out).read_text())
        assert report["parameters"]["verify"] == "estimate" and "estimated" in report["rule"]
    gone = {r["doc"] for g in report["groups"] for r in g["removed"]}
    assert [i for i in range(len(run["docs"])) if i not in gone] == sorted(kept)


def _oracle(texts: list[str], config: DedupConfig) -> tuple[dict[int, tuple[int, float]], int]:
    """The rule as stated, by brute force over all earlier documents, without an LSH index:
    datasketch's own MinHash of each document; a pair is a candidate if it shares one of the
    b bands of r rows; in input order, i is removed as a duplicate of the smallest kept
    candidate j with exact Jaccard >= threshold. Also counts the similarities computed
    (kept candidates in ascending order, up to the first match)."""
    b, r = config.bands
    bands = []
    for t in texts:
        m = MinHash(num_perm=128, seed=1, hashfunc=shingle_hash32, scheme="affine32")
        m.update_batch(shingles(t))
        bands.append(m.hashvalues[: b * r].reshape(b, r))
    sets = [shingle_set(t) for t in texts]
    removed: dict[int, tuple[int, float]] = {}
    verified = 0
    for i in range(len(texts)):
        for j in range(i):
            if j in removed or not (bands[j] == bands[i]).all(axis=1).any():
                continue
            verified += 1
            if (sim := jaccard(sets[j], sets[i])) >= config.threshold:
                removed[i] = (j, sim)
                break
    return removed, verified


def _chained_texts() -> list[str]:
    """120 documents built to chain near-duplicates (and a few exact copies)."""
    rng = np.random.default_rng(3)
    base = [f"w{i}" for i in rng.integers(0, 50, 40)]
    texts = []
    for _ in range(120):
        words = list(base)
        for at in rng.choice(40, size=int(rng.integers(0, 4)), replace=False):
            words[at] = f"x{rng.integers(0, 3)}"
        texts.append(" ".join(words))
    return texts


def test_local_engine_equals_brute_force_oracle() -> None:
    """The local engine (datasketch's LSH of kept documents) against the brute-force rule:
    the same removals, the same kept document and similarity, the same verified-pair count."""
    texts = _chained_texts()
    config = DedupConfig()
    removed, verified = _oracle(texts, config)
    from pythia_suite.corpus.dedup import Deduplicator

    dedup = Deduplicator(config)
    for i, sig in enumerate(signatures(texts, config.minhash)):
        dedup.add(i, sig, texts[i])
    assert 20 < len(removed) < 110  # both kept and removed documents, chains among them
    assert dedup.removed == removed and dedup_texts(texts, config) == removed
    assert dedup.verified == verified


def test_component_rule_equals_brute_force_oracle() -> None:
    """The Ray engine's lazy per-component rule (`dedup_tasks.resolve_rule`, fed bucket
    memberships) gives the oracle's removals and verified-pair count."""
    from pythia_suite.corpus.dedup_tasks import resolve_rule

    texts = _chained_texts()
    config = DedupConfig()
    removed, verified = _oracle(texts, config)
    b, r = config.bands
    bands = signatures(texts, config.minhash)[:, : b * r].reshape(len(texts), b, r)
    ids: dict[tuple[int, bytes], int] = {}
    members = [
        (ids.setdefault((k, bands[i, k].tobytes()), len(ids)), i)
        for i in range(len(texts))
        for k in range(b)
    ]
    sets = [shingle_set(t) for t in texts]
    got, count = resolve_rule(
        np.asarray(members), lambda j, i: jaccard(sets[j], sets[i]), config.threshold
    )
    assert got == removed and sum(count.values()) == verified


def test_zst_input_and_output(run: dict[str, Any]) -> None:
    root = run["root"]
    src = root / "corpus.jsonl.zst"
    src.write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(run["input_lines"]) + b"\n"))
    assert main(["dedup", str(src), "--out", str(root / "z.jsonl.zst")]) == 0
    out = zstandard.ZstdDecompressor().stream_reader(open(root / "z.jsonl.zst", "rb")).read()
    assert out.splitlines() == run["out_lines"]


def test_first_of_group_is_kept_exact_copies() -> None:
    texts = ["alpha beta gamma delta epsilon zeta eta theta"] * 3 + [
        "something else entirely here now ok"
    ]
    for verify in ("exact", "estimate"):
        removed = dedup_texts(texts, DedupConfig(verify=verify))
        assert removed == {1: (0, 1.0), 2: (0, 1.0)}


@pytest.mark.parametrize("case", sorted(BAD_CORPORA))
def test_bad_input_one_line_error_no_output(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_rejected(case, ["dedup", "IN", "--out", str(tmp_path / "out.jsonl")], tmp_path, capsys)


@pytest.mark.parametrize("existing", ["out.jsonl", "out.jsonl.report.json"])
def test_existing_output_is_refused(
    existing: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"text": "a b c d e f"}\n')
    (tmp_path / existing).write_bytes(b"keep me")
    assert main(["dedup", str(src), "--out", str(tmp_path / "out.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path / existing) in err[0] and "already exists" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.jsonl", existing])
    assert (tmp_path / existing).read_bytes() == b"keep me"


def test_bad_threshold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"text": "a b c d e f"}\n')
    assert main(["dedup", str(src), "--out", str(tmp_path / "o.jsonl"), "--threshold", "1.5"]) == 2
    assert "threshold" in capsys.readouterr().err
    assert np.array_equal(sorted(p.name for p in tmp_path.iterdir()), ["in.jsonl"])


def test_leftovers_of_a_killed_dedup_are_removed(tmp_path: Path) -> None:
    from pythia_suite.corpus.dedup import dedup_file

    corpus = tmp_path / "in.jsonl"
    corpus.write_text(
        "".join(json.dumps({"text": f"document number {i} " * 20}) + "\n" for i in range(5))
    )
    out = tmp_path / "out.jsonl"
    stale = [tmp_path / ".out.jsonl.k1ll3d_x.tmp", tmp_path / ".out.jsonl.report.json.abcdefgh.tmp"]
    for path in stale:  # what a SIGKILLed dedup leaves
        path.write_text("half")
    dedup_file(corpus, out)
    assert out.exists() and not any(p.exists() for p in stale)
