"""`pythia-suite checkpoints list|verify|schedule|hub` through `pythia_suite.cli.main`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from checkpoints_index.store import checkpoint_dir
from pythia_suite.cli import main


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["checkpoints", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_table_and_json(tmp_path: Path, save, capsys) -> None:
    records = [
        save(tmp_path, s, optimizer_state=None if s == 0 else {"state": {}}) for s in (0, 4, 16)
    ]
    code, out, err = _run(capsys, "list", str(tmp_path))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["step", "tokens", "sha256", "optimizer", "path"]
    assert [line.split() for line in lines[1:]] == [
        [str(r.step), str(r.tokens_seen), r.sha256[:12], "no" if r.step == 0 else "yes", r.path]
        for r in records
    ]
    code, out, _ = _run(capsys, "list", str(tmp_path), "--format", "json")
    assert code == 0 and json.loads(out) == [r.as_dict() for r in records]


def test_list_is_read_only_and_sync_recatalogues(tmp_path: Path, save, capsys, caplog) -> None:
    save(tmp_path, 0)
    save(tmp_path, 1)
    with sqlite3.connect(tmp_path / "catalog.sqlite") as db:
        db.execute("DELETE FROM checkpoints")
    before = (tmp_path / "catalog.sqlite").read_bytes()
    code, out, _ = _run(capsys, "list", str(tmp_path), "--format", "json")
    assert code == 0 and json.loads(out) == []
    assert "step0: complete checkpoint not in the catalog" in caplog.text
    code, out, err = _run(capsys, "verify", str(tmp_path))
    assert code == 2 and "step0: complete checkpoint not in the catalog" in err
    assert (tmp_path / "catalog.sqlite").read_bytes() == before  # nothing written
    code, out, _ = _run(capsys, "sync", str(tmp_path))
    assert (code, out) == (0, f"{tmp_path}: 2 checkpoints catalogued (2 added, 0 forgotten)\n")
    code, out, _ = _run(capsys, "list", str(tmp_path), "--format", "json")
    assert code == 0 and [r["step"] for r in json.loads(out)] == [0, 1]


def test_verify_ok_and_tampered(tmp_path: Path, save, capsys) -> None:
    for step in (0, 2):
        save(tmp_path, step)
    code, out, err = _run(capsys, "verify", str(tmp_path))
    assert (code, out, err) == (0, "OK: 2 checkpoints verified\n", "")
    path = checkpoint_dir(tmp_path, 2) / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    code, out, err = _run(capsys, "verify", str(tmp_path))
    assert code == 2 and out == ""
    assert err.startswith("pythia-suite: error: ") and err.count("\n") == 1
    assert str(checkpoint_dir(tmp_path, 2)) in err and "model.safetensors" in err
    assert "Traceback" not in err


def test_schedule_text_and_json(capsys) -> None:
    assert _run(capsys, "schedule", "log+every:16", "--steps", "50") == (
        0,
        "0\n1\n2\n4\n8\n16\n32\n48\n50\n",
        "",
    )
    code, out, _ = _run(capsys, "schedule", "pythia", "--steps", "143000", "--format", "json")
    steps = json.loads(out)
    assert code == 0 and len(steps) == 154 and steps[-1] == 143000
    assert _run(capsys, "schedule", "steps:0,5,10", "--steps", "10")[1] == "0\n5\n10\n"


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["schedule", "log+every:zero", "--steps", "10"], "checkpoint rule 'log+every:zero'"),
        (["schedule", "pythia", "--steps", "-3"], "steps"),
        (["hub", "pythia-99m"], "pythia-99m"),
        (["hub", "pythia-70m", "--step", "3"], "step 3"),
    ],
)
def test_bad_input_is_one_error_line(capsys, argv: list[str], needle: str) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("pythia-suite: error: ") and needle in err and err.count("\n") == 1


def test_list_and_verify_need_a_run_dir(tmp_path: Path, capsys) -> None:
    for action in ("list", "verify"):
        code, out, err = _run(capsys, action, str(tmp_path / "nope"))
        assert code == 2 and "nope" in err and err.count("\n") == 1
        code, out, err = _run(capsys, action, str(tmp_path))
        assert code == 2 and "not a run directory" in err
    assert not (tmp_path / "catalog.sqlite").exists()


def test_hub_one_step_and_all(capsys, caplog) -> None:
    code, out, _ = _run(capsys, "hub", "pythia-70m-deduped", "--step", "143000")
    assert (code, out) == (0, "EleutherAI/pythia-70m-deduped  step143000\n")
    code, out, _ = _run(capsys, "hub", "pythia-13b", "--step", "50000")
    assert code == 0 and out.startswith("EleutherAI/pythia-12b  step50000  # reported:")
    assert "issues/206" in caplog.text and "renamed" in caplog.text
    code, out, _ = _run(capsys, "hub", "EleutherAI/pythia-410m", "--format", "json")
    rows = json.loads(out)
    assert len(rows) == 154 and rows[0]["revision"] == "step0"
    assert {r["repo_id"] for r in rows} == {"EleutherAI/pythia-410m"}


@pytest.mark.parametrize("action", ["list", "verify"])
@pytest.mark.parametrize("damage", ["folder", "sums"])
def test_a_catalogued_checkpoint_gone_is_a_failure(
    tmp_path: Path, save, capsys, action: str, damage: str
) -> None:
    import shutil

    for step in (0, 4):
        save(tmp_path, step)
    folder = checkpoint_dir(tmp_path, 4)
    if damage == "folder":
        shutil.rmtree(folder)
    else:
        (folder / "SHA256SUMS").unlink()
    before = (tmp_path / "catalog.sqlite").read_bytes()
    code, out, err = _run(capsys, action, str(tmp_path))
    assert code == 2 and out == "" and err.count("\n") == 1 and str(folder) in err
    assert (tmp_path / "catalog.sqlite").read_bytes() == before  # the row is still there
    code, out, _ = _run(capsys, "sync", str(tmp_path))
    assert (code, out) == (0, f"{tmp_path}: 1 checkpoints catalogued (0 added, 1 forgotten)\n")
    code, _, err = _run(capsys, action, str(tmp_path))
    if damage == "sums" and action == "verify":  # the folder is still there, still damaged
        assert code == 2 and f"{folder}: damaged checkpoint (SHA256SUMS is missing)" in err
    else:
        assert code == 0
