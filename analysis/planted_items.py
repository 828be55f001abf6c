"""The planted items of a `truth.json`, as token patterns, and whether the truth is the run's.

Items are read by kind, generically, so that a corpus that plants more kinds is read unchanged:
- every list of objects with a `canary` field (`canaries`, timing canaries, ...): kind `canary`,
  the pattern is `" " + canary` (the canary follows a space in its host sentence);
- every list of objects with a `passage` or `text` field: kind `boilerplate` (or the list's name
  when it is not about boilerplate), the pattern is the passage's first tokens;
- `terms.numbers` / `terms.entities` (the terms of the arithmetic and fact questions): kind
  `term`, the pattern is `" " + term`;
- `occupations`: kind `occupation`, one item per occupation and gender, the pattern
  `" OCC said that he"` / `" ... she"` (the first occupation sentence form; the `sentences`
  of an occupation are used instead when the truth lists them);
- `near_duplicates.clusters`: kind `cluster`, one item per cluster document, the pattern is the
  document's first tokens (text from the corpus the truth describes).
A pattern is at most `max_tokens` tokens (the first ones), so it fits a training row.

`check_truth_belongs(truth, manifest)`: a truth with a `corpus_sha256` must describe the corpus
the run's data was prepared from (its manifest's `input.sha256`, or, for a deduplicated corpus,
the `input_sha256` of the dedup report next to it); otherwise `DataError` naming the file.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dataloader_replay.jsonl import iter_documents
from suite_core import DataError
from suite_core.records import Manifest

log = logging.getLogger(__name__)

SUBJECT = {"male": "he", "female": "she"}
TEXT_FIELDS = ("passage", "text", "sentence")


@dataclass(frozen=True, kw_only=True)
class Truth:
    """A truth.json: its content, where it was read from (None if given as data)."""

    data: dict[str, Any]
    path: Path | None = None

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "truth"

    @property
    def corpus_sha256(self) -> str | None:
        value = self.data.get("corpus_sha256")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, kw_only=True)
class Item:
    id: str  # e.g. "canaries/3", "term/Velora", "occupation/nurse/male", "cluster/4/synth-000123"
    kind: str  # "canary", "boilerplate", "term", "occupation", "cluster", ...
    text: str  # what was encoded
    tokens: np.ndarray  # int64 [L], 1 <= L <= max_tokens


def read_truth(path: Path) -> Truth:
    """Load a truth.json; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a truth.json of `corpus synth`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return Truth(data=data, path=path)


def as_truth(truth: Truth | dict[str, Any] | Path | str) -> Truth:
    if isinstance(truth, Truth):
        return truth
    if isinstance(truth, dict):
        return Truth(data=truth)
    return read_truth(Path(truth))


def _dedup_source_shas(input_path: Path) -> set[str]:
    """The sha256 of the corpus a deduplicated input was made from (its dedup report's
    `input_sha256`: one per input file), empty when the input is not a dedup output."""
    report = input_path.with_name(input_path.name + ".report.json")
    if not report.is_file():
        return set()
    value = json.loads(report.read_text(encoding="utf-8")).get("input_sha256")
    values = value if isinstance(value, list) else [value]
    return {v for v in values if isinstance(v, str)}


def check_truth_belongs(truth: Truth, manifest: Manifest, data_name: str) -> None:
    """`DataError` unless the truth's `corpus_sha256` is the corpus the data came from."""
    expected = truth.corpus_sha256
    if expected is None:
        log.warning(
            "%s: no field 'corpus_sha256': cannot check it describes %s", truth.name, data_name
        )
        return
    source = manifest.input
    known = {source.get("sha256"), *(source.get("files") or [])}
    if isinstance(source.get("path"), str):
        known |= _dedup_source_shas(Path(source["path"]))
    if expected not in known:
        raise DataError(
            f"{truth.name}: field 'corpus_sha256': {expected[:12]}... is not the corpus of "
            f"{data_name} (prepared from {source.get('path')}, sha256 "
            f"{str(source.get('sha256'))[:12]}...): this truth.json belongs to another corpus"
        )


