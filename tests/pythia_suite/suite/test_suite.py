"""`pythia-suite run`: stages skipped when done, re-run when their config changes, and a run
killed in the middle finishing with the same checkpoint hashes and tables."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from checkpoints_index.catalog import Catalog
from pythia_suite.suite.config import load_config
from pythia_suite.suite.suite import run_suite
from suite_core import ConfigError
from tests.pythia_suite.suite.conftest import SuiteRun, run_cli, state_digests, write_yaml

STAGES = [
    "corpus",
    "dedup",
    "tokenizer",
    "prepare-standard",
    "prepare-deduped",
    "train-pythia-nano-standard",
    "train-pythia-nano-deduped",
    "verify-pythia-nano-standard",
    "verify-pythia-nano-deduped",
    "ledger-pythia-nano-standard",
    "ledger-pythia-nano-deduped",
    "report",
]


def checkpoint_hashes(suite_dir: Path) -> dict[str, dict[int, str]]:
    out = {}
    for run in sorted((suite_dir / "runs").iterdir()):
        with Catalog.open(run, create=False) as catalog:
            out[run.name] = {r.step: r.sha256 for r in catalog.checkpoints()}
    return out


def test_tiny_suite_writes_everything(tiny_suite: SuiteRun) -> None:
    d = tiny_suite.dir
    assert tiny_suite.stdout.strip() == str(d / "report.html")
    for name in (
        "suite.yaml",
        "suite.log",
        "report.html",
        "tables/runs.csv",
        "tables/loss_curves.csv",
        "corpus/truth.json",
        "deduped.jsonl",
        "tokenizer.json",
        "data/standard/manifest.json",
        "data/deduped/manifest.json",
        "ledger/pythia-nano-standard.h5",
        "ledger/pythia-nano-deduped.csv",
    ):
        assert (d / name).is_file(), name
    assert sorted(state_digests(d)) == sorted(STAGES)
    # one line per stage on the console, with the overall bar and the time left
    lines = [line for line in tiny_suite.stderr.splitlines() if line.startswith("[")]
    assert len(lines) == len(STAGES)
    assert (
        lines[0].startswith(f"[ 1/{len(STAGES)}] |") and "corpus synth (tiny): done in" in lines[0]
    )
    assert "left)" in lines[0] and lines[-1].endswith("(done)") and "| 100%" in lines[-1]
    log = (d / "suite.log").read_text()
    assert "INFO pythia_suite.training.trainer: step 24/24" in log  # the full log
    # the held-out rows: prepared past steps * B, never trained
    config = load_config(d / "suite.yaml")
    for variant in ("standard", "deduped"):
        manifest = (d / "data" / variant / "manifest.json").read_text()
        assert f'"num_samples": {config.data.num_samples}' in manifest
    runs = pd.read_csv(d / "tables" / "runs.csv")
    assert list(runs["run"]) == ["pythia-nano-standard", "pythia-nano-deduped"]
    assert list(runs["batches verified"]) == [24, 24]
    hashes = checkpoint_hashes(d)
    assert list(runs["checkpoints verified"]) == [len(hashes[r]) for r in runs["run"]]
    assert list(runs["last sha256"]) == [hashes[r][24][:16] for r in runs["run"]]
    losses = pd.read_csv(d / "tables" / "loss_curves.csv")
    assert len(losses) == 2 * 24 and set(losses["step"]) == set(range(1, 25))
    # the deduplicated data differ from the standard data, so do the runs
    assert hashes["pythia-nano-standard"][24] != hashes["pythia-nano-deduped"][24]
    assert hashes["pythia-nano-standard"][0] == hashes["pythia-nano-deduped"][0]  # same seed


def test_second_run_does_no_work_and_changes_nothing(tiny_suite: SuiteRun) -> None:
    before = state_digests(tiny_suite.dir), checkpoint_hashes(tiny_suite.dir)
    page = (tiny_suite.dir / "report.html").read_bytes()
    result = run_cli("run", "--preset", "tiny", "--root", tiny_suite.root)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert len(lines) == len(STAGES)
    # everything skipped, and every skipped run re-verified (a check, not work)
    checked = [line for line in lines if ": checked in " in line]
    assert [line.split("verify ")[1].split(" (")[0] for line in checked] == [
        "pythia-nano-standard",
        "pythia-nano-deduped",
    ]
    assert all("unchanged, skipped" in line for line in lines if line not in checked)
    assert (state_digests(tiny_suite.dir), checkpoint_hashes(tiny_suite.dir)) == before
    assert (tiny_suite.dir / "report.html").read_bytes() == page


def test_changed_config_reruns_exactly_what_depends_on_it(
    tiny_suite: SuiteRun, tmp_path: Path
) -> None:
    shutil.copytree(tiny_suite.dir, tmp_path / "tiny")
    before = state_digests(tmp_path / "tiny")
    config = load_config(
        write_yaml(tmp_path / "s.yaml", "train:\n  checkpoints: log+every:12\n"), preset="tiny"
    )
    with pytest.raises(ConfigError, match="pythia-nano-standard, pythia-nano-deduped"):
        run_suite(config, root=tmp_path, source="s.yaml")  # completed runs: not without asking
    assert state_digests(tmp_path / "tiny") == before
    result = run_suite(config, root=tmp_path, source="s.yaml", replace=True)
    assert result.ran() == [
        "train-pythia-nano-standard",
        "train-pythia-nano-deduped",
        "report",
    ]
    assert result.checked() == ["verify-pythia-nano-standard", "verify-pythia-nano-deduped"]
    after = state_digests(tmp_path / "tiny")
    steps = after["train-pythia-nano-standard"]["checkpoints"]
    assert sorted(map(int, steps)) == [0, 1, 2, 4, 8, 12, 24]
    for step in ("0", "8", "24"):  # the same training: the shared steps have the same weights
        assert steps[step] == before["train-pythia-nano-standard"]["checkpoints"][step]
    # one variant fewer: nothing is trained again, only the report is redone
    config = load_config(
        write_yaml(
            tmp_path / "t.yaml", "train:\n  checkpoints: log+every:12\n  variants: [deduped]\n"
        ),
        preset="tiny",
    )
    result = run_suite(config, root=tmp_path, source="t.yaml")
    assert result.ran() == ["report"]


def _kill_when(proc: subprocess.Popen[str], path: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the suite ended before {path} appeared"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _start(root: Path) -> subprocess.Popen[str]:
    cli = str(Path(sys.executable).parent / "pythia-suite")
    return subprocess.Popen(
        [cli, "run", "--preset", "tiny", "--root", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def test_killed_in_the_middle_and_rerun_gives_the_same_results(
    tiny_suite: SuiteRun, tmp_path: Path
) -> None:
    """Killed while preparing data, then killed while training; the third run finishes with
    what the uninterrupted session suite has: the same checkpoints, digests and tables."""
    a, b = tmp_path / "tiny", tiny_suite.dir
    _kill_when(_start(tmp_path), a / ".state" / "prepare-standard.started")
    assert not (a / "data" / "standard").exists()  # nothing half-made that looks whole
    run_dir = a / "runs" / "pythia-nano-deduped"
    _kill_when(_start(tmp_path), run_dir / "checkpoints" / "step8")
    assert not (run_dir / "checkpoints" / "step24").exists()  # killed in the middle
    assert not (a / ".state" / "train-pythia-nano-deduped.json").exists()
    result = run_cli("run", "--preset", "tiny", "--root", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "train pythia-nano-deduped: resumed, done" in result.stderr
    assert "train pythia-nano-standard: unchanged, skipped" in result.stderr
    assert checkpoint_hashes(a) == checkpoint_hashes(b)
    assert len(checkpoint_hashes(a)["pythia-nano-deduped"]) == 7
    digests_a, digests_b = state_digests(a), state_digests(b)
    assert digests_a.pop("report") != digests_b.pop("report")  # the page names its directory
    assert digests_a == digests_b
    for table in ("runs.csv", "loss_curves.csv"):
        assert (a / "tables" / table).read_bytes() == (b / "tables" / table).read_bytes()
    assert not list(a.rglob(".*.tmp"))  # no leftovers of the killed writes


def test_a_failed_reverify_marks_the_old_report_not_current(
    tiny_suite: SuiteRun, tmp_path: Path
) -> None:
    shutil.copytree(tiny_suite.dir, tmp_path / "tiny")
    suite = tmp_path / "tiny"
    page = (suite / "report.html").read_text()
    weights = suite / "runs" / "pythia-nano-deduped" / "checkpoints" / "step8" / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[:-3] + bytes([good[-3] ^ 0x10]) + good[-2:])  # one flipped bit
    config = load_config(None, preset="tiny")
    with pytest.raises(ValueError, match="step8") as info:
        run_suite(config, root=tmp_path, source="the tiny preset")
    marked = (suite / "report.html").read_text()
    assert '<div id="not-current"' in marked and "<b>Not current.</b>" in marked
    assert "failed: verify pythia-nano-deduped (replay, checkpoints): " in marked  # then why
    assert str(info.value).split("\n")[0].split(":")[-1].strip() in marked
    assert marked.replace(marked[marked.index('<div id="not-current"') :].split("\n")[0] + "\n",
                          "") == page  # fmt: skip
    assert not (suite / ".state" / "report.json").exists()  # the next complete run redraws it
    with pytest.raises(ValueError, match="step8"):  # failing again: still one banner
        run_suite(config, root=tmp_path, source="the tiny preset")
    assert (suite / "report.html").read_text() == marked
    weights.write_bytes(good)  # repaired: the page is drawn again, as it was
    result = run_suite(config, root=tmp_path, source="the tiny preset")
    assert result.ran() == ["report"]
    redrawn = (suite / "report.html").read_text()  # the same page, of the copy's folder
    assert "not-current" not in redrawn and redrawn == page.replace(str(tiny_suite.dir), str(suite))
