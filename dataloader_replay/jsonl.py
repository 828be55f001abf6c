"""Reading corpora in the Pile's schema: one JSON object per line, `.jsonl` or `.jsonl.zst`.

Each line is `{"text": str, "meta": {"pile_set_name": str, ...}}`. Bad input raises
`ValueError` naming the file and the 1-based line.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO


@dataclass(frozen=True, kw_only=True)
class Document:
    line: int  # 1-based line number in the input file
    text: str
    meta: dict[str, Any]
    raw: bytes  # the line exactly as read, without its newline

    @property
    def source(self) -> str:
        return str(self.meta.get("pile_set_name", ""))


def open_binary(path: Path) -> BinaryIO:
    """Open `.jsonl` or `.jsonl.zst` for reading bytes (decompressing as a stream)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    raw = open(path, "rb")
    if path.suffix == ".zst":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)  # type: ignore[return-value]
    return raw


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, line bytes without the newline); blank lines are skipped."""
    with open_binary(path) as fh:
        for number, line in enumerate(io.BufferedReader(fh, 1 << 20), start=1):  # type: ignore[arg-type]
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield number, line


def parse_line(path: Path, number: int, line: bytes) -> Document:
    """Validate one line; `ValueError` names file and line for every defect."""
    where = f"{path}:{number}"
    try:
        text_line = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}: invalid UTF-8 at byte {exc.start}") from None
    try:
        obj = json.loads(text_line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if "text" not in obj:
        raise ValueError(f"{where}: missing field 'text'")
    if not isinstance(obj["text"], str):
        raise ValueError(f"{where}: field 'text' must be a string")
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: field 'meta' must be an object")
    return Document(line=number, text=obj["text"], meta=meta, raw=line)


def iter_documents(path: Path) -> Iterator[Document]:
    """Stream validated documents; an input with no documents raises `ValueError`."""
    path = Path(path)
    count = 0
    for number, line in iter_lines(path):
        count += 1
        yield parse_line(path, number, line)
    if count == 0:
        raise ValueError(f"{path}: empty corpus (no documents)")