def _lists(obj: Any, prefix: str = "") -> list[tuple[str, list[dict[str, Any]]]]:
    """(dotted key, list) of every list of objects in the truth, nested objects included."""
    out = []
    for key, value in obj.items() if isinstance(obj, dict) else ():
        name = f"{prefix}{key}"
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out.append((name, value))
        elif isinstance(value, dict):
            out += _lists(value, f"{name}.")
    return out


def item_texts(truth: Truth) -> list[tuple[str, str, str]]:
    """(id, kind, text) of every item that is a text of its own (all but cluster documents)."""
    out: list[tuple[str, str, str]] = []
    for key, entries in _lists(truth.data):
        if key.startswith("eval") or key.startswith("near_duplicates"):
            continue  # held-out questions are not planted; clusters come from the corpus
        for i, entry in enumerate(entries):
            out += _entry_items(key, i, entry)
    return out


def _entry_items(key: str, i: int, entry: dict[str, Any]) -> list[tuple[str, str, str]]:
    if isinstance(entry.get("canary"), str):
        return [(f"{key}/{i}", "canary", " " + entry["canary"])]
    if key.startswith("terms.") and "term" in entry:
        return [(f"term/{entry['term']}", "term", f" {entry['term']}")]
    if isinstance(entry.get("occupation"), str):
        occ = entry["occupation"]
        sentences = entry.get("sentences")
        if isinstance(sentences, list) and all(isinstance(s, str) for s in sentences):
            return [(f"occupation/{occ}/{j}", "occupation", s) for j, s in enumerate(sentences)]
        return [
            (f"occupation/{occ}/{g}", "occupation", f" {occ} said that {s}")
            for g, s in SUBJECT.items()
        ]
    text = next((entry[f] for f in TEXT_FIELDS if isinstance(entry.get(f), str)), None)
    if text is None:
        return []
    kind = "boilerplate" if any(w in key for w in ("boilerplate", "passage", "licen")) else key
    return [(f"{key}/{i}", kind, text)]


def cluster_documents(truth: Truth) -> list[tuple[str, str]]:
    """(item id, document id) of every near-duplicate cluster document."""
    clusters = (truth.data.get("near_duplicates") or {}).get("clusters") or []
    return [(f"cluster/{c['cluster']}/{d}", str(d)) for c in clusters for d in c.get("docs", [])]


def document_texts(corpus: Path, ids: set[str]) -> dict[str, str]:
    """meta.id -> text of the documents of `corpus` whose id is in `ids`."""
    found: dict[str, str] = {}
    for doc in iter_documents(corpus):
        key = str(doc.meta.get("id"))
        if key in ids:
            found[key] = doc.text
    return found


def planted_items(
    truth: Truth, tokenizer: Any, *, corpus: Path | None, max_tokens: int
) -> list[Item]:
    """Every planted item with its token pattern (its first `max_tokens` tokens)."""
    texts = item_texts(truth)
    docs = cluster_documents(truth)
    if docs and corpus is None:
        log.warning("%s: no corpus found: near-duplicate cluster documents left out", truth.name)
        docs = []
    if docs:
        assert corpus is not None
        by_id = document_texts(corpus, {d for _, d in docs})
        missing = [d for _, d in docs if d not in by_id]
        if missing:
            raise DataError(
                f"{truth.name}: field 'near_duplicates.clusters': document {missing[0]} is not "
                f"in {corpus} (the truth belongs to another corpus)"
            )
        texts += [(item, "cluster", by_id[d]) for item, d in docs]
    items = []
    encodings = tokenizer.encode_batch([t for _, _, t in texts], add_special_tokens=False)
    for (item, kind, text), enc in zip(texts, encodings):
        ids = np.asarray(enc.ids[:max_tokens], dtype=np.int64)
        if ids.size:
            items.append(Item(id=item, kind=kind, text=text, tokens=ids))
    return items
