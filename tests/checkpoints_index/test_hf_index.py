"""`checkpoints index DIR` over a folder of Hugging Face checkpoints laid out as DIR/stepN/."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch
from transformers import GPTNeoXForCausalLM

from pythia_suite.cli import main
from suite_core.hashing import sha256_file
from tests.checkpoints_index.conftest import tiny_config


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two distinct saved models, as `save_pretrained` writes them."""
    root = tmp_path_factory.mktemp("hf")
    for seed in (0, 1):
        torch.manual_seed(seed)
        GPTNeoXForCausalLM(tiny_config()).save_pretrained(root / f"m{seed}")
    return root


@pytest.fixture
def pythia_dir(hf_models: Path, tmp_path: Path) -> Path:
    """`pythia-2.8b/step{0,1000,2000}`: step2000 is a byte copy of step1000 (the planted
    duplicate, as users found on the hub)."""
    root = tmp_path / "pythia-2.8b"
    shutil.copytree(hf_models / "m0", root / "step0")
    shutil.copytree(hf_models / "m1", root / "step1000")
    shutil.copytree(hf_models / "m1", root / "step2000")
    return root


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["checkpoints", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_index_flags_the_planted_duplicate_and_hub_reports(pythia_dir: Path, capsys) -> None:
    code, out, err = run(capsys, "index", str(pythia_dir), "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["model"] == "pythia-2.8b" and result["steps"] == [0, 1000, 2000]
    weights = sha256_file(pythia_dir / "step1000" / "model.safetensors")
    assert result["weights_sha256"]["1000"] == result["weights_sha256"]["2000"] == weights
    flags = {(f["step"], f["kind"]) for f in result["flags"]}
    assert {(1000, "identical"), (2000, "identical")} <= flags
    assert (0, "identical") not in flags
    # the hub table reports pythia-2.8b's step0 ... step53000 branches as serving wrong weights
    assert {(0, "reported-wrong-weights"), (1000, "reported-wrong-weights")} <= flags
    with sqlite3.connect(pythia_dir / "catalog.sqlite") as db:
        files = db.execute("SELECT step, name, sha256 FROM files ORDER BY step, name").fetchall()
        stored = db.execute("SELECT step, kind FROM flags").fetchall()
    assert {(s, k) for s, k in stored} == flags
    on_disk = [
        (s, p.name, sha256_file(p))
        for s in (0, 1000, 2000)
        for p in sorted((pythia_dir / f"step{s}").iterdir())
    ]
    assert files == on_disk  # every file of every step hashed into the catalog
    code, out, _ = run(capsys, "verify", str(pythia_dir))
    assert (code, out) == (0, "OK: 3 checkpoints verified\n")
    code, out, _ = run(capsys, "index", str(pythia_dir))
    assert code == 0 and "step2000: identical: weights byte-identical to step1000" in out


def test_analyses_take_an_indexed_dir_like_a_run(pythia_dir: Path, capsys) -> None:
    from analysis.sources import open_checkpoints

    assert run(capsys, "index", str(pythia_dir))[0] == 0
    ck = open_checkpoints(pythia_dir)
    assert ck.steps == [0, 1000, 2000] and ck.run_dir == pythia_dir
    from transformers.utils import logging as hf_logging

    capsys.readouterr()
    model = ck.load(1000)
    quiet = capsys.readouterr().err  # no progress bar per checkpoint (notebooks load dozens)
    expected = GPTNeoXForCausalLM.from_pretrained(pythia_dir / "step1000")
    loud = capsys.readouterr().err
    assert "Loading weights" in loud and "Loading weights" not in quiet
    assert hf_logging.is_progress_bar_enabled()  # restored after the load
    for (name, a), (_, b) in zip(model.state_dict().items(), expected.state_dict().items()):
        assert torch.equal(a, b), name
    weights = pythia_dir / "step0" / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-3] ^= 0x10
    weights.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"step0: model.safetensors: sha256 mismatch"):
        ck.load(0)  # nothing is loaded from a folder that differs from the catalog
    code, _, err = run(capsys, "verify", str(pythia_dir))
    assert code == 2 and "step0: model.safetensors: sha256 mismatch" in err
    (pythia_dir / "step1000" / "config.json").unlink()
    code, _, err = run(capsys, "verify", str(pythia_dir))
    assert code == 2 and "(and 1 more problems)" in err


@pytest.mark.parametrize(
    "damage, needle",
    [
        (
            lambda d: (d / "model.safetensors").write_bytes(
                (d / "model.safetensors").read_bytes()[:-100]
            ),
            "not a loadable safetensors file",
        ),
        (lambda d: (d / "model.safetensors").unlink(), "no model.safetensors"),
        (lambda d: (d / "config.json").write_text("{"), "config.json: not valid JSON"),
        (
            lambda d: (d / "config.json").write_text('{"model_type": "llama"}'),
            "field 'model_type': 'llama' is not gpt_neox",
        ),
    ],
)
def test_an_unloadable_step_is_refused_and_nothing_written(
    pythia_dir: Path, capsys, damage, needle: str
) -> None:
    damage(pythia_dir / "step1000")
    code, out, err = run(capsys, "index", str(pythia_dir))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert str(pythia_dir / "step1000") in err and needle in err
    assert sorted(p.name for p in pythia_dir.iterdir()) == ["step0", "step1000", "step2000"]


def test_index_refuses_a_run_and_an_empty_dir(tmp_path: Path, save, capsys) -> None:
    save(tmp_path / "run", 0)
    code, _, err = run(capsys, "index", str(tmp_path / "run"))
    assert code == 2 and "checkpoints sync" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "index", str(tmp_path / "empty"))
    assert code == 2 and "no stepN folders" in err


def test_model_file_mode_matches_the_other_files(tmp_path: Path, save) -> None:
    record = save(tmp_path, 3)
    folder = record.folder(tmp_path)
    modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}
    assert len(set(modes.values())) == 1, modes
