"""`DIR/manifest.json`: what a prepared data directory holds and how it was made.

Fields: format, seq_length, batch_size, steps, seed, num_samples, num_epochs, tokens_per_epoch,
num_documents, eod_id, pad_id, vocab_size, dtype, sources (pile_set_name per source id, in
order of first appearance), input (path, sha256), tokenizer (path given, sha256; copied to
`DIR/tokenizer.json`), files (name -> sha256 of every other file in DIR, the per-step
batch hashes `batch_sha256.txt` included), fingerprint.
No timestamps and no temporary paths, so rebuilding with the same inputs is byte-identical.

`fingerprint(manifest)` names the data by content, not by path: the sha256 of the canonical
JSON of the manifest without its `fingerprint` field and without the paths the input and the
tokenizer were given by. Two directories hold the same data iff their fingerprints are equal;
a run records it (run.json `data.fingerprint`) and `--resume` compares it, wherever the data
directory now lives.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

FORMAT = "pythia-suite/data/1"
MANIFEST = "manifest.json"
REQUIRED_INT_FIELDS = (
    "seq_length",
    "batch_size",
    "steps",
    "seed",
    "num_samples",
    "num_epochs",
    "eod_id",
    "vocab_size",
)
from suite_core import DataError


def fingerprint_content(manifest: dict[str, Any]) -> dict[str, Any]:
    """The part of a manifest that identifies the data: no fingerprint, no paths."""
    content = {k: v for k, v in manifest.items() if k != "fingerprint"}
    for key in ("input", "tokenizer"):
        if isinstance(content.get(key), dict):
            content[key] = {k: v for k, v in content[key].items() if k != "path"}
    return json.loads(json.dumps(content))


def fingerprint(manifest: dict[str, Any]) -> str:
    """sha256 hex naming the data a manifest describes (see the module docstring)."""
    text = json.dumps(fingerprint_content(manifest), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 hex of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def dumps(obj: Any) -> str:
    """Canonical JSON text (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    (Path(directory) / MANIFEST).write_text(dumps(manifest), encoding="utf-8")


def read_json_object(path: Path, *, what: str) -> dict[str, Any]:
    """A JSON object from `path`; errors name the file (`what` says what it should have been)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (not {what})")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: malformed JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a JSON object")
    return obj


def read_manifest(directory: Path) -> dict[str, Any]:
    """Load and check `DIR/manifest.json`; errors name the file and the field."""
    path = Path(directory) / MANIFEST
    manifest = read_json_object(path, what="a prepared data directory")
    for field in REQUIRED_INT_FIELDS:
        value = manifest.get(field)
        if not isinstance(value, int) or isinstance(value, bool):
            raise DataError(f"{path}: field '{field}' missing or not an integer")
    if not isinstance(manifest.get("sources"), list):
        raise DataError(f"{path}: field 'sources' missing or not a list")
    files = manifest.get("files")
    if files is not None and (
        not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values())
    ):
        raise DataError(f"{path}: field 'files' must map file names to sha256 strings")
    return manifest


def check_fingerprint(directory: Path, manifest: dict[str, Any]) -> None:
    """ValueError if the manifest's recorded fingerprint does not match its fields."""
    recorded = manifest.get("fingerprint")
    if recorded is not None and recorded != fingerprint(manifest):
        raise DataError(
            f"{Path(directory) / MANIFEST}: field 'fingerprint': does not match "
            "the manifest's other fields (the manifest was edited after prepare)"
        )
