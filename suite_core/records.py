"""The typed records of the house: a data directory's `manifest.json` and a run's `run.json`.

Each is read and validated in one place (`Manifest.read(data_dir)`, `RunJson.read(run_dir)`);
errors name the file and the field. The records are frozen; `fields` keeps the whole JSON
object as read, so that nothing a newer or older version wrote is lost on a round trip.

The one identity of prepared data is `Manifest.fingerprint`: the sha256 of the canonical JSON
of the manifest without its `fingerprint` field and without the paths the input and the
tokenizer were given by. Two directories hold the same data iff their fingerprints are equal.
A run records it as run.json `data.fingerprint`; a run's view of its data (the transform
applied to every batch) is named by `view_fingerprint(fingerprint, transform)`, which is the
fingerprint itself when there is no transform (`RunJson.data_fingerprint`). Results files
carry the same value as their `data_fingerprint` attribute, so they join run.json.

Runs written before the fingerprint was the only identity also hold `data.manifest_sha256`
(the sha256 of the manifest file's bytes); they still open, with a one-line logged note.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

from suite_core import DataError
from suite_core.hashing import canonical_json, sha256_bytes, sha256_file
from suite_core.layout import MANIFEST, RUN_JSON

log = logging.getLogger(__name__)

MANIFEST_INT_FIELDS = (
    "seq_length",
    "batch_size",
    "steps",
    "seed",
    "num_samples",
    "num_epochs",
    "eod_id",
    "vocab_size",
)
_OPTIONAL_INT_FIELDS = ("num_documents", "tokens_per_epoch", "pad_id")
_noted: set[Path] = set()  # run.json files whose legacy field was already noted


def read_json_object(path: Path, *, what: str) -> dict[str, Any]:
    """A JSON object from `path`; errors name the file (`what` says what it should have been)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (not {what})")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: malformed JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a JSON object")
    return obj


def first_difference(old: Any, new: Any, prefix: str = "") -> str | None:
    """Dotted name of the first field where two JSON values differ (in `new`'s key order, then
    the keys only `old` has), or None if they are equal (types included: 1 is not 1.0)."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*new, *(k for k in old if k not in new)]:
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                return where
            found = first_difference(old[key], new[key], where)
            if found is not None:
                return found
        return None
    same = old == new and type(old) is type(new)
    return None if same else (prefix or "<root>")


def fingerprint_content(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a manifest that identifies the data: no fingerprint, no paths."""
    content = {k: v for k, v in manifest.items() if k != "fingerprint"}
    for key in ("input", "tokenizer"):
        if isinstance(content.get(key), dict):
            content[key] = {k: v for k, v in content[key].items() if k != "path"}
    return json.loads(json.dumps(content))


def compute_fingerprint(manifest: Mapping[str, Any]) -> str:
    """sha256 hex naming the data a manifest (as a JSON object) describes."""
    return sha256_bytes(canonical_json(fingerprint_content(manifest)).encode("utf-8"))


def view_fingerprint(fingerprint: str, transform: Mapping[str, Any] | None) -> str:
    """The identity of a run's view of its data: the data's fingerprint with the transform spec
    (the fingerprint itself when there is no transform)."""
    if transform is None:
        return fingerprint
    return sha256_bytes(f"{fingerprint}\n{canonical_json(transform)}".encode())


def _int_field(obj: Mapping[str, Any], name: str, where: Path, *, required: bool) -> int | None:
    value = obj.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise DataError(f"{where}: field '{name}' missing or not an integer")
    return value


