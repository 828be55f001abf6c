"""`--engine ray` for dedup and prepare: byte-identical to the local engine at 1, 2 and 4 workers,
a cluster of 2,000 identical documents without its pairs, a cluster of 2,000 near-identical
documents in about 2,000 verifications, a lost worker, and bad inputs.

One local Ray cluster on loopback serves the whole session (`ray_cluster` in conftest).
"""

from __future__ import annotations

import json
import random
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zstandard

from dataloader_replay.engine_ray import marker_path
from pythia_suite.cli import main
from pythia_suite.corpus.dedup import DedupConfig, report_path
from tests.pythia_suite.bad_corpora import BAD_CORPORA
from tests.pythia_suite.conftest import SEED, VOCAB

PREPARED = ["--seq-length", "32", "--batch-size", "8", "--steps", "12"]
CLUSTER = 2000
NEAR = 2000


def _cluster_corpus(path: Path) -> None:
    """2,000 identical documents (spread through the file, some reformatted), near-duplicates
    of them, and distinct documents; written as two files of a folder, one zst-compressed."""
    rng = random.Random(5)
    vocab = [f"w{i}" for i in range(400)]
    base = " ".join(rng.choice(vocab) for _ in range(60))
    kinds = ["dup"] * CLUSTER + ["near"] * 40 + ["other"] * 560
    rng.shuffle(kinds)
    lines = []
    for i, kind in enumerate(kinds):
        if kind == "dup":
            text = base.upper() if i % 7 == 0 else base
        elif kind == "near":
            words = base.split()
            words[rng.randrange(60)] = "changed"
            text = " ".join(words)
        else:
            text = " ".join(rng.choice(vocab) for _ in range(40))
        lines.append(json.dumps({"text": text, "meta": {"id": f"d{i}", "pile_set_name": kind}}))
    path.mkdir()
    half = len(lines) // 2
    (path / "a.jsonl").write_text("".join(x + "\n" for x in lines[:half]))
    data = "".join(x + "\n" for x in lines[half:]).encode()
    (path / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(data))


def _near_corpus(path: Path) -> None:
    """2,000 near-identical documents (a 300-word template with 1 or 2 words replaced: every
    pair has exact Jaccard >= 0.873, none is an exact copy of another) among 300 others."""
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(2000)]
    template = [rng.choice(vocab) for _ in range(300)]
    kinds = ["near"] * NEAR + ["other"] * 300
    rng.shuffle(kinds)
    lines, seen = [], set()
    for i, kind in enumerate(kinds):
        while True:
            words = list(template) if kind == "near" else rng.choices(vocab, k=120)
            for at in rng.sample(range(len(words)), rng.choice((1, 2))):
                words[at] = f"v{rng.randrange(10**6)}"
            if (text := " ".join(words)) not in seen:
                break
        seen.add(text)
        lines.append(json.dumps({"text": text, "meta": {"id": f"n{i}", "pile_set_name": kind}}))
    path.write_text("".join(x + "\n" for x in lines))


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from pythia_suite.corpus.synth import write_corpus
    from pythia_suite.corpus.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("engines")
    write_corpus(root / "tiny", preset="tiny", seed=SEED)
    train_tokenizer(root / "tiny" / "corpus.jsonl", root / "tok.json", vocab_size=VOCAB)
    _cluster_corpus(root / "cluster")
    _near_corpus(root / "near.jsonl")
    return {
        "root": root,
        "tiny": [str(root / "tiny" / "corpus.jsonl")],
        "cluster": [str(root / "cluster")],
        "near": [str(root / "near.jsonl")],
        "tokenizer": str(root / "tok.json"),
    }


def _dedup(corpora: dict[str, Any], name: str, out: Path, *flags: str) -> list[bytes]:
    output = out / "deduped.jsonl"
    assert main(["dedup", *corpora[name], "--out", str(output), *flags]) == 0
    return [output.read_bytes(), report_path(output).read_bytes()]


def _prepare(corpora: dict[str, Any], name: str, out: Path, *flags: str) -> dict[str, bytes]:
    data = out / "data"
    argv = ["prepare", *corpora[name], "--tokenizer", corpora["tokenizer"], "--out", str(data)]
    assert main([*argv, *PREPARED, *flags]) == 0
    return {p.name: p.read_bytes() for p in sorted(data.iterdir())}


