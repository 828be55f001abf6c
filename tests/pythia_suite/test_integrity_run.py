"""A run's integrity: batches checked before use, data named by fingerprint, resume never
loses history, `verify RUN`. One reference run on the tiny data; each test damages a copy."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sqlite3
from pathlib import Path

import pytest

from dataloader_replay.replay import TrainData
from pythia_suite.cli import main

STEPS = 16
RULE = "log+every:4"


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
    out = tmp_path_factory.mktemp("integrity") / "run"
    assert main(args(tiny_data, out)) == 0
    return out


def snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def same_training(a: Path, b: Path) -> None:
    """Checkpoints and metrics byte-identical (run.json may record another data path)."""
    sa, sb = snapshot(a), snapshot(b)
    names = sorted(k for k in sa if k.startswith("checkpoints/"))
    assert names == sorted(k for k in sb if k.startswith("checkpoints/"))
    for name in [*names, "metrics.jsonl"]:
        assert sa[name] == sb[name], name


def cut_back(run: Path, step: int) -> None:
    """The state a run killed during update `step + 1` leaves (checkpoints after it gone)."""
    for folder in (run / "checkpoints").iterdir():
        if int(folder.name[4:]) > step:
            shutil.rmtree(folder)
    with sqlite3.connect(run / "catalog.sqlite") as db:
        db.execute("DELETE FROM checkpoints WHERE step > ?", (step,))
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run / "metrics.jsonl").write_text("".join(lines[: step + 2]))  # lines past it are redone


def one_error(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err
    assert err.count("pythia-suite: error:") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def test_flipped_byte_in_a_future_batch_stops_training_before_it(
    reference: Path, tiny_data: Path, tmp_path: Path, capsys
) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    shutil.copytree(tiny_data, data)
    td = TrainData.open(data)
    offset = (13 * td.batch_size + 2) * (td.seq_length + 1) * td.dtype.itemsize + 7
    raw = bytearray((data / "train.bin").read_bytes())
    raw[offset] ^= 0x04
    (data / "train.bin").write_bytes(bytes(raw))
    assert main(args(data, run)) == 2
    one_error(capsys, f"{data / 'train.bin'}: step 13: batch_sha256", "batch_sha256.txt:14")
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 13  # update 14 never ran
    assert main(["verify", str(data)]) == 2
    one_error(capsys, "train.bin")
    raw[offset] ^= 0x04  # the data repaired: --resume continues and ends as if nothing happened
    (data / "train.bin").write_bytes(bytes(raw))
    assert main([*args(data, run), "--resume"]) == 0
    same_training(reference, run)


def test_resume_with_the_data_moved(reference: Path, tiny_data: Path, tmp_path: Path) -> None:
    run, moved = tmp_path / "run", tmp_path / "moved" / "data"
    shutil.copytree(reference, run)
    shutil.copytree(tiny_data, moved)
    cut_back(run, 8)
    assert main([*args(moved, run), "--resume"]) == 0
    same_training(reference, run)
    config = json.loads((run / "run.json").read_text())
    assert config["data"]["path"] == str(moved)  # replay follows the data to its new place
    assert config["data"]["fingerprint"] == TrainData.open(tiny_data).fingerprint
    assert main(["replay", str(run), "--verify"]) == 0
    assert main(["verify", str(run)]) == 0


def test_old_run_json_with_manifest_sha256_still_opens(
    reference: Path, tiny_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run.json written before the fingerprint was the only identity (it also holds
    data.manifest_sha256): resume, replay and verify accept it, with a one-line note."""
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    cut_back(run, 8)
    config = json.loads((run / "run.json").read_text())
    legacy = hashlib.sha256((tiny_data / "manifest.json").read_bytes()).hexdigest()
    config["data"] = {"path": config["data"]["path"], "manifest_sha256": legacy,
                      **{k: v for k, v in config["data"].items() if k != "path"}}  # fmt: skip
    (run / "run.json").write_text(json.dumps(config, indent=2) + "\n")
    with caplog.at_level(logging.INFO, logger="suite_core.records"):
        assert main([*args(tiny_data, run), "--resume"]) == 0
        assert main(["replay", str(run), "--verify"]) == 0
    same_training(reference, run)
    notes = {r.getMessage() for r in caplog.records if "manifest_sha256" in r.getMessage()}
    assert len(notes) == 1 and "older version" in next(iter(notes)), notes


