"""`checkpoints fetch` against a fake hub on loopback serving tiny GPT-NeoX checkpoints.

Branches step0..step5 of `tiny/neox`: step2 byte-identical to step1, step4's weights corrupted
in transit (the served bytes differ from the advertised sha256). `EleutherAI/pythia-14m` carries
the hub table's reported revisions (step1, step2).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import GPTNeoXForCausalLM

from checkpoints_index.catalog import Catalog
from checkpoints_index.fetch import FETCH_FILE, fetch, plan_fetch
from pythia_suite.cli import main
from suite_core import CheckpointError
from tests.checkpoints_index.conftest import tiny_config
from tests.fake_hub import FakeHub, Revision, Server
from tests.shared import online_hub

REPO = "tiny/neox"
WEIGHTS = "model.safetensors"


def save_tiny(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    GPTNeoXForCausalLM(tiny_config()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Six distinct tiny checkpoints, one folder each."""
    root = tmp_path_factory.mktemp("tiny_steps")
    return {step: save_tiny(root / f"step{step}", seed=step) for step in range(6)}


def make_hub(checkpoints: dict[int, Path]) -> FakeHub:
    hub = FakeHub()
    for step, folder in checkpoints.items():
        source = checkpoints[1] if step == 2 else folder  # step2 == step1, byte for byte
        rev = hub.add_folder("models", REPO, f"step{step}", source)
        if step == 4:
            good = rev.files[WEIGHTS]
            rev.corrupt[WEIGHTS] = good[:-64] + bytes(b ^ 0xFF for b in good[-64:])
        if step <= 3:
            hub.repos.setdefault(("models", "EleutherAI/pythia-14m"), {})[f"step{step}"] = Revision(
                files=dict(rev.files)
            )
    hub.repos[("models", REPO)]["main"] = hub.repos[("models", REPO)]["step5"]
    return hub


@pytest.fixture
def served(checkpoints: dict[int, Path]) -> Iterator[tuple[FakeHub, str]]:
    hub = make_hub(checkpoints)
    with Server(hub) as url:
        yield hub, url


