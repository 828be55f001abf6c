"""Atomic save, verified load, byte identity, tampering and crashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import GPTNeoXForCausalLM

from checkpoints_index import store
from checkpoints_index.catalog import Catalog
from checkpoints_index.store import checkpoint_dir, load_checkpoint

FILES = [
    "SHA256SUMS",
    "config.json",
    "model.safetensors",
    "optimizer.pt",
    "rng.pt",
    "trainer_state.json",
]


def test_layout_and_round_trip(tmp_path: Path, tiny, save) -> None:
    record = save(tmp_path, 8)
    folder = checkpoint_dir(tmp_path, 8)
    assert folder == tmp_path / "checkpoints" / "step8"
    assert sorted(p.name for p in folder.iterdir()) == FILES
    assert record.path == "checkpoints/step8" and record.step == 8
    assert record.tokens_seen == 8000 and record.has_optimizer
    with safe_open(folder / "model.safetensors", framework="pt") as handle:
        assert handle.metadata() == {"format": "pt"}
    loaded = load_checkpoint(tmp_path, 8)
    assert loaded.weights.keys() == tiny["weights"].keys()
    for name, tensor in tiny["weights"].items():
        assert torch.equal(loaded.weights[name], tensor), name
    assert loaded.hf_config == json.loads(json.dumps(tiny["hf_config"]))  # JSON: str keys
    assert loaded.trainer_state == {"step": 8, "tokens_seen": 8000, "loss": 2.5}
    assert torch.equal(loaded.extra_tensors["torch_rng"], torch.arange(10, dtype=torch.uint8))
    assert torch.equal(loaded.extra_tensors["numpy_rng"], torch.arange(4))
    opt = loaded.optimizer_state
    assert opt["param_groups"] == tiny["optimizer_state"]["param_groups"]
    for key, state in tiny["optimizer_state"]["state"].items():
        for name, value in state.items():
            assert torch.equal(opt["state"][key][name], value)


def test_from_pretrained_loads_the_folder(tmp_path: Path, tiny, save) -> None:
    save(tmp_path, 0)
    model = GPTNeoXForCausalLM.from_pretrained(checkpoint_dir(tmp_path, 0))
    state = model.state_dict()
    assert set(state) == set(tiny["weights"])
    for name, tensor in tiny["weights"].items():
        assert torch.equal(state[name], tensor), name


def test_optional_parts_and_tokens(tmp_path: Path, save) -> None:
    record = save(
        tmp_path, 3, optimizer_state=None, extra_tensors=None, trainer_state={"tokens": 12}
    )
    assert not record.has_optimizer and record.tokens_seen == 12
    folder = checkpoint_dir(tmp_path, 3)
    assert sorted(p.name for p in folder.iterdir()) == [
        "SHA256SUMS",
        "config.json",
        "model.safetensors",
        "trainer_state.json",
    ]
    loaded = load_checkpoint(tmp_path, 3)
    assert loaded.optimizer_state is None and loaded.extra_tensors is None


def test_same_content_gives_identical_bytes(tmp_path: Path, save) -> None:
    first, second = save(tmp_path / "a", 4), save(tmp_path / "b", 4)
    assert first.sha256 == second.sha256 and first.sums_sha256 == second.sums_sha256
    for name in FILES:
        a = (checkpoint_dir(tmp_path / "a", 4) / name).read_bytes()
        assert a == (checkpoint_dir(tmp_path / "b", 4) / name).read_bytes(), name


def test_saving_an_existing_step_is_refused(tmp_path: Path, save) -> None:
    save(tmp_path, 1)
    with pytest.raises(FileExistsError, match="step1"):
        save(tmp_path, 1)


def test_shared_storage_weights_are_saved(tmp_path: Path, tiny, save) -> None:
    weights = dict(tiny["weights"])
    weights["embed_out.weight"] = weights["gpt_neox.embed_in.weight"]  # tied: same storage
    save(tmp_path, 2, weights=weights)
    loaded = load_checkpoint(tmp_path, 2)
    assert torch.equal(loaded.weights["embed_out.weight"], weights["gpt_neox.embed_in.weight"])


def test_bad_input_names_the_field(tmp_path: Path, save) -> None:
    with pytest.raises(ValueError, match="trainer_state"):
        save(tmp_path, 0, trainer_state={"x": object()})
    with pytest.raises(ValueError, match="weights.w"):
        save(tmp_path, 0, weights={"w": [1, 2]})
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.pt", "config.json"])
def test_tampered_byte_is_refused(tmp_path: Path, save, name: str) -> None:
    save(tmp_path, 5)
    path = checkpoint_dir(tmp_path, 5) / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError) as info:
        load_checkpoint(tmp_path, 5)
    assert str(checkpoint_dir(tmp_path, 5)) in str(info.value) and name in str(info.value)
    with Catalog.open(tmp_path) as catalog:
        problems = catalog.verify()
    assert len(problems) == 1 and "step5" in problems[0] and name in problems[0]
    if name != "config.json":
        load_checkpoint(tmp_path, 5, verify=False)  # explicitly unverified still opens
    else:
        with pytest.raises(ValueError, match="config.json"):
            load_checkpoint(tmp_path, 5, verify=False)


def test_rewritten_sums_file_is_caught_by_the_catalog(tmp_path: Path, save) -> None:
    """Replacing a file and its SHA256SUMS line consistently still differs from the catalog."""
    save(tmp_path, 6)
    folder = checkpoint_dir(tmp_path, 6)
    (folder / "config.json").write_text("{}\n")
    from checkpoints_index.sums import write_sums

    write_sums(
        folder, ["model.safetensors", "config.json", "optimizer.pt", "rng.pt", "trainer_state.json"]
    )
    with pytest.raises(ValueError, match="SHA256SUMS: sha256 differs from the catalog"):
        load_checkpoint(tmp_path, 6)


def test_crash_mid_save_leaves_no_step_folder(tmp_path: Path, save, monkeypatch) -> None:
    save(tmp_path, 1)

    def explode(*args, **kwargs):
        raise RuntimeError("simulated crash while writing the optimizer state")

    monkeypatch.setattr(store.torch, "save", explode)
    with pytest.raises(RuntimeError, match="simulated crash"):
        save(tmp_path, 2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step1"]
    with Catalog.open(tmp_path) as catalog:
        assert [r.step for r in catalog.checkpoints()] == [1]
        assert catalog.latest_complete().step == 1


def test_stale_tmp_folder_is_never_read_and_is_cleaned(tmp_path: Path, save) -> None:
    """A hard crash leaves `.stepN.tmp-*` (even a whole-looking one): ignored, then removed."""
    save(tmp_path, 1)
    stale = tmp_path / "checkpoints" / ".step9.tmp-abc123"
    stale.mkdir()
    for p in checkpoint_dir(tmp_path, 1).iterdir():
        (stale / p.name).write_bytes(p.read_bytes())
    with Catalog.open(tmp_path) as catalog:
        assert catalog.sync() == ([], [])
        assert catalog.latest_complete().step == 1
    with pytest.raises(FileNotFoundError, match="step9"):
        load_checkpoint(tmp_path, 9)
    save(tmp_path, 2)  # the writer cleans leftovers
    assert not stale.exists()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step1", "step2"]


def test_trainer_state_json_is_plain(tmp_path: Path, save) -> None:
    save(tmp_path, 0, trainer_state={"b": 1, "a": [1, 2.5, "x"], "nested": {"k": None}})
    text = (checkpoint_dir(tmp_path, 0) / "trainer_state.json").read_text()
    assert json.loads(text) == {"a": [1, 2.5, "x"], "b": 1, "nested": {"k": None}}
