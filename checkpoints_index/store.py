"""Atomic checkpoint save and verified load.

`RUN/checkpoints/stepN/` holds `config.json` + `model.safetensors` (loadable as they are by
`transformers.GPTNeoXForCausalLM.from_pretrained`), `optimizer.pt`, `trainer_state.json`,
`rng.pt` (extra tensors: RNG states and the like) and `SHA256SUMS`, written last. The folder is
built as `RUN/checkpoints/.stepN.tmp-*` (files fsynced), renamed when complete, and the
directory fsynced; then the catalog row is added. The files hold no timestamps, so the same
content always gives the same bytes. Nothing is unpickled: weights come from safetensors and
the rest from `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from checkpoints_index.catalog import (
    Catalog,
    record_from_folder,
    record_problems,
    tokens_from_state,
)
from checkpoints_index.layout import (
    CATALOG,
    CONFIG_FILE,
    EXTRA_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    SUMS_FILE,
    TRAINER_STATE_FILE,
    checkpoint_dir,
    stale_tmp_dirs,
)
from checkpoints_index.records import CheckpointRecord, utc_now
from checkpoints_index.sums import check_folder, fsync_path, write_sums
from suite_core import CheckpointError

__all__ = [
    "CheckpointRecord",
    "LoadedCheckpoint",
    "checkpoint_dir",
    "clean_stale",
    "load_checkpoint",
    "save_checkpoint",
]

log = logging.getLogger(__name__)


@dataclasses.dataclass(kw_only=True)
class LoadedCheckpoint:
    """What `load_checkpoint` returns; `optimizer_state` / `extra_tensors` None if not saved."""

    weights: dict[str, torch.Tensor]
    hf_config: dict[str, Any]
    optimizer_state: dict[str, Any] | None
    trainer_state: dict[str, Any]
    extra_tensors: dict[str, torch.Tensor] | None
    step: int
    path: Path


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    weights: dict[str, torch.Tensor],
    hf_config: dict[str, Any],
    optimizer_state: dict[str, Any] | None,
    trainer_state: dict[str, Any],
    extra_tensors: dict[str, torch.Tensor] | None = None,
    tokens_seen: int | None = None,
) -> CheckpointRecord:
    """Write `RUN/checkpoints/stepN/` atomically and record it in the catalog.

    `weights` use Hugging Face GPTNeoX names. `trainer_state` holds plain JSON values;
    `tokens_seen` defaults to its `tokens_seen` (or `tokens`) field. Raises `FileExistsError`
    if the step folder exists, `ValueError` naming the field for unserializable input.
    """
    run_dir = Path(run_dir)
    target = checkpoint_dir(run_dir, step)
    config_text = _json_text(hf_config, "hf_config")
    state_text = _json_text(trainer_state, "trainer_state")
    tensors = _plain_tensors(weights, "weights")
    extra = None if extra_tensors is None else _plain_tensors(extra_tensors, "extra_tensors")
    if target.exists():
        raise FileExistsError(f"{target}: checkpoint already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(run_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        os.chmod(tmp, 0o755)
        _write_folder(tmp, tensors, config_text, optimizer_state, state_text, extra)
        fsync_path(tmp)
        os.rename(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, Exception) and _disk_full(exc, target.parent):
            need = _bytes_needed(tensors, optimizer_state, extra)
            free = shutil.disk_usage(target.parent).free
            raise CheckpointError(
                f"{target}: no space left on the device while saving the checkpoint (it needs "
                f"about {need / 2**20:,.1f} MiB, {free / 2**20:,.1f} MiB is free); nothing "
                "of it was kept: free space and resume"
            ) from None
        raise
    fsync_path(target.parent)
    if tokens_seen is None:
        tokens_seen = tokens_from_state(trainer_state)
    record = record_from_folder(run_dir, step, tokens_seen=tokens_seen, created=utc_now())
    with Catalog.open(run_dir) as catalog:
        catalog.add_checkpoint(record)
    log.info("saved %s", target)
    return record


def load_checkpoint(
    run_dir: str | Path, step: int, *, verify: bool = True, map_location: str | torch.device = "cpu"
) -> LoadedCheckpoint:
    """Load `RUN/checkpoints/stepN/`, re-hashing every file first (unless `verify=False`).

    Raises `ValueError` naming the checkpoint folder and the file on a hash mismatch, and
    `FileNotFoundError` if there is no complete folder for `step`.
    """
    run_dir = Path(run_dir)
    folder = checkpoint_dir(run_dir, step)
    if not (folder / SUMS_FILE).is_file():
        raise FileNotFoundError(f"{folder}: no complete checkpoint (no {SUMS_FILE})")
    if verify:
        problems = _problems(run_dir, step)
        if problems:
            more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
            raise CheckpointError(f"checkpoint {folder}: {problems[0]}{more}")
    optimizer = folder / OPTIMIZER_FILE
    extra = folder / EXTRA_FILE
    return LoadedCheckpoint(
        weights=load_file(folder / MODEL_FILE, device=str(map_location)),
        hf_config=_read_json(folder / CONFIG_FILE),
        optimizer_state=_torch_load(optimizer, map_location) if optimizer.is_file() else None,
        trainer_state=_read_json(folder / TRAINER_STATE_FILE),
        extra_tensors=_torch_load(extra, map_location) if extra.is_file() else None,
        step=step,
        path=folder,
    )


def clean_stale(run_dir: str | Path) -> list[Path]:
    """Remove `.stepN.tmp-*` leftovers of interrupted saves; only the run's writer calls this."""
    stale = stale_tmp_dirs(run_dir)
    for path in stale:
        log.warning("%s: removing leftover of an interrupted checkpoint save", path)
        shutil.rmtree(path, ignore_errors=True)
    return stale


