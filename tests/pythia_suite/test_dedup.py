"""Dedup on the planted clusters: recall/precision against truth.json, datasketch as oracle, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zstandard
from datasketch import MinHash, MinHashLSH

from pythia_suite.cli import main
from pythia_suite.corpus.dedup import DedupConfig, dedup_signatures, report_path
from pythia_suite.corpus.minhash import MinHashParams, shingle_hash32, shingles, signatures
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
    assert (rep["lsh"]["b"], rep["lsh"]["r"]) == (10, 12)
    assert rep["minhash"]["scheme"] == "affine32" and rep["parameters"]["threshold"] == THRESHOLD
    for g in rep["groups"]:
        assert g["kept"]["id"] not in removed
        for r in g["removed"]:
            assert run["docs"][r["doc"]]["meta"]["id"] == r["id"] and r["line"] == r["doc"] + 1
            assert r["estimated_jaccard"] >= THRESHOLD and r["doc"] > g["kept"]["doc"]


def test_recall_and_precision_on_planted_clusters(run: dict[str, Any]) -> None:
    removed = removed_ids(run)
    nd = run["truth"]["near_duplicates"]
    cluster_docs = {d for c in nd["clusters"] for d in c["docs"]}
    assert not removed - cluster_docs  # precision outside the clusters: nothing else removed
    checked_above = checked_below = 0
    for c in nd["clusters"]:
        jac = {(p["a"], p["b"]): p["jaccard"] for p in c["pairs"]}
        for j, doc in enumerate(c["docs"]):
            earlier = c["docs"][:j]
            kept_earlier = [e for e in earlier if e not in removed]
            best_kept = max((jac[(e, doc)] for e in kept_earlier), default=0.0)
            best_any = max((jac[(e, doc)] for e in earlier), default=0.0)
            if best_kept >= ABOVE:
                assert doc in removed, (doc, best_kept)
                checked_above += 1
            if best_any <= BELOW:
                assert doc not in removed, (doc, best_any)
                checked_below += 1
    assert checked_above >= 15 and checked_below >= 50  # both sides are actually exercised
    expected = {r["id"] for c in nd["clusters"] for r in c["expected_removed"]}
    true_pos = len(expected & removed)
    recall, precision = true_pos / len(expected), true_pos / len(removed)
    assert recall >= 0.9 and precision >= 0.9, (recall, precision)


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


def test_same_decisions_as_pure_datasketch(run: dict[str, Any]) -> None:
    """Oracle: one datasketch MinHash per document, datasketch's MinHashLSH and jaccard()."""
    config = DedupConfig()
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=128, weights=config.weights)
    kept: dict[int, MinHash] = {}
    for i, d in enumerate(run["docs"]):
        m = MinHash(num_perm=128, seed=1, hashfunc=shingle_hash32, scheme="affine32")
        m.update_batch(shingles(d["text"]))
        if not any(m.jaccard(kept[c]) >= THRESHOLD for c in lsh.query(m)):
            lsh.insert(i, m)
            kept[i] = m
    ours = [i for i, d in enumerate(run["docs"]) if d["meta"]["id"] not in removed_ids(run)]
    assert ours == sorted(kept)


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
    result = dedup_signatures(signatures(texts, MinHashParams()), DedupConfig())
    assert result.kept == [0, 3] and {k: v[0] for k, v in result.removed.items()} == {1: 0, 2: 0}
    assert all(v[1] == 1.0 for v in result.removed.values())


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