def test_resume_with_other_data_is_refused(
    reference: Path, tiny_data: Path, tiny_corpus_root: Path, tmp_path: Path, capsys
) -> None:
    from dataloader_replay.prepare import prepare

    root = tiny_corpus_root
    other = tmp_path / "other"
    manifest = json.loads((tiny_data / "manifest.json").read_text())
    prepare(  # the same corpus and tokenizer, another seed
        root / "corpus" / "corpus.jsonl",
        root / "tokenizer.json",
        other,
        seq_length=manifest["seq_length"],
        batch_size=manifest["batch_size"],
        steps=manifest["steps"],
        seed=manifest["seed"] + 1,
    )
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    before = snapshot(run)
    assert main([*args(other, run), "--resume"]) == 2
    one_error(capsys, "run.json: field 'data.fingerprint'", "manifest field 'seed' differs")
    assert snapshot(run) == before


@pytest.mark.parametrize(
    "damage, needles",
    [
        (
            lambda run: shutil.rmtree(run / "checkpoints"),
            ["checkpoints/step0: catalogued checkpoint is missing (and 6 more)"],
        ),
        (
            lambda run: (shutil.rmtree(run / "checkpoints"), (run / "catalog.sqlite").unlink()),
            ["metrics.jsonl logs 16 updates but there is no complete checkpoint"],
        ),
        (
            lambda run: (run / "checkpoints" / "step12" / "SHA256SUMS").unlink(),
            ["checkpoints/step12: damaged checkpoint (SHA256SUMS is missing"],
        ),
        (
            lambda run: _sql(
                run,
                "UPDATE checkpoints SET sha256 = "
                "(CASE WHEN substr(sha256, 1, 1) = '0' THEN '1' ELSE '0' END) || substr(sha256, 2) "
                "WHERE step = 16",
            ),
            ["step16", "model.safetensors: sha256 differs from the catalog's"],
        ),
        (
            lambda run: _flip(run / "checkpoints" / "step16" / "optimizer.pt"),
            ["step16", "optimizer.pt: sha256 mismatch"],
        ),
        (
            lambda run: _drop_line(run / "metrics.jsonl", 5),
            ["metrics.jsonl: has 15 complete lines up to step 16"],
        ),
    ],
)
def test_resume_after_damage_refuses_and_keeps_history(
    reference: Path, tiny_data: Path, tmp_path: Path, capsys, damage, needles: list[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    damage(run)
    before = snapshot(run)
    assert main([*args(tiny_data, run), "--resume"]) == 2
    one_error(capsys, *needles)
    assert snapshot(run) == before  # nothing rewritten, nothing deleted
    assert main(["verify", str(run)]) == 2
    capsys.readouterr()


def _sql(run: Path, statement: str) -> None:
    with sqlite3.connect(run / "catalog.sqlite") as db:
        db.execute(statement)


def _flip(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def _drop_line(path: Path, number: int) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: number - 1] + lines[number:]))


def test_verify_run(reference: Path, tmp_path: Path, capsys) -> None:
    assert main(["verify", str(reference)]) == 0
    out = capsys.readouterr().out
    assert "steps 1..16, 16 batches replayed" in out and "7 checkpoints re-hashed" in out
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run / "metrics.jsonl").write_text("".join(lines[:-1]))  # the last line deleted
    assert main(["verify", str(run)]) == 2
    one_error(capsys, "metrics.jsonl: logs steps 1..15 but checkpoint step16 exists")
    (run / "metrics.jsonl").write_text("".join(lines[:3] + ["{}\n"] + lines[3:]))
    assert main(["replay", str(run), "--verify"]) == 2
    one_error(capsys, "metrics.jsonl:4: field 'step' must be an integer")
