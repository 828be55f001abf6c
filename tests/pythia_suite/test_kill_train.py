"""kill -9 at 5 random moments of one real `pythia-suite train` run (each restart with
--resume): after every kill nothing that looks complete differs from the uninterrupted run,
and the last resume ends byte-identical to it, with no temporary left behind."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from checkpoints_index.sums import check_folder
from pythia_suite.cli import main

STEPS = 16
RULE = "log+every:2"  # a checkpoint every other update: kills land in saves too
KILLS = 5


def args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--model",
        "pythia-nano",
        "--data",
        str(data),
        "--out",
        str(out),
        "--steps",
        str(STEPS),
        "--checkpoints",
        RULE,
        "--threads",
        "1",
        *extra,
    ]


@pytest.fixture(scope="module")
def reference(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kill_ref") / "run"
    assert main(args(tiny_data, out)) == 0
    return out


def lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def assert_nothing_false_looks_complete(run: Path, reference: Path, context: str) -> None:
    """Complete files and folders equal the reference's; the rest is visibly incomplete."""
    if (run / "run.json").exists():
        assert (run / "run.json").read_bytes() == (reference / "run.json").read_bytes(), context
    checkpoints = run / "checkpoints"
    for folder in sorted(checkpoints.iterdir()) if checkpoints.is_dir() else []:
        if folder.name.startswith("."):
            continue  # a temporary: its name says it is incomplete
        assert check_folder(folder) == [], context  # a stepN folder is whole ...
        for f in folder.iterdir():  # ... and the uninterrupted run's
            assert (
                f.read_bytes() == (reference / "checkpoints" / folder.name / f.name).read_bytes()
            ), (context, folder.name, f.name)
    if (run / "catalog.sqlite").exists():
        with sqlite3.connect(run / "catalog.sqlite") as db:
            for (path,) in db.execute("SELECT path FROM checkpoints"):
                assert check_folder(run / path) == [], (context, path)
    got = (run / "metrics.jsonl").read_bytes() if (run / "metrics.jsonl").exists() else b""
    want = (reference / "metrics.jsonl").read_bytes()
    assert want.startswith(got[: got.rfind(b"\n") + 1]), context  # complete lines: a prefix
    torn = got[got.rfind(b"\n") + 1 :]
    assert not torn or json.dumps({}) != torn.decode(errors="replace"), context


def test_sigkill_train_at_five_random_moments(
    reference: Path, tiny_data: Path, cli_bin: Path, tmp_path: Path
) -> None:
    seed = random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    run = tmp_path / "run"
    for attempt in range(KILLS):
        done = lines(run / "metrics.jsonl")
        target = rng.randrange(done, STEPS) if done < STEPS else STEPS
        extra = ("--resume",) if attempt else ()
        proc = subprocess.Popen(
            [str(cli_bin), *args(tiny_data, run, *extra)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 300
        while proc.poll() is None and lines(run / "metrics.jsonl") < target:
            assert time.monotonic() < deadline, f"seed {seed}: step {target} never reached"
            time.sleep(0.0005)
        time.sleep(rng.uniform(0.0, 0.05))  # a random moment around that update
        proc.kill()
        proc.wait()
        context = f"seed {seed}, attempt {attempt}, target {target}, exit {proc.returncode}"
        assert proc.returncode in (-9, 0), context
        assert_nothing_false_looks_complete(run, reference, context)
    assert main([*args(tiny_data, run), "--resume"]) == 0, f"seed {seed}"
    for name in ("run.json", "metrics.jsonl"):
        assert (run / name).read_bytes() == (reference / name).read_bytes(), (seed, name)
    ref_folders = sorted(p.name for p in (reference / "checkpoints").iterdir())
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ref_folders, seed
    for folder in ref_folders:
        for f in (reference / "checkpoints" / folder).iterdir():
            assert f.read_bytes() == (run / "checkpoints" / folder / f.name).read_bytes(), (
                seed,
                folder,
                f.name,
            )
    assert not [p for p in run.rglob(".*")], f"seed {seed}: temporaries left behind"
    assert main(["verify", str(run)]) == 0