@dataclass(frozen=True, kw_only=True, eq=False)
class Manifest:
    """`DATA/manifest.json`: what a prepared data directory holds and how it was made."""

    path: Path  # the manifest.json file (for messages)
    seq_length: int
    batch_size: int
    steps: int
    seed: int
    num_samples: int
    num_epochs: int
    eod_id: int
    vocab_size: int
    sources: tuple[str, ...]  # pile_set_name per source id
    files: Mapping[str, str]  # name -> sha256 of every other file of the directory
    dtype: str | None
    num_documents: int | None
    recorded_fingerprint: str | None  # the `fingerprint` field as written by prepare
    fields: Mapping[str, Any]  # the whole object as read

    @classmethod
    def read(cls, directory: str | Path) -> Manifest:
        """Load and validate `DIR/manifest.json`; errors name the file and the field."""
        path = Path(directory) / MANIFEST
        what = "a prepared data directory; run `pythia-suite prepare`"
        return cls.from_dict(read_json_object(path, what=what), path)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], path: Path) -> Manifest:
        ints = {n: _int_field(obj, n, path, required=True) for n in MANIFEST_INT_FIELDS}
        for name in _OPTIONAL_INT_FIELDS:
            _int_field(obj, name, path, required=False)
        if not isinstance(obj.get("sources"), list):
            raise DataError(f"{path}: field 'sources' missing or not a list")
        files = obj.get("files")
        if files is not None and (
            not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values())
        ):
            raise DataError(f"{path}: field 'files' must map file names to sha256 strings")
        for name in ("dtype", "fingerprint"):
            if obj.get(name) is not None and not isinstance(obj[name], str):
                raise DataError(f"{path}: field '{name}' must be a string")
        fields = copy.deepcopy(dict(obj))
        return cls(
            path=Path(path),
            **ints,  # type: ignore[arg-type]
            sources=tuple(str(s) for s in obj["sources"]),
            files=MappingProxyType(dict(files or {})),
            dtype=obj.get("dtype"),
            num_documents=obj.get("num_documents"),
            recorded_fingerprint=obj.get("fingerprint"),
            fields=MappingProxyType(fields),
        )

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def input(self) -> Mapping[str, Any]:
        """The `input` section (path given, sha256; several files: their sha256 in `files`)."""
        given = self.fields.get("input")
        return given if isinstance(given, Mapping) else {}

    @property
    def input_path(self) -> Path | None:
        """The path the input corpus was given by (`input.path`), if it is one path."""
        path = self.input.get("path")
        return Path(path) if isinstance(path, str) else None

    @cached_property
    def fingerprint(self) -> str:
        """The data's one identity (see the module docstring)."""
        return compute_fingerprint(self.fields)

    def content(self) -> dict[str, Any]:
        """The fields the fingerprint is computed from (what run.json records as data.manifest)."""
        return fingerprint_content(self.fields)

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self.fields))

    def check_fingerprint(self) -> None:
        """DataError if the recorded fingerprint does not match the other fields."""
        if self.recorded_fingerprint is not None and self.recorded_fingerprint != self.fingerprint:
            raise DataError(
                f"{self.path}: field 'fingerprint': does not match "
                "the manifest's other fields (the manifest was edited after prepare)"
            )


@dataclass(frozen=True, kw_only=True)
class RunData:
    """run.json's `data` section: where the data was and what it is."""

    path: Path  # where it was when last trained on (a moved directory is found by fingerprint)
    fingerprint: str | None  # the manifest's fingerprint (None only in very old runs)
    transform: Mapping[str, Any] | None  # the intervention applied to every batch
    manifest: Mapping[str, Any] | None  # the manifest's fingerprint content
    manifest_sha256: str | None = None  # legacy: sha256 of the manifest file's bytes


def _run_data(obj: Any, where: Path) -> RunData:
    if not isinstance(obj, dict) or not isinstance(obj.get("path"), str):
        raise DataError(f"{where}: field 'data.path' missing or not a string")
    for name, kind in (("fingerprint", str), ("manifest_sha256", str), ("transform", dict)):
        if obj.get(name) is not None and not isinstance(obj[name], kind):
            raise DataError(f"{where}: field 'data.{name}' must be a {kind.__name__} or null")
    if obj.get("manifest_sha256") is not None and where not in _noted:
        _noted.add(where)
        log.info(
            "%s: field 'data.manifest_sha256' is from an older version: the data is named by %s",
            where,
            "data.fingerprint" if obj.get("fingerprint") else "the manifest file's sha256",
        )
    manifest = obj.get("manifest")
    return RunData(
        path=Path(obj["path"]),
        fingerprint=obj.get("fingerprint"),
        transform=obj.get("transform"),
        manifest=manifest if isinstance(manifest, dict) else None,
        manifest_sha256=obj.get("manifest_sha256"),
    )


def _manifest_difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """The first manifest setting that differs (the file hashes, which follow from the
    settings, only when nothing else does)."""
    settings = first_difference(
        {k: v for k, v in old.items() if k != "files"},
        {k: v for k, v in new.items() if k != "files"},
    )
    return settings or first_difference(old, new)


@dataclass(frozen=True, kw_only=True)
class RunModel:
    """run.json's `model` section: the family row the run trained and its shape."""

    name: str  # e.g. "pythia-micro"
    num_layers: int | None
    hidden_size: int | None

    @property
    def size(self) -> int:
        """Order by size: layers x width^2 (~ the non-embedding parameters); 0 when unknown."""
        return (self.num_layers or 0) * (self.hidden_size or 0) ** 2


@dataclass(frozen=True, kw_only=True)
class RunBranch:
    """run.json's `branch` section: an intervention branch's parent run and branch step."""

    parent: Path  # the parent run directory, as it was when the branch was trained
    step: int  # the parent checkpoint the branch starts from


@dataclass(frozen=True, kw_only=True)
class TokenSwap:
    """One entry of an intervention's token map: every `from_id` in a batch becomes `to_id`."""

    source: str  # run.json `from`, e.g. " he"
    target: str  # run.json `to`, e.g. " she"
    from_id: int
    to_id: int


@dataclass(frozen=True, kw_only=True)
class RunIntervention:
    """run.json's `intervention` section: its name and the token map applied to every batch."""

    name: str  # e.g. "pronoun-swap"
    swaps: tuple[TokenSwap, ...]


def _section(obj: Mapping[str, Any], name: str, where: Path) -> Mapping[str, Any] | None:
    value = obj.get(name)
    if value is not None and not isinstance(value, dict):
        raise DataError(f"{where}: field '{name}' must be an object")
    return value


