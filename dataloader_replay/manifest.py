"""Writing `DIR/manifest.json`: what a prepared data directory holds and how it was made.

Fields: format, seq_length, batch_size, steps, seed, num_samples, num_epochs, tokens_per_epoch,
num_documents, eod_id, pad_id, vocab_size, dtype, sources (pile_set_name per source id, in
order of first appearance), input (path, sha256), tokenizer (path given, sha256; copied to
`DIR/tokenizer.json`), files (name -> sha256 of every other file in DIR, the per-step
batch hashes `batch_sha256.txt` included), fingerprint.
No timestamps and no temporary paths, so rebuilding with the same inputs is byte-identical.

Reading (and validating) a manifest, and its fingerprint (the data's one identity), live in
`suite_core.records.Manifest`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from suite_core.layout import MANIFEST

__all__ = ["FORMAT", "MANIFEST", "dumps", "write_manifest"]

FORMAT = "pythia-suite/data/1"


def dumps(obj: Any) -> str:
    """Canonical JSON text (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    (Path(directory) / MANIFEST).write_text(dumps(manifest), encoding="utf-8")