@pytest.fixture(scope="module")
def local(corpora: dict[str, Any]) -> dict[str, Any]:
    """The local engine's outputs, the reference for every Ray run."""
    root = corpora["root"] / "local"
    runs = {
        (kind, name): (_dedup if kind == "dedup" else _prepare)(corpora, name, root / kind / name)
        for kind in ("dedup", "prepare")
        for name in ("tiny", "cluster")
    }
    runs[("dedup", "near")] = _dedup(corpora, "near", root / "dedup" / "near")
    return runs


@pytest.mark.parametrize("workers", [1, 2, 4])
@pytest.mark.parametrize("name", ["tiny", "cluster", "near"])
def test_dedup_on_ray_is_byte_identical(
    ray_cluster: Path,
    corpora: dict[str, Any],
    local: dict[str, Any],
    name: str,
    workers: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pythia_suite.corpus import dedup_ray

    monkeypatch.setattr(dedup_ray, "CHUNK_BYTES", 1 << 16)  # many chunks, cut mid-line
    out = corpora["root"] / f"ray{workers}" / "dedup" / name
    got = _dedup(
        corpora, name, out, "--engine", "ray", "--address", "auto", "--workers", str(workers)
    )
    assert got[0] == local[("dedup", name)][0]  # kept lines and their order
    assert got[1] == local[("dedup", name)][1]  # the report, groups included
    report = json.loads(got[1])
    if name == "near":  # the lazy rule: about one verification per near-identical document
        biggest = max(report["groups"], key=lambda g: len(g["removed"]))
        assert len(biggest["removed"]) >= 0.95 * NEAR
        assert report["removed"] < NEAR and report["verified_pairs"] < 3 * NEAR
        assert min(r["jaccard"] for r in biggest["removed"]) >= 0.87
    if name == "cluster":
        biggest = max(report["groups"], key=lambda g: len(g["removed"]))
        assert len(biggest["removed"]) >= CLUSTER - 1  # the identical docs (+ near copies)
        assert report["inputs"] == [
            str(Path(corpora["cluster"][0]) / f) for f in ("a.jsonl", "b.jsonl.zst")
        ]


@pytest.mark.parametrize("workers", [1, 2, 4])
@pytest.mark.parametrize("name", ["tiny", "cluster"])
def test_prepare_on_ray_is_byte_identical(
    ray_cluster: Path, corpora: dict[str, Any], local: dict[str, Any], name: str, workers: int
) -> None:
    out = corpora["root"] / f"ray{workers}" / "prepare" / name
    got = _prepare(
        corpora, name, out, "--engine", "ray", "--address", "auto", "--workers", str(workers)
    )
    expected = local[("prepare", name)]
    assert sorted(got) == sorted(expected)
    for file in ("documents.bin", "documents.idx", "train.bin", "train.idx", "manifest.json"):
        assert got[file] == expected[file], file
    assert got == expected


def test_identical_documents_do_not_make_pairs() -> None:
    """One bucket of 2,000 identical documents and 2 others: 1,999 member links, 2 star edges
    (both ways) and 3 memberships, not pairs."""
    from pythia_suite.corpus.dedup_rule import DedupConfig
    from pythia_suite.corpus.dedup_tasks import Plan, buckets

    plan = Plan(config=DedupConfig(), files=(), partitions=2, retries=0)
    docs = np.arange(2002, dtype=np.int64)[::-1].copy()
    digests = np.array([[1, 1]] * 2000 + [[2, 2], [3, 3]], dtype=np.uint64)[::-1].copy()
    for band in (0, 3):
        keys = np.zeros((2002, 10), dtype=np.uint32)
        keys[:, 0] = band
        out = buckets(plan, 0, (keys, docs, digests))
        edges, members, links = (np.concatenate(out[k * 2 : k * 2 + 2]) for k in range(3))
        assert sorted(map(tuple, edges.tolist())) == [(0, 2000), (0, 2001), (2000, 0), (2001, 0)]
        assert sorted(members[:, 1].tolist()) == [0, 2000, 2001]
        assert len(set(members[:, 0].tolist())) == 1
        expected = [(d, 0) for d in range(1, 2000)] if band == 0 else []  # band 0 only
        assert sorted(map(tuple, links.tolist())) == expected


def test_lost_worker_is_retried_to_the_same_output(
    ray_cluster: Path, corpora: dict[str, Any], local: dict[str, Any]
) -> None:
    for stage in ("sign", "resolve"):
        ray_cluster.write_text(stage)
        out = corpora["root"] / f"lost_{stage}"
        assert (
            _dedup(corpora, "tiny", out, "--engine", "ray", "--address", "auto")
            == local[("dedup", "tiny")]
        )
        claimed = ray_cluster.with_name("kill.claimed")
        assert not ray_cluster.exists() and claimed.read_text() == stage  # a worker did die
        claimed.unlink()
    ray_cluster.write_text("tokenize")
    got = _prepare(
        corpora, "tiny", corpora["root"] / "lost_tok", "--engine", "ray", "--address", "auto"
    )
    assert got == local[("prepare", "tiny")] and not ray_cluster.exists()
    ray_cluster.with_name("kill.claimed").unlink()


def _fails(argv: list[str], where: Path, capsys: pytest.CaptureFixture[str]) -> str:
    before = sorted(p.name for p in where.iterdir())
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert sorted(p.name for p in where.iterdir()) == before  # nothing half-written
    return err[0]


@pytest.mark.parametrize("command", ["dedup", "prepare"])
def test_worker_that_dies_without_retries_fails_in_one_line(
    ray_cluster: Path,
    corpora: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    ray_cluster.write_text("sign" if command == "dedup" else "tokenize")
    argv = [command, *corpora["tiny"], "--out", str(tmp_path / "out"), "--engine", "ray"]
    if command == "prepare":
        argv += ["--tokenizer", corpora["tokenizer"], *PREPARED]
    err = _fails([*argv, "--address", "auto", "--retries", "0"], tmp_path, capsys)
    assert "a worker was lost" in err and ("sign" in err or "tokenize" in err)
    ray_cluster.with_name("kill.claimed").unlink()


def test_no_ray_cluster_at_the_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"text": "a b c d e f"}\n')
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"ray://127.0.0.1:{port}"
    argv = ["dedup", str(src), "--out", str(tmp_path / "o.jsonl"), "--engine", "ray"]
    err = _fails([*argv, "--address", address], tmp_path, capsys)
    assert err.startswith(f"pythia-suite: error: --address {address}: no Ray cluster answers")


@pytest.mark.parametrize("case", ["malformed", "missing_text", "bad_utf8", "empty_file"])
@pytest.mark.parametrize("command", ["dedup", "prepare"])
def test_bad_corpus_on_ray(
    ray_cluster: Path,
    corpora: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    case: str,
) -> None:
    data, message = BAD_CORPORA[case]
    src = tmp_path / "in.jsonl"
    src.write_bytes(data)
    argv = [
        command,
        str(src),
        "--out",
        str(tmp_path / "out"),
        "--engine",
        "ray",
        "--address",
        "auto",
    ]
    if command == "prepare":
        argv += ["--tokenizer", corpora["tokenizer"], *PREPARED]
    assert _fails(argv, tmp_path, capsys).startswith(f"pythia-suite: error: {src}{message}")


def test_missing_and_corrupt_inputs(
    ray_cluster: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "a.jsonl"
    good.write_bytes(b'{"text": "a b c d e f"}\n')
    ray = ["--engine", "ray", "--address", "auto"]
    err = _fails(
        ["dedup", str(good), str(tmp_path / "gone.jsonl"), "--out", str(tmp_path / "o"), *ray],
        tmp_path,
        capsys,
    )
    assert "gone.jsonl: no such file" in err
    bad = tmp_path / "b.jsonl.zst"
    bad.write_bytes(zstandard.ZstdCompressor().compress(b'{"text": "x y"}\n' * 50)[:-7])
    err = _fails(["dedup", str(tmp_path), "--out", str(tmp_path / "o"), *ray], tmp_path, capsys)
    assert f"{bad}: truncated zstd stream" in err


def test_resume_with_another_engine_is_refused(
    corpora: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    marker = marker_path(out)
    marker.write_text(json.dumps({"engine": "ray"}) + "\n")  # what a killed Ray run leaves
    err = _fails(["dedup", *corpora["tiny"], "--out", str(out)], tmp_path, capsys)
    assert err.startswith(f"pythia-suite: error: {marker}: an interrupted run with --engine ray")
    data = tmp_path / "data"
    marker_path(data).write_text(json.dumps({"engine": "local"}) + "\n")
    argv = ["prepare", *corpora["tiny"], "--tokenizer", corpora["tokenizer"], "--out", str(data)]
    err = _fails([*argv, *PREPARED, "--engine", "ray"], tmp_path, capsys)
    assert "an interrupted run with --engine local" in err


def test_engine_flags_are_checked(
    corpora: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["dedup", *corpora["tiny"], "--out", str(tmp_path / "o.jsonl")]
    assert "--workers: only with --engine ray" in _fails(
        [*argv, "--workers", "2"], tmp_path, capsys
    )
    assert DedupConfig().bands == (14, 9)