def _str_field(section: Mapping[str, Any], key: str, label: str, where: Path) -> str:
    value = section.get(key)
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{label}.{key}' missing or not a string")
    return value


def _run_model(obj: Mapping[str, Any], where: Path) -> RunModel | None:
    model = _section(obj, "model", where)
    if model is None:
        return None
    name = _str_field(model, "name", "model", where)
    shape = {n: _int_field(model, n, where, required=False) for n in ("num_layers", "hidden_size")}
    return RunModel(name=name, **shape)


def _run_branch(obj: Mapping[str, Any], where: Path) -> RunBranch | None:
    branch = _section(obj, "branch", where)
    if branch is None:
        return None
    parent = _str_field(branch, "parent", "branch", where)
    step = branch.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise DataError(f"{where}: field 'branch.step' missing or not a step (integer >= 0)")
    return RunBranch(parent=Path(parent), step=step)


def _token_swap(entry: Any, where: str) -> TokenSwap:
    if not isinstance(entry, dict):
        raise DataError(f"{where}: must be an object")
    text, number = (str, "a string"), (int, "an integer")
    for key, (kind, name) in {"from": text, "to": text, "from_id": number, "to_id": number}.items():
        value = entry.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise DataError(f"{where}.{key}: missing or not {name}")
    return TokenSwap(
        source=entry["from"], target=entry["to"], from_id=entry["from_id"], to_id=entry["to_id"]
    )


def _run_intervention(obj: Mapping[str, Any], where: Path) -> RunIntervention | None:
    spec = _section(obj, "intervention", where)
    if spec is None:
        return None
    entries = spec.get("map", [])
    if not isinstance(spec.get("name"), str) or not isinstance(entries, list):
        raise DataError(f"{where}: field 'intervention.name' or 'intervention.map' malformed")
    swaps = [
        _token_swap(e, f"{where}: field 'intervention.map[{i}]'") for i, e in enumerate(entries)
    ]
    return RunIntervention(name=spec["name"], swaps=tuple(swaps))


@dataclass(frozen=True, kw_only=True, eq=False)
class RunJson:
    """`RUN/run.json`: a training run's resolved config, written before its first update."""

    path: Path  # the run.json file
    data: RunData
    steps: int | None
    batch_size: int | None
    seq_length: int | None
    precision: str | None
    model: RunModel | None = None  # None in a run.json written without its model section
    branch: RunBranch | None = None  # an intervention branch's parent and step
    intervention: RunIntervention | None = None
    fields: Mapping[str, Any]  # the whole object as read

    @classmethod
    def read(cls, run_dir: str | Path) -> RunJson:
        """Load and validate `RUN/run.json`; errors name the file and the field."""
        path = Path(run_dir) / RUN_JSON
        return cls.from_dict(read_json_object(path, what="a run directory"), path)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], path: Path) -> RunJson:
        path = Path(path)
        ints = {n: _int_field(obj, n, path, required=False) for n in ("steps", "batch_size")}
        seq_length = _int_field(obj, "seq_length", path, required=False)
        precision = obj.get("precision")
        if precision is not None and not isinstance(precision, str):
            raise DataError(f"{path}: field 'precision' must be a string")
        return cls(
            path=path,
            data=_run_data(obj.get("data"), path),
            seq_length=seq_length,
            precision=precision,
            model=_run_model(obj, path),
            branch=_run_branch(obj, path),
            intervention=_run_intervention(obj, path),
            fields=MappingProxyType(copy.deepcopy(dict(obj))),
            **ints,
        )

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    @property
    def data_path(self) -> Path:
        """`data.path`, relative paths resolved against the run directory when that exists."""
        path = self.data.path
        if not path.is_absolute() and not path.exists() and (self.run_dir / path).exists():
            return self.run_dir / path
        return path

    @property
    def data_fingerprint(self) -> str | None:
        """The identity of the data as this run's model saw it (fingerprint + transform)."""
        if self.data.fingerprint is None:
            return None
        return view_fingerprint(self.data.fingerprint, self.data.transform)

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self.fields))

    def check_data(self, manifest: Manifest) -> None:
        """DataError naming run.json's field if `manifest` describes other data than the run's."""
        if self.data.fingerprint is not None:
            if manifest.fingerprint == self.data.fingerprint:
                return
            field = None
            if self.data.manifest is not None:
                field = _manifest_difference(dict(self.data.manifest), manifest.content())
            raise DataError(
                f"{self.path}: field 'data.fingerprint': {manifest.directory} holds other data "
                f"(fingerprint {manifest.fingerprint[:12]}..., the run was trained on "
                f"{self.data.fingerprint[:12]}..."
                + (f"; manifest field '{field}' differs" if field else "")
                + ")"
            )
        legacy = self.data.manifest_sha256
        if legacy is not None and sha256_file(manifest.path) != legacy:
            raise DataError(
                f"{self.path}: field 'data.manifest_sha256': {manifest.path} differs from "
                "the manifest the run was trained on"
            )
