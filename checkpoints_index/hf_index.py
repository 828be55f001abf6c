"""`checkpoints index DIR`: catalogue a folder of Hugging Face GPT-NeoX checkpoints.

DIR holds one folder per revision, `DIR/stepN/` (for example EleutherAI's Pythia revisions a
user downloaded), each a `GPTNeoXForCausalLM` folder: `config.json` and safetensors weights
(`model.safetensors`, or shards listed by `model.safetensors.index.json`). Every file of every
step is hashed into `DIR/catalog.sqlite` (table `files`; the `checkpoints` rows have paths
`stepN`), so that `record_problems` re-checks a folder before anything loads it and analyses take
DIR like a run. Each step must be loadable (a GPT-NeoX config, safetensors headers whose
embedding shapes match it); weights are never unpickled. Flags (table `flags`, warnings, not
failures): revisions whose weights are byte-identical to another step's, and steps the hub table
(`checkpoints_index.hub_reports`) reports as bad for the model DIR holds. The catalog is built
under a temporary name and renamed into place, so a failure leaves the previous one intact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from checkpoints_index import hub
from checkpoints_index.catalog import SCHEMA, sums_text
from checkpoints_index.layout import CATALOG, CHECKPOINTS, CONFIG_FILE, MODEL_FILE, STEP_DIR
from checkpoints_index.records import utc_from_timestamp
from suite_core import CheckpointError
from suite_core.hashing import sha256_file

log = logging.getLogger(__name__)

SHARD_INDEX = "model.safetensors.index.json"
MAX_CONFIG_BYTES = 1 << 20  # a config.json is a few KB
EMBED_IN, EMBED_OUT = "gpt_neox.embed_in.weight", "embed_out.weight"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Flag:
    """A warning about one step: `identical` weights, or `reported-*` by the hub table."""

    step: int
    kind: str
    message: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class IndexResult:
    directory: Path
    model: str | None  # the published model the hub table was consulted for
    steps: list[int]
    weights_sha256: dict[int, str]
    flags: list[Flag]

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "model": self.model,
            "steps": self.steps,
            "weights_sha256": {str(k): v for k, v in self.weights_sha256.items()},
            "flags": [dataclasses.asdict(f) for f in self.flags],
        }


def step_folders(directory: Path) -> dict[int, Path]:
    """Step -> `DIR/stepN` folder."""
    found = {
        int(m.group(1)): child
        for child in directory.iterdir()
        if child.is_dir() and (m := STEP_DIR.match(child.name))
    }
    return dict(sorted(found.items()))


def guess_model(directory: Path) -> str | None:
    """The Pythia model named by a component of DIR's path (also the HF cache's
    `models--EleutherAI--pythia-70m`), or None."""
    for part in reversed(directory.absolute().parts):
        name = part.split("--")[-1]
        try:
            return hub.parse_model(name).repo_name
        except ValueError:
            continue
    return None


def weight_files(folder: Path) -> list[str]:
    """The safetensors files of a model folder; ValueError naming what is missing."""
    if (folder / MODEL_FILE).is_file():
        return [MODEL_FILE]
    index = folder / SHARD_INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{index}: not a safetensors shard index ({exc})") from None
        for shard in shards:
            if not isinstance(shard, str) or "/" in shard or not (folder / shard).is_file():
                raise CheckpointError(f"{index}: shard {shard!r} is missing")
        return shards
    raise CheckpointError(
        f"{folder}: no {MODEL_FILE} (nor {SHARD_INDEX}); only safetensors weights "
        "are loaded (never pickles)"
    )


def check_loadable(folder: Path) -> list[str]:
    """Check a folder is a loadable GPT-NeoX checkpoint; return its weight files."""
    from safetensors import SafetensorError, safe_open

    config_path = folder / CONFIG_FILE
    if config_path.exists() and not config_path.is_file():
        raise CheckpointError(f"{config_path}: not a regular file (a FIFO, device or folder)")
    if config_path.is_file() and config_path.stat().st_size > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{config_path}: {config_path.stat().st_size:,} bytes; not a config")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{config_path}: no such file (not a model folder)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("model_type") != "gpt_neox":
        model_type = config.get("model_type") if isinstance(config, dict) else None
        raise CheckpointError(f"{config_path}: field 'model_type': {model_type!r} is not gpt_neox")
    names = weight_files(folder)
    shapes: dict[str, list[int]] = {}
    for name in names:
        try:
            with safe_open(str(folder / name), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (a safe_open handle, not a dict)
                    shapes[key] = list(handle.get_slice(key).get_shape())
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(
                f"{folder / name}: not a loadable safetensors file ({exc})"
            ) from None
    _check_memory(folder, shapes)
    expected = [config.get("vocab_size"), config.get("hidden_size")]
    for key in (EMBED_IN, EMBED_OUT):
        if key not in shapes:
            raise CheckpointError(f"{folder}: weights lack {key!r} (not GPT-NeoX weights)")
        if shapes[key] != expected:
            raise CheckpointError(
                f"{folder}: {key}: shape {shapes[key]} does not match "
                f"{CONFIG_FILE} (vocab_size, hidden_size) = {expected}"
            )
    return names


def _check_memory(folder: Path, shapes: dict[str, list[int]]) -> None:
    """The weights, loaded as float32, must fit in this machine's available memory."""
    import math

    import psutil

    need = 4 * sum(math.prod(shape) for shape in shapes.values())
    available = psutil.virtual_memory().available
    if need > 0.8 * available:  # the model's own buffers and the loader's copies need room too
        raise CheckpointError(
            f"{folder}: its weights declare {need / 2**30:,.1f} GiB as float32, "
            f"{available / 2**30:,.1f} GiB of memory is available here"
        )


