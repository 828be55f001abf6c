"""`DIR/manifest.json`: what a prepared data directory holds and how it was made.

Fields: format, seq_length, batch_size, steps, seed, num_samples, num_epochs, tokens_per_epoch,
num_documents, eod_id, pad_id, vocab_size, dtype, sources (pile_set_name per source id, in
order of first appearance), input (path, sha256), tokenizer (path given, sha256; copied to
`DIR/tokenizer.json`), files (name -> sha256 of every other file in DIR).
No timestamps and no temporary paths, so rebuilding with the same inputs is byte-identical.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

FORMAT = "pythia-suite/data/1"
MANIFEST = "manifest.json"
REQUIRED_INT_FIELDS = ("seq_length", "batch_size", "steps", "seed", "num_samples", "num_epochs",
                       "eod_id", "vocab_size")


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
        raise ValueError(f"{path}: malformed JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return obj


def read_manifest(directory: Path) -> dict[str, Any]:
    """Load and check `DIR/manifest.json`; errors name the file and the field."""
    path = Path(directory) / MANIFEST
    manifest = read_json_object(path, what="a prepared data directory")
    for field in REQUIRED_INT_FIELDS:
        value = manifest.get(field)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{path}: field '{field}' missing or not an integer")
    if not isinstance(manifest.get("sources"), list):
        raise ValueError(f"{path}: field 'sources' missing or not a list")
    return manifest
