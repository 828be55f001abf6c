"""The typed records: Manifest and RunJson read and validated in one place, the one data identity."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from suite_core import DataError
from suite_core.hashing import sha256_file
from suite_core.layout import RunLayout
from suite_core.records import (
    Manifest,
    RunBranch,
    RunJson,
    RunModel,
    TokenSwap,
    compute_fingerprint,
    first_difference,
    view_fingerprint,
)

MANIFEST = {
    "format": "pythia-suite/data/1",
    "seq_length": 8, "batch_size": 2, "steps": 3, "seed": 5, "num_samples": 7, "num_epochs": 1,
    "eod_id": 0, "vocab_size": 50, "dtype": "uint16", "sources": ["web"],
    "input": {"path": "/somewhere/corpus.jsonl", "sha256": "ab" * 32},
    "tokenizer": {"path": "/somewhere/tok.json", "sha256": "cd" * 32},
    "files": {"train.bin": "ef" * 32},
}  # fmt: skip


def write_manifest(directory: Path, obj: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    return directory


def test_manifest_fingerprint_is_content_not_place(tmp_path: Path) -> None:
    a = Manifest.read(write_manifest(tmp_path / "a", MANIFEST))
    moved = {**MANIFEST, "input": {**MANIFEST["input"], "path": "/elsewhere/c.jsonl"}}
    b = Manifest.read(write_manifest(tmp_path / "b", moved))
    c = Manifest.read(write_manifest(tmp_path / "c", {**MANIFEST, "seed": 6}))
    content = {k: v for k, v in MANIFEST.items() if k not in ("input", "tokenizer")}
    content |= {"input": {"sha256": "ab" * 32}, "tokenizer": {"sha256": "cd" * 32}}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    assert a.fingerprint == hashlib.sha256(text.encode()).hexdigest()  # the documented rule
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert (a.batch_size, a.sources, a.files["train.bin"]) == (2, ("web",), "ef" * 32)


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ({"batch_size": "2"}, "field 'batch_size' missing or not an integer"),
        ({"seed": True}, "field 'seed' missing or not an integer"),
        ({"sources": "web"}, "field 'sources' missing or not a list"),
        ({"files": {"train.bin": 3}}, "field 'files' must map file names"),
        ({"dtype": 16}, "field 'dtype' must be a string"),
    ],
)
def test_manifest_errors_name_file_and_field(tmp_path: Path, edit: dict, needle: str) -> None:
    data = write_manifest(tmp_path / "d", {**MANIFEST, **edit})
    with pytest.raises(DataError, match=needle) as err:
        Manifest.read(data)
    assert str(err.value).startswith(f"{data / 'manifest.json'}: ")


def test_manifest_missing_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest.json: no such file"):
        Manifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text('{\n  "seed": 1,\n  oops\n}')
    with pytest.raises(DataError, match=r"manifest.json:3: malformed JSON"):
        Manifest.read(tmp_path)


def test_recorded_fingerprint_is_checked(tmp_path: Path) -> None:
    good = {**MANIFEST, "fingerprint": compute_fingerprint(MANIFEST)}
    Manifest.read(write_manifest(tmp_path / "a", good)).check_fingerprint()
    edited = Manifest.read(write_manifest(tmp_path / "b", {**good, "steps": 2}))
    with pytest.raises(DataError, match="field 'fingerprint': does not match"):
        edited.check_fingerprint()


def write_run(run: Path, data: dict) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    RunLayout(run).run_json.write_text(json.dumps({"steps": 3, "data": data}))
    return run


def test_run_json_data_identity(tmp_path: Path) -> None:
    manifest = Manifest.read(write_manifest(tmp_path / "d", MANIFEST))
    plain = RunJson.read(
        write_run(tmp_path / "r1", {"path": "d", "fingerprint": manifest.fingerprint})
    )
    spec = {"name": "token_map", "map": [[1, 2]], "start_step": 0}
    swapped = RunJson.read(
        write_run(tmp_path / "r2", {"path": "d", "fingerprint": manifest.fingerprint,
                                    "transform": spec})
    )  # fmt: skip
    assert plain.data_fingerprint == manifest.fingerprint  # joins an HDF5 data_fingerprint
    want = hashlib.sha256(
        (
            manifest.fingerprint + "\n" + json.dumps(spec, sort_keys=True, separators=(",", ":"))
        ).encode()
    ).hexdigest()
    assert swapped.data_fingerprint == view_fingerprint(manifest.fingerprint, spec) == want
    plain.check_data(manifest)  # same data: no error
    assert plain.steps == 3 and plain.data.path == Path("d")


def test_old_run_json_with_manifest_sha256_opens_with_a_note(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_manifest(tmp_path / "d", MANIFEST)
    old = {"path": str(data), "manifest_sha256": sha256_file(data / "manifest.json")}
    with caplog.at_level(logging.INFO, logger="suite_core.records"):
        run = RunJson.read(write_run(tmp_path / "old", old))
        RunJson.read(tmp_path / "old")  # noted once per file
    notes = [r.getMessage() for r in caplog.records if "manifest_sha256" in r.getMessage()]
    assert len(notes) == 1 and "older version" in notes[0] and "\n" not in notes[0]
    assert run.data.fingerprint is None and run.data_fingerprint is None
    run.check_data(Manifest.read(data))  # the same manifest bytes: accepted
    write_manifest(data, {**MANIFEST, "seed": 9})
    with pytest.raises(DataError, match="field 'data.manifest_sha256'"):
        run.check_data(Manifest.read(data))


def test_other_data_names_the_manifest_field(tmp_path: Path) -> None:
    first = Manifest.read(write_manifest(tmp_path / "a", MANIFEST))
    other = {**MANIFEST, "seed": 6, "files": {"train.bin": "00" * 32}}
    second = Manifest.read(write_manifest(tmp_path / "b", other))
    run = RunJson.read(
        write_run(tmp_path / "r", {"path": str(tmp_path / "a"), "fingerprint": first.fingerprint,
                                   "manifest": first.content()})
    )  # fmt: skip
    with pytest.raises(DataError, match=r"field 'data.fingerprint'.*manifest field 'seed'"):
        run.check_data(second)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (None, "field 'data.path' missing or not a string"),
        ({"path": 3}, "field 'data.path' missing or not a string"),
        ({"path": "d", "fingerprint": 7}, "field 'data.fingerprint' must be a str"),
        ({"path": "d", "transform": "swap"}, "field 'data.transform' must be a dict"),
    ],
)
def test_run_json_errors_name_the_field(tmp_path: Path, data: object, needle: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    RunLayout(run).run_json.write_text(json.dumps({"data": data}))
    with pytest.raises(DataError, match=needle):
        RunJson.read(run)


BRANCH_RUN = {
    "steps": 512,
    "data": {"path": "d"},
    "model": {"name": "pythia-micro", "num_layers": 5, "hidden_size": 128, "lr": 0.002},
    "branch": {"parent": "/suite/runs/pythia-micro-standard", "step": 384, "checkpoint_sha256": "ab"},
    "intervention": {
        "name": "pronoun-swap",
        "map": [{"from": " he", "to": " she", "from_id": 421, "to_id": 610},
                {"from": " his", "to": " her", "from_id": 1038, "to_id": 718}],
        "not_single_tokens": [{"from": "He", "to": "She", "reason": "not a single token"}],
    },
}  # fmt: skip


def test_run_json_model_branch_and_intervention_are_typed(tmp_path: Path) -> None:
    run = tmp_path / "branch"
    run.mkdir()
    RunLayout(run).run_json.write_text(json.dumps(BRANCH_RUN))
    config = RunJson.read(run)
    assert config.model == RunModel(name="pythia-micro", num_layers=5, hidden_size=128)
    assert config.model.size == 5 * 128**2
    assert config.branch == RunBranch(parent=Path("/suite/runs/pythia-micro-standard"), step=384)
    assert config.intervention is not None and config.intervention.name == "pronoun-swap"
    assert config.intervention.swaps == (
        TokenSwap(source=" he", target=" she", from_id=421, to_id=610),
        TokenSwap(source=" his", target=" her", from_id=1038, to_id=718),
    )
    plain = RunJson.read(write_run(tmp_path / "plain", {"path": "d"}))  # no such sections
    assert plain.model is None and plain.branch is None and plain.intervention is None


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ({"model": "pythia-micro"}, "field 'model' must be an object"),
        ({"model": {"num_layers": 5}}, "field 'model.name' missing"),
        ({"model": {"name": "m", "hidden_size": "128"}}, "field 'hidden_size' missing or not"),
        ({"branch": {"parent": "p", "step": -1}}, "field 'branch.step' missing or not a step"),
        ({"branch": {"step": 3}}, "field 'branch.parent' missing"),
        ({"intervention": {"name": "swap", "map": [{"from": " he"}]}},
         r"field 'intervention.map\[0\]'.to: missing or not a string"),
        ({"intervention": {"name": "swap", "map": [{"from": "a", "to": "b", "from_id": 1,
                                                    "to_id": True}]}},
         r"field 'intervention.map\[0\]'.to_id: missing or not an integer"),
    ],
)  # fmt: skip
def test_run_json_sections_errors_name_the_field(tmp_path: Path, edit: dict, needle: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    RunLayout(run).run_json.write_text(json.dumps({**BRANCH_RUN, **edit}))
    with pytest.raises(DataError, match=needle) as info:
        RunJson.read(run)
    assert str(info.value).startswith(f"{run / 'run.json'}: field '")


def test_first_difference() -> None:
    assert first_difference({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 2}}) is None
    assert first_difference({"a": 1, "b": {"c": 2}}, {"b": {"c": 3}, "a": 2}) == "b.c"
    assert first_difference({"a": 1}, {"a": 1.0}) == "a"  # types count
    assert first_difference({"a": 1, "z": 0}, {"a": 1}) == "z"
    assert first_difference([1], [2]) == "<root>"