def index_folder(directory: Path, *, model: str | None = None) -> IndexResult:
    """Hash, check and catalogue every `DIR/stepN/`; see the module docstring."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    if (directory / CHECKPOINTS).is_dir():
        raise CheckpointError(
            f"{directory}: a run directory (it has {CHECKPOINTS}/); "
            "`pythia-suite checkpoints sync` catalogues a run"
        )
    folders = step_folders(directory)
    if not folders:
        raise CheckpointError(f"{directory}: no stepN folders to catalogue")
    if model is not None:
        model = hub.parse_model(model).repo_name
    else:
        model = guess_model(directory)
    rows, files, weights = [], [], {}
    for step, folder in folders.items():
        names = check_loadable(folder)
        sums = {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}
        weights[step] = (
            sums[MODEL_FILE]
            if names == [MODEL_FILE]
            else hashlib.sha256(sums_text({n: sums[n] for n in names}).encode()).hexdigest()
        )
        files += [
            (step, name, digest, (folder / name).stat().st_size) for name, digest in sums.items()
        ]
        created = utc_from_timestamp((folder / names[0]).stat().st_mtime)
        rows.append(
            (
                step,
                None,
                folder.name,
                weights[step],
                hashlib.sha256(sums_text(sums).encode()).hexdigest(),
                int("optimizer.pt" in sums),
                created,
            )
        )
        log.info("%s: %d files hashed", folder, len(sums))
    flags = identical_flags(weights) + hub_flags(model, list(folders))
    _write_catalog(directory, rows, files, flags)
    for flag in flags:
        log.warning("%s: %s", folders[flag.step], flag.message)
    return IndexResult(
        directory=directory, model=model, steps=list(folders), weights_sha256=weights, flags=flags
    )


def identical_flags(weights: dict[int, str]) -> list[Flag]:
    """A flag for every step whose weights are byte-identical to another step's."""
    groups: dict[str, list[int]] = {}
    for step, digest in weights.items():
        groups.setdefault(digest, []).append(step)
    flags = []
    for step, digest in weights.items():
        others = [s for s in groups[digest] if s != step]
        if others:
            flags.append(
                Flag(
                    step=step,
                    kind="identical",
                    message="weights byte-identical to "
                    + ", ".join(f"step{s}" for s in others)
                    + f" (sha256 {digest[:12]}...)",
                )
            )
    return flags


def hub_flags(model: str | None, steps: list[int]) -> list[Flag]:
    """Flags for the steps the hub table reports as bad for `model`."""
    if model is None:
        log.info("no Pythia model named by the path (pass --model): hub reports not consulted")
        return []
    flags = []
    for step in steps:
        if step not in hub.STEPS:
            continue
        for report in hub.revision(model, step).reports:
            flags.append(
                Flag(
                    step=step,
                    kind=f"reported-{report.kind}",
                    message=f"{model}@step{step}: reported {report.kind}: "
                    f"{report.summary} [{report.status}] ({report.url})",
                )
            )
    return flags


_TMP = re.compile(rf"^\.{re.escape(CATALOG)}\.[a-z0-9_]{{8}}\.tmp$")


def _write_catalog(
    directory: Path, rows: list[tuple[Any, ...]], files: list[tuple[Any, ...]], flags: list[Flag]
) -> None:
    """Build `DIR/catalog.sqlite` under a temporary name, rename it into place, and remove
    the leftovers of earlier interrupted builds."""
    fd, name = tempfile.mkstemp(prefix=f".{CATALOG}.", suffix=".tmp", dir=directory)
    os.close(fd)
    tmp = Path(name)
    try:
        db = sqlite3.connect(tmp)
        try:
            db.executescript(SCHEMA)
            with db:
                db.executemany(
                    "INSERT INTO checkpoints (step, tokens_seen, path, sha256, "
                    "sums_sha256, has_optimizer, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                db.executemany("INSERT INTO files VALUES (?, ?, ?, ?)", files)
                db.executemany(
                    "INSERT INTO flags VALUES (?, ?, ?)",
                    [(f.step, f.kind, f.message) for f in flags],
                )
        finally:
            db.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, directory / CATALOG)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    for stale in directory.iterdir():
        if _TMP.match(stale.name) and stale.is_file():
            log.warning("%s: removing the leftover of an interrupted index", stale)
            stale.unlink(missing_ok=True)