def _problems(run_dir: Path, step: int) -> list[str]:
    """Folder problems, plus disagreement with the catalog when it records this step."""
    folder = checkpoint_dir(run_dir, step)
    if not (run_dir / CATALOG).is_file():
        return check_folder(folder)
    with Catalog.open(run_dir) as catalog:
        records = [r for r in catalog.checkpoints() if r.step == step]
    return record_problems(run_dir, records[0]) if records else check_folder(folder)


def _write_folder(
    folder: Path,
    tensors: dict[str, torch.Tensor],
    config_text: str,
    optimizer_state: dict[str, Any] | None,
    state_text: str,
    extra: dict[str, torch.Tensor] | None,
) -> None:
    save_file(tensors, str(folder / MODEL_FILE), metadata={"format": "pt"})
    _write_text(folder / CONFIG_FILE, config_text)
    # safetensors creates its file 0600; give it the mode of the others (0666 less the umask)
    os.chmod(folder / MODEL_FILE, stat.S_IMODE(os.stat(folder / CONFIG_FILE).st_mode))
    _write_text(folder / TRAINER_STATE_FILE, state_text)
    names = [MODEL_FILE, CONFIG_FILE, TRAINER_STATE_FILE]
    if optimizer_state is not None:
        torch.save(optimizer_state, folder / OPTIMIZER_FILE)
        names.append(OPTIMIZER_FILE)
    if extra is not None:
        torch.save(extra, folder / EXTRA_FILE)
        names.append(EXTRA_FILE)
    for name in names:
        fsync_path(folder / name)
    write_sums(folder, names)  # last: its presence marks the folder complete


def _disk_full(exc: BaseException, folder: Path) -> bool:
    """Did a write fail for lack of space? (torch and safetensors wrap ENOSPC in their own
    errors, so the message counts too.)"""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(exc).lower()
        if "no space left" in text or "disk quota" in text or "file write failed" in text:
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def _bytes_needed(
    tensors: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any] | None,
    extra: dict[str, torch.Tensor] | None,
) -> int:
    """The tensors' bytes of one checkpoint (weights, optimizer moments, extra tensors)."""

    def size(value: Any) -> int:
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size()
        if isinstance(value, dict):
            return sum(size(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return sum(size(v) for v in value)
        return 0

    return size(tensors) + size(optimizer_state) + size(extra)


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def _json_text(value: dict[str, Any], field: str) -> str:
    if not isinstance(value, dict):
        raise CheckpointError(f"{field}: expected a dict, got {type(value).__name__}")
    try:
        return json.dumps(value, sort_keys=True, indent=2) + "\n"
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{field}: not plain JSON values ({exc})") from None


def _plain_tensors(tensors: dict[str, torch.Tensor], field: str) -> dict[str, torch.Tensor]:
    """Detached, CPU, contiguous tensors; a tensor sharing storage with an earlier one is cloned."""
    if not isinstance(tensors, dict):
        raise CheckpointError(f"{field}: expected a dict of tensors, got {type(tensors).__name__}")
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in tensors.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{field}.{name}: expected str -> torch.Tensor")
        tensor = tensor.detach().to("cpu").contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen and tensor.numel():
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        out[name] = tensor
    return out


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None


def _torch_load(path: Path, map_location: str | torch.device) -> Any:
    """Tensors and plain values only: a file that needs pickled code is refused in one line."""
    import pickle

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: holds pickled objects beyond tensors and plain values; refused (loading "
            "it could run code)"
        ) from None
    except (RuntimeError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable torch file ({first})") from None
