"""Corpus inputs: one or several `.jsonl` / `.jsonl.zst` files, or folders of them.

The order is defined: the files in the order given, a folder's files sorted by name. A
document's global index counts documents (non-blank lines) across the files in that order.
Every engine (local, Ray) reads through here, so they see the same documents in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from dataloader_replay.jsonl import Document, iter_lines, parse_line
from suite_core import DataError

SUFFIXES = (".jsonl", ".jsonl.zst")


def input_files(specs: Sequence[Path | str]) -> list[Path]:
    """Expand INPUT arguments to the ordered list of corpus files (folders sorted by name)."""
    if not specs:
        raise DataError("INPUT: no input given")
    files: list[Path] = []
    for spec in map(Path, specs):
        if spec.is_dir():
            found = sorted(p for p in spec.iterdir() if p.is_file() and p.name.endswith(SUFFIXES))
            if not found:
                raise DataError(f"{spec}: folder holds no .jsonl or .jsonl.zst file")
            files.extend(found)
        elif spec.is_file():
            files.append(spec)
        else:
            raise FileNotFoundError(f"{spec}: no such file (INPUT)")
    seen: set[Path] = set()
    for f in files:
        if f.resolve() in seen:
            raise DataError(f"{f}: given twice (INPUT)")
        seen.add(f.resolve())
    return files


def iter_corpus(files: Sequence[Path]) -> Iterator[tuple[int, Document]]:
    """(file index, document) for every document of every file, in input order."""
    for k, path in enumerate(files):
        count = 0
        for number, line in iter_lines(path):
            count += 1
            yield k, parse_line(path, number, line)
        if count == 0:
            raise DataError(f"{path}: empty corpus (no documents)")


@dataclass(frozen=True, kw_only=True)
class RawChunk:
    """Consecutive raw lines of one file, not yet parsed (a unit of parallel work)."""

    index: int  # chunk number, input order
    file: int  # index into the file list
    first_doc: int  # global index of the chunk's first document
    lines: list[int]  # 1-based line numbers
    raw: list[bytes]  # the lines, without newline

    @property
    def nbytes(self) -> int:
        return sum(len(r) + 1 for r in self.raw)


def iter_raw_chunks(files: Sequence[Path], chunk_bytes: int) -> Iterator[RawChunk]:
    """Split the input into chunks of about `chunk_bytes` (never across files), in order."""
    index = first = 0
    for k, path in enumerate(files):
        lines: list[int] = []
        raw: list[bytes] = []
        size = count = 0
        for number, line in iter_lines(path):
            lines.append(number)
            raw.append(line)
            size += len(line) + 1
            count += 1
            if size >= chunk_bytes:
                yield RawChunk(index=index, file=k, first_doc=first, lines=lines, raw=raw)
                index, first = index + 1, first + len(raw)
                lines, raw, size = [], [], 0
        if raw:
            yield RawChunk(index=index, file=k, first_doc=first, lines=lines, raw=raw)
            index, first = index + 1, first + len(raw)
        if count == 0:
            raise DataError(f"{path}: empty corpus (no documents)")


def parse_chunk(path: Path, chunk: RawChunk) -> list[Document]:
    """Validate every line of a chunk (errors name the file and line)."""
    return [parse_line(path, n, raw) for n, raw in zip(chunk.lines, chunk.raw)]


class Progress:
    """A progress bar counting documents, with the input's MB/s."""

    def __init__(self, desc: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(desc=desc, unit="doc", disable=None)
        self.nbytes = 0

    def update(self, docs: int, nbytes: int) -> None:
        self.nbytes += nbytes
        self.bar.update(docs)
        elapsed = self.bar.format_dict.get("elapsed") or 0.0
        if elapsed > 0:
            self.bar.set_postfix_str(f"{self.nbytes / 1e6 / elapsed:.2f} MB/s", refresh=False)

    def close(self) -> None:
        self.bar.close()