@pytest.fixture(autouse=True)
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private Hugging Face cache (in-process: the constant; subprocesses: HF_HOME)."""
    from huggingface_hub import constants

    cache = tmp_path / "hf" / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    online_hub(monkeypatch)
    return cache


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_plan_flags_duplicates_and_sizes(served: tuple[FakeHub, str]) -> None:
    hub, url = served
    plan = plan_fetch(REPO, "log+every:2", endpoint=url)  # last branch 5: 0, 1, 2, 4, 5
    assert [r.step for r in plan.revisions] == [0, 1, 2, 4, 5]
    assert {r.step: r.duplicate_of for r in plan.revisions} == {
        0: None,
        1: None,
        2: 1,
        4: None,
        5: None,
    }
    repo = hub.repos[("models", REPO)]
    for rev in plan.revisions:
        served_files = repo[f"step{rev.step}"].files
        assert rev.size == sum(len(b) for b in served_files.values())
        assert {f.path: f.sha256 for f in rev.files}[WEIGHTS] == sha(served_files[WEIGHTS])
        assert rev.commit == repo[f"step{rev.step}"].commit
    dup = plan.revisions[2]
    assert dup.download_size == dup.size - len(repo["step2"].files[WEIGHTS])
    assert plan.size == sum(r.download_size for r in plan.revisions)
    text = "\n".join(plan.lines())
    assert "step2" in text and "duplicate of step1" in text
    assert not hub.gets  # metadata only


def test_fetch_verifies_dedups_and_refuses_corrupt(
    served: tuple[FakeHub, str], tmp_path: Path, hf_cache: Path
) -> None:
    hub, url = served
    out = tmp_path / "out"
    plan = plan_fetch(REPO, "steps:0,1,2,3,4,5", endpoint=url)
    result = fetch(plan, out)
    assert result.placed == (0, 1, 2, 3, 5)
    assert result.duplicates == {2: 1}
    repo = hub.repos[("models", REPO)]
    good = repo["step4"].files[WEIGHTS]
    assert [(c.step, c.path, c.expected, c.actual) for c in result.corrupt] == [
        (4, WEIGHTS, sha(good), sha(repo["step4"].corrupt[WEIGHTS]))
    ]
    assert hub.gets[(REPO, "step2", WEIGHTS)] == 0  # the duplicate's weights: not downloaded
    assert hub.gets[(REPO, "step1", WEIGHTS)] == 1
    assert not (out / "step4").exists()
    assert sorted(p.name for p in out.iterdir()) == [
        FETCH_FILE,
        "step0",
        "step1",
        "step2",
        "step3",
        "step5",
    ]
    for step in result.placed:
        for name, data in repo[f"step{step}"].files.items():
            assert (out / f"step{step}" / name).read_bytes() == data
    blobs = [p.name for p in hf_cache.rglob("blobs/*")]
    assert sha(good) not in blobs  # the corrupt copy left the cache
    record = json.loads((out / FETCH_FILE).read_text())
    assert (
        record["repo_id"] == REPO and record["revisions"]["step3"]["commit"] == repo["step3"].commit
    )

    repo["step4"].corrupt.clear()  # the hub serves the right bytes again: a rerun completes
    again = fetch(plan, out)
    assert again.placed == (0, 1, 2, 3, 4, 5) and not again.corrupt
    assert (out / "step4" / WEIGHTS).read_bytes() == good
    assert hub.gets[(REPO, "step0", WEIGHTS)] == 1 and hub.gets[(REPO, "step4", WEIGHTS)] == 2


def test_cli_fetch_catalogues_and_fails_on_corrupt(
    served: tuple[FakeHub, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = served
    out = tmp_path / "out"
    code = main(
        [
            "checkpoints",
            "fetch",
            REPO,
            "--steps",
            "steps:0,1,2,4",
            "--out",
            str(out),
            "--endpoint",
            url,
        ]
    )
    captured = capsys.readouterr()
    assert code == 2
    errors = [line for line in captured.err.splitlines() if line.startswith("pythia-suite: error")]
    assert len(errors) == 1 and f"{REPO}@step4/{WEIGHTS}" in errors[0] and "not placed" in errors[0]
    with Catalog.open(out, read_only=True) as catalog:
        assert [r.step for r in catalog.checkpoints()] == [0, 1, 2]
    assert "step1: identical" in captured.out and "step2: identical" in captured.out
    model = GPTNeoXForCausalLM.from_pretrained(out / "step1")
    assert model.config.hidden_size == tiny_config().hidden_size


def test_reported_revisions_warn_or_skip(
    served: tuple[FakeHub, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub, url = served
    out = tmp_path / "pythia"
    base = ["checkpoints", "fetch", "pythia-14m", "--steps", "steps:0,1,2,3", "--out", str(out)]
    assert main([*base, "--dry-run", "--endpoint", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "EleutherAI/pythia-14m: 4 revisions"
    flagged = [line.split()[0] for line in lines if "reported identical" in line]
    assert flagged == ["step1", "step2"]
    assert "duplicate of step1" in lines[3]  # step2 serves step1's bytes here too
    assert not out.exists() and not hub.gets
    assert main([*base, "--skip-reported", "--endpoint", url]) == 0
    assert sorted(p.name for p in out.glob("step*")) == ["step0", "step3"]


def test_resumes_after_kill(served: tuple[FakeHub, str], tmp_path: Path, hf_cache: Path) -> None:
    hub, url = served
    out = tmp_path / "out"
    hub.stall.add(("step3", WEIGHTS))
    argv = [
        sys.executable,
        "-m",
        "pythia_suite",
        "checkpoints",
        "fetch",
        REPO,
        "--steps",
        "steps:0,1,3,5",
    ]
    argv += ["--out", str(out), "--endpoint", url]
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy()
    )
    try:
        assert hub.stalled.wait(timeout=120), "the fetch never reached step3's weights"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        hub.release.set()
        if proc.poll() is None:
            proc.kill()
    assert sorted(p.name for p in out.glob("step*")) == [
        "step0",
        "step1",
    ]  # step3: nothing that looks whole
    assert len(list(hf_cache.rglob("*.incomplete"))) == 1  # what huggingface_hub 2.4 leaves
    hub.stall.clear()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    repo = hub.repos[("models", REPO)]
    for step in (0, 1, 3, 5):
        assert (out / f"step{step}" / WEIGHTS).read_bytes() == repo[f"step{step}"].files[WEIGHTS]
    assert hub.gets[(REPO, "step0", WEIGHTS)] == 1 and hub.gets[(REPO, "step1", WEIGHTS)] == 1
    assert hub.gets[(REPO, "step3", WEIGHTS)] == 2
    assert not list(out.glob(".fetch-*"))
    assert not list(hf_cache.rglob("*.incomplete"))  # swept under huggingface_hub's lock


def run_bad(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pythia-suite: error: "), err
    return err[0]


def test_bad_inputs(
    served: tuple[FakeHub, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub, url = served
    out = tmp_path / "out"
    fetch_args = ["checkpoints", "fetch", REPO, "--out", str(out)]
    line = run_bad(
        [*fetch_args, "--steps", "steps:0,1", "--endpoint", "http://127.0.0.1:9"], capsys
    )
    assert "http://127.0.0.1:9/tiny/neox: unreachable" in line
    line = run_bad([*fetch_args, "--steps", "steps:0,9", "--endpoint", url], capsys)
    assert f"{url}/{REPO}: no revision step9" in line
    line = run_bad(
        [
            "checkpoints",
            "fetch",
            "no/such",
            "--steps",
            "pythia",
            "--out",
            str(out),
            "--endpoint",
            url,
        ],
        capsys,
    )
    assert "no/such: no such model repository" in line
    assert not out.exists() and not hub.gets  # nothing downloaded, nothing created

    other = tmp_path / "other"
    assert (
        main(
            [
                "checkpoints",
                "fetch",
                "pythia-14m",
                "--steps",
                "steps:0",
                "--out",
                str(other),
                "--endpoint",
                url,
            ]
        )
        == 0
    )
    before = sorted(p.relative_to(other) for p in other.rglob("*"))
    line = run_bad(
        [
            "checkpoints",
            "fetch",
            REPO,
            "--steps",
            "steps:0",
            "--out",
            str(other),
            "--endpoint",
            url,
        ],
        capsys,
    )
    assert f"{other / FETCH_FILE}: the folder holds EleutherAI/pythia-14m, not {REPO}" in line
    assert sorted(p.relative_to(other) for p in other.rglob("*")) == before
    held = other / "step0" / WEIGHTS  # a placed file that no longer matches the hub's sha256
    held.unlink()
    held.write_bytes(hub.repos[("models", REPO)]["step1"].files[WEIGHTS])
    line = run_bad(
        [
            "checkpoints",
            "fetch",
            "pythia-14m",
            "--steps",
            "steps:0",
            "--out",
            str(other),
            "--endpoint",
            url,
        ],
        capsys,
    )
    assert f"{held}: sha256" in line and "differs from EleutherAI/pythia-14m@step0's" in line
    foreign = tmp_path / "foreign"
    shutil.copytree(other / "step0", foreign / "step0")
    line = run_bad(
        [*fetch_args[:3], "--out", str(foreign), "--steps", "steps:0", "--endpoint", url], capsys
    )
    assert f"{foreign}: holds checkpoints (step0)" in line


def test_offline_plans_and_fetches_from_the_cache(
    checkpoints: dict[int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    hub = make_hub(checkpoints)
    with Server(hub) as url:
        online = fetch(plan_fetch(REPO, "steps:0,1,3", endpoint=url), tmp_path / "online")
    assert online.placed == (0, 1, 3)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # and the server is gone
    plan = plan_fetch(REPO, "steps:0,1,3", endpoint=url)
    assert [r.step for r in plan.revisions] == [0, 1, 3] and not plan.missing
    assert plan.revisions[2].commit == hub.repos[("models", REPO)]["step3"].commit
    result = fetch(plan, tmp_path / "offline")
    assert result.placed == (0, 1, 3) and not result.corrupt
    for step in (0, 1, 3):
        for name, data in hub.repos[("models", REPO)][f"step{step}"].files.items():
            assert (tmp_path / "offline" / f"step{step}" / name).read_bytes() == data
    assert plan_fetch(REPO, "steps:0,5", endpoint=url).missing == (5,)  # never cached: named
    with pytest.raises(CheckpointError, match="holds nothing of other/repo"):
        plan_fetch("other/repo", "steps:0", endpoint=url)


def test_pickle_only_revision_is_converted_to_safetensors(
    checkpoints: dict[int, Path], tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_bytes((checkpoints[3] / "config.json").read_bytes())
    state = load_file(checkpoints[3] / WEIGHTS)
    torch.save(state, folder / "pytorch_model.bin")
    hub = FakeHub()
    hub.add_folder("models", "tiny/pickled", "step3", folder)
    with Server(hub) as url:
        result = fetch(plan_fetch("tiny/pickled", "steps:3", endpoint=url), tmp_path / "out")
    assert result.placed == (3,)
    placed = tmp_path / "out" / "step3"
    assert sorted(p.name for p in placed.iterdir()) == ["config.json", WEIGHTS]
    converted = load_file(placed / WEIGHTS)
    assert converted.keys() == state.keys()
    assert all(torch.equal(converted[k], state[k]) for k in state)


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("unpickled!",))


def test_pickle_with_code_is_refused_unrun(
    checkpoints: dict[int, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pickle

    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / "config.json").write_bytes((checkpoints[0] / "config.json").read_bytes())
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"w": _Payload()}))
    hub = FakeHub()
    hub.add_folder("models", "tiny/hostile", "step0", folder)
    with Server(hub) as url, pytest.raises(CheckpointError, match="not a weights-only pickle"):
        fetch(plan_fetch("tiny/hostile", "steps:0", endpoint=url), tmp_path / "out")
    assert "unpickled!" not in capsys.readouterr().out
    assert not (tmp_path / "out" / "step0").exists() and not list(
        (tmp_path / "out").glob(".fetch-*")
    )
