"""Reading corpora in the Pile's schema: one JSON object per line, `.jsonl` or `.jsonl.zst`.

Each line is `{"text": str, "meta": {"pile_set_name": str, ...}}`. Bad input raises
`DataError` (a `ValueError`) naming the file and the 1-based line.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from suite_core import DataError


@dataclass(frozen=True, kw_only=True)
class Document:
    line: int  # 1-based line number in the input file
    text: str
    meta: dict[str, Any]
    raw: bytes  # the line exactly as read, without its newline

    @property
    def source(self) -> str:
        return str(self.meta.get("pile_set_name", ""))


class _ZstdReader(io.RawIOBase):
    """Decompresses every frame of a `.zst` file as a stream; corrupt data or a file that ends
    inside a frame (a truncation, even one that falls on a line boundary) raises `DataError`
    naming the file, instead of zstandard's error or a silently shortened corpus."""

    def __init__(self, path: Path, raw: BinaryIO) -> None:
        import zstandard

        self._path, self._raw, self._zstd = path, raw, zstandard
        self._dobj: Any = None
        self._pending = b""
        self._compressed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            if not self._fill():
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _fill(self) -> bool:
        """Decompress more into `_pending`; False at a clean end of file."""
        data = self._raw.read(1 << 16)
        if not data:
            if self._dobj is not None and not self._dobj.eof:
                raise DataError(
                    f"{self._path}: truncated zstd stream (the file ends inside a "
                    f"frame after {self._compressed} compressed bytes)"
                )
            return False
        self._compressed += len(data)
        out = []
        while data:
            if self._dobj is None or self._dobj.eof:
                self._dobj = self._zstd.ZstdDecompressor().decompressobj()
            try:
                out.append(self._dobj.decompress(data))
            except self._zstd.ZstdError as exc:
                raise DataError(
                    f"{self._path}: corrupt zstd data near compressed byte "
                    f"{self._compressed}: {exc}"
                ) from None
            data = self._dobj.unused_data if self._dobj.eof else b""
        self._pending = b"".join(out)
        return True

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_binary(path: Path) -> BinaryIO:
    """Open `.jsonl` or `.jsonl.zst` for reading bytes (decompressing as a stream)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, expected a .jsonl or .jsonl.zst file")
    raw = open(path, "rb")
    if path.suffix == ".zst":
        return io.BufferedReader(_ZstdReader(path, raw), 1 << 20)  # type: ignore[return-value]
    return raw


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, line bytes without the newline); blank lines are skipped."""
    with open_binary(path) as fh:
        for number, line in enumerate(fh, start=1):
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield number, line


def parse_line(path: Path, number: int, line: bytes) -> Document:
    """Validate one line; `ValueError` names file and line for every defect."""
    where = f"{path}:{number}"
    try:
        text_line = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: invalid UTF-8 at byte {exc.start}") from None
    try:
        obj = json.loads(text_line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if "text" not in obj:
        raise DataError(f"{where}: missing field 'text'")
    if not isinstance(obj["text"], str):
        raise DataError(f"{where}: field 'text' must be a string")
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise DataError(f"{where}: field 'meta' must be an object")
    return Document(line=number, text=obj["text"], meta=meta, raw=line)


def iter_documents(path: Path) -> Iterator[Document]:
    """Stream validated documents; an input with no documents raises `ValueError`."""
    path = Path(path)
    count = 0
    for number, line in iter_lines(path):
        count += 1
        yield parse_line(path, number, line)
    if count == 0:
        raise DataError(f"{path}: empty corpus (no documents)")
