"""The pronoun-swap branch: same start as the parent, swapped batches after, recorded map and
branch point, linked catalog, verified replay, kill/resume byte-identical, bad input."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from analysis.sources import open_checkpoints
from checkpoints_index.catalog import Catalog
from dataloader_replay.sources import open_run
from dataloader_replay.transforms import apply_transform
from dataloader_replay.verify import verify_run
from pythia_suite.cli import main
from tests.analysis.bias.conftest import BRANCH_STEP, BiasRuns, branch_args, train_args


def test_branch_records_map_and_point(bias_runs: BiasRuns) -> None:
    config = json.loads((bias_runs.swap / "run.json").read_text())
    with Catalog.open(bias_runs.base) as catalog:
        sha = catalog.get(BRANCH_STEP).sha256
    assert config["branch"] == {
        "parent": str(bias_runs.base),
        "step": BRANCH_STEP,
        "checkpoint_sha256": sha,
    }
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(bias_runs.tokenizer))
    entries = config["intervention"]["map"]
    assert {(e["from"], e["to"]) for e in entries} == {
        (" he", " she"),
        (" him", " her"),
        (" his", " her"),
    }
    for e in entries:
        assert tok.encode(e["from"]).ids == [e["from_id"]]
        assert tok.encode(e["to"]).ids == [e["to_id"]]
    left_out = {m["from"] for m in config["intervention"]["not_single_tokens"]}
    assert " himself" in left_out and "He" in left_out
    assert config["data"]["transform"] == {
        "name": "token_map",
        "map": [[e["from_id"], e["to_id"]] for e in entries],
        "start_step": BRANCH_STEP,
    }
    base = json.loads((bias_runs.base / "run.json").read_text())
    assert {k: v for k, v in config.items() if k not in ("branch", "intervention", "data")} == {
        k: v for k, v in base.items() if k != "data"
    }


def test_checkpoints_shared_up_to_branch_step(bias_runs: BiasRuns) -> None:
    base, swap = open_checkpoints(bias_runs.base), open_checkpoints(bias_runs.swap)
    assert swap.steps == base.steps == [0, 8, 16, 24, 32, 40]
    for step in (0, 8, 16, 24):
        assert swap.sha256(step) == base.sha256(step)
        assert swap.folder(step).resolve() == base.folder(step).resolve()  # linked, not copied
        swap.verify(step)
    assert not (bias_runs.swap / "checkpoints" / f"step{BRANCH_STEP}").exists()
    for step in (32, 40):
        assert swap.sha256(step) != base.sha256(step)
    with Catalog.open(bias_runs.swap) as catalog:
        assert catalog.verify() == []
    assert main(["checkpoints", "verify", str(bias_runs.swap)]) == 0


def test_batches_differ_exactly_at_swapped_positions(bias_runs: BiasRuns) -> None:
    parent, branch = open_run(bias_runs.base), open_run(bias_runs.swap)
    config = json.loads((bias_runs.swap / "run.json").read_text())
    mapping = dict(config["data"]["transform"]["map"])
    for step in range(parent.num_steps):
        a, b = parent.batch(step), branch.batch(step)
        if step < BRANCH_STEP:
            assert np.array_equal(a, b)
            continue
        changed = np.isin(a, list(mapping))
        assert np.array_equal(a != b, changed)
        assert b[changed].tolist() == [mapping[x] for x in a[changed].tolist()]
    swapped = sum(int(np.isin(parent.batch(s), list(mapping)).sum()) for s in range(24, 40))
    assert swapped > 0
    metrics = [json.loads(x) for x in (bias_runs.swap / "metrics.jsonl").read_text().splitlines()]
    base_metrics = (bias_runs.base / "metrics.jsonl").read_text().splitlines()
    assert [json.dumps(m) for m in metrics[:BRANCH_STEP]] == [
        json.dumps(json.loads(x)) for x in base_metrics[:BRANCH_STEP]
    ]
    base_lines = [json.loads(x) for x in base_metrics]
    for mine, theirs in zip(metrics[BRANCH_STEP:], base_lines[BRANCH_STEP:], strict=True):
        assert mine["step"] == theirs["step"] and mine["lr"] == theirs["lr"]  # same schedule
        assert mine["tokens"] == theirs["tokens"]
    assert (
        metrics[BRANCH_STEP]["batch_sha256"] != base_lines[BRANCH_STEP]["batch_sha256"]
        or not np.isin(parent.batch(BRANCH_STEP), list(mapping)).any()
    )
    assert verify_run(bias_runs.swap).mismatch is None
    assert verify_run(bias_runs.swap).checked == 40
    assert main(["replay", str(bias_runs.swap), "--verify"]) == 0
    spec = config["data"]["transform"]
    assert np.array_equal(
        branch.rows(0, 320)[BRANCH_STEP * 8 :],
        apply_transform(spec, parent.rows(BRANCH_STEP * 8, 320), BRANCH_STEP),
    )


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_kill_and_resume_branch_is_byte_identical(
    bias_runs: BiasRuns, cli_bin: Path, tmp_path: Path
) -> None:
    out = tmp_path / "swap"
    step = random.Random().randrange(BRANCH_STEP + 1, 39)
    proc = subprocess.Popen(
        [str(cli_bin), *branch_args(bias_runs.base, out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and _lines(out / "metrics.jsonl") < step:
            assert time.monotonic() < deadline
            time.sleep(0.0005)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"ended on its own before step {step}"
    assert main([*branch_args(bias_runs.base, out), "--resume"]) == 0
    for name in ("step32", "step40"):
        for f in ("model.safetensors", "optimizer.pt", "trainer_state.json", "rng.pt"):
            assert (out / "checkpoints" / name / f).read_bytes() == (
                bias_runs.swap / "checkpoints" / name / f
            ).read_bytes(), (name, f)
    assert (out / "metrics.jsonl").read_bytes() == (bias_runs.swap / "metrics.jsonl").read_bytes()


def _fails(args: list[str], capsys: pytest.CaptureFixture[str], match: str) -> None:
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert match in err, err


def test_bad_branch_requests(
    bias_runs: BiasRuns, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x"
    base = str(bias_runs.base)
    common = ["train", "--branch-from", base, "--intervention", "pronoun-swap", "--out", str(out)]
    _fails([*common, "--branch-step", "20"], capsys, "no checkpoint at step 20")
    _fails([*common, "--branch-step", "40"], capsys, "--branch-step: 40 is outside")
    _fails([*common, "--branch-step", "24", "--steps", "30"], capsys, "field 'steps' differs")
    _fails(
        [
            "train",
            "--branch-from",
            base,
            "--branch-step",
            "24",
            "--intervention",
            "nope",
            "--out",
            str(out),
        ],
        capsys,
        "invalid choice",
    )
    _fails([*common[:3], "--branch-step", "24", "--out", str(out)], capsys, "--intervention")
    _fails(branch_args(bias_runs.base, bias_runs.swap), capsys, "already exists")
    assert not out.exists()


def test_tokenizer_without_single_token_pronouns(
    bias_runs: BiasRuns, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataloader_replay.prepare import prepare
    from pythia_suite.corpus.tokenizer import train_tokenizer

    tok = tmp_path / "tok512.json"
    train_tokenizer(bias_runs.corpus, tok, vocab_size=512)
    data = tmp_path / "data512"
    prepare(bias_runs.corpus, tok, data, seed=1234, seq_length=16, batch_size=4, steps=4)
    base = tmp_path / "base512"
    assert (
        main([*train_args(data, base)[:-4], "--checkpoints", "steps:0,2,4", "--threads", "1"]) == 0
    )
    out = tmp_path / "swap512"
    _fails(
        [
            "train",
            "--branch-from",
            str(base),
            "--branch-step",
            "2",
            "--intervention",
            "pronoun-swap",
            "--out",
            str(out),
        ],
        capsys,
        "none of the pronoun forms is a single token",
    )
    assert not out.exists()
