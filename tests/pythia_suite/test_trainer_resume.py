"""Kill-and-resume: a real `pythia-suite train` process SIGKILLed mid-run, then `--resume`,
ends byte-identical (every checkpoint's weights, metrics.jsonl) to an uninterrupted run.
Crash states that a kill can leave (torn metrics line, half-written checkpoint temporary, a
complete checkpoint the catalog never recorded) are also built exactly and resumed.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from pythia_suite.cli import main

RULE = "log+every:8"


def args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--model", "pythia-nano", "--data", str(data), "--out", str(out),
            "--checkpoints", RULE, "--threads", "1", *extra]  # fmt: skip


def assert_same_run(a: Path, b: Path) -> None:
    names_a = sorted(p.name for p in (a / "checkpoints").iterdir())
    assert names_a == sorted(p.name for p in (b / "checkpoints").iterdir())
    for name in names_a:
        for f in ("model.safetensors", "optimizer.pt", "trainer_state.json", "rng.pt"):
            assert (a / "checkpoints" / name / f).read_bytes() == (
                b / "checkpoints" / name / f
            ).read_bytes(), (name, f)
    assert (a / "metrics.jsonl").read_bytes() == (b / "metrics.jsonl").read_bytes()
    assert (a / "run.json").read_bytes() == (b / "run.json").read_bytes()


@pytest.fixture(scope="module")
def reference(long_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(args(long_data, out)) == 0
    return out


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _kill_at(cmd: list[str], metrics: Path, step: int, timeout: float = 120.0) -> int:
    """Start `cmd`, SIGKILL it as soon as `metrics` holds `step` lines; returns the lines seen."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and _lines(metrics) < step:
            if time.monotonic() > deadline:
                raise AssertionError(f"training did not reach step {step} in {timeout}s")
            time.sleep(0.0005)
    finally:
        if proc.poll() is None:
            proc.kill()  # SIGKILL: no handler, no cleanup, whatever the process was doing
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, (
        f"process ended on its own ({proc.returncode}) before step {step}"
    )
    return _lines(metrics)


def test_sigkill_then_resume_is_byte_identical(
    reference: Path, long_data: Path, cli_bin: Path, tmp_path: Path
) -> None:
    seed = random.SystemRandom().randrange(1 << 30)
    step = random.Random(seed).randrange(1, 56)
    out = tmp_path / "run"
    seen = _kill_at([str(cli_bin), *args(long_data, out)], out / "metrics.jsonl", step)
    assert seen >= step, f"seed {seed}"
    assert main([*args(long_data, out), "--resume"]) == 0, f"seed {seed}"
    assert_same_run(reference, out)


def _drop_catalog_rows(run: Path, steps: list[int]) -> None:
    with sqlite3.connect(run / "catalog.sqlite") as db:
        db.executemany("DELETE FROM checkpoints WHERE step = ?", [(s,) for s in steps])


def test_resume_from_every_crash_state(reference: Path, long_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    for step in (40, 48, 56, 64):  # the kill came during update 43, after saving step32...
        shutil.rmtree(out / "checkpoints" / f"step{step}")
    lines = (out / "metrics.jsonl").read_text().splitlines(keepends=True)
    (out / "metrics.jsonl").write_text("".join(lines[:42]) + lines[42][:17])  # ... mid-line
    tmp = out / "checkpoints" / ".step40.tmp-deadbeef"  # a save that never finished
    tmp.mkdir()
    (tmp / "model.safetensors").write_bytes(b"\0" * 100)
    # step32 renamed into place, but its catalog row never written (nor those of 40..64)
    _drop_catalog_rows(out, [32, 40, 48, 56, 64])
    assert main([*args(long_data, out), "--resume"]) == 0
    assert not tmp.exists()
    assert_same_run(reference, out)


def test_killed_before_the_first_checkpoint(
    reference: Path, long_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    shutil.copyfile(reference / "run.json", out / "run.json")  # only run.json was written
    assert main([*args(long_data, out), "--resume"]) == 0
    assert_same_run(reference, out)


def test_corrupt_checkpoint_is_refused(
    reference: Path, long_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    weights = out / "checkpoints" / "step64" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    os.utime(weights)
    assert main([*args(long_data, out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("pythia-suite: error:") == 1 and "step64" in err and "Traceback" not in err
