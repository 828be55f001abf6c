"""EleutherAI's sharded layout read in place: `STEM.idx` + `STEM-000KK-of-000NN.bin`.

The shards are the merged `.bin` cut into consecutive byte ranges (EleutherAI's
`utils/unshard_memmap.py` concatenates them); a cut may fall anywhere, inside a row or inside a
token. Rows [r0, r1) are found the way megatron-core's `IndexedDataset` finds them: the
`.idx` (legacy `MMIDIDX` format, see `indexed.py`) gives each row's length and byte pointer;
the byte range [pointer[r0], pointer[r1 - 1] + length) is then read slice by slice from the
shards it overlaps. Only the idx entries of the rows asked for are read (a memory map of the
idx locally, range requests remotely), never the whole idx, never a whole shard.

The bytes come from a `Files` backend (a local folder, or `remote.HttpFiles`), so local and
remote sources share every line of the layout and offset logic.
"""

from __future__ import annotations

import itertools
import logging
import mmap
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from dataloader_replay.indexed import HEADER_BYTES, parse_header
from dataloader_replay.replay import parallel_copy_pairs
from suite_core import DataError

log = logging.getLogger(__name__)
SHARD_NAME = re.compile(r"^(?P<stem>.+)-(?P<k>\d{5})-of-(?P<n>\d{5})\.bin$")


@dataclass(frozen=True, kw_only=True)
class Origin:
    """What is known about where a sharded source comes from."""

    repo_id: str | None = None  # OWNER/NAME on the hub, when known
    revision: str | None = None  # the commit, when known
    identity: str | None = None  # the idx sha256 as the hub states it (or a mirror URL hash)


class Files(Protocol):
    """Where the idx and the shards' bytes come from."""

    where: str  # the folder or base URL (for messages)

    def locate(self, name: str) -> str:
        """The path or URL of file `name` (for messages)."""
        ...

    def read_into(self, name: str, start: int, out: np.ndarray) -> None:
        """Fill `out` (1-D uint8) with bytes [start, start + out.size) of file `name`."""
        ...

    def read_pieces(self, pieces: list[tuple[str, int, np.ndarray]]) -> None:
        """`read_into` for each (name, start, out), in one go where the backend can."""
        ...


@dataclass(frozen=True, kw_only=True)
class Piece:
    """Bytes [start, end) of one file."""

    name: str
    start: int
    end: int
    missing: bool = False  # the file is not there (a plan may still name it)

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, kw_only=True)
class Shard:
    name: str
    size: int | None  # None: the file is absent
    offset: int | None  # where it starts in the merged .bin; None when it cannot be known
    length: int | None  # its size, or the size it must have when absent; None if unknowable


@dataclass(frozen=True, kw_only=True)
class Layout:
    """The files of one sharded dataset, as named by a listing."""

    stem: str
    idx: str
    names: list[str]  # every shard name 0..NN, present or not

    @classmethod
    def find(cls, listing: Mapping[str, int | None], where: str) -> Layout:
        """The one `STEM.idx` with `STEM-KKKKK-of-NNNNN.bin` shards in `listing` (name -> size)."""
        groups: dict[str, set[int]] = {}
        for name in listing:
            m = SHARD_NAME.match(name)
            if m:
                groups.setdefault(m["stem"], set()).add(int(m["n"]))
        stems = [s for s in sorted(groups) if f"{s}.idx" in listing]
        if len(stems) != 1:
            found = ", ".join(f"{s}.idx" for s in stems) or "no STEM.idx with STEM-*-of-*.bin"
            raise DataError(
                f"{where}: not a sharded dataset (expected one STEM.idx with "
                f"STEM-00000-of-000NN.bin shards; found {found})"
            )
        stem = stems[0]
        if len(groups[stem]) != 1:
            raise DataError(
                f"{where}: shards of {stem} disagree on their count "
                f"(-of-{', -of-'.join(f'{n:05d}' for n in sorted(groups[stem]))})"
            )
        last = groups[stem].pop()
        names = [f"{stem}-{k:05d}-of-{last:05d}.bin" for k in range(last + 1)]
        return cls(stem=stem, idx=f"{stem}.idx", names=names)


def place_shards(
    names: list[str],
    sizes: Mapping[str, int | None],
    total: int,
    locate: Callable[[str], str] = str,
) -> list[Shard]:
    """Each shard's offset in the merged `.bin` of `total` bytes.

    With every shard present, offsets are the running sums (any sizes). With some absent, the
    shards after a gap can only be placed if the present ones follow EleutherAI's rule (all the
    same size but the last); otherwise they are left unplaced (offset None).
    """
    present = [sizes.get(n) for n in names]
    known = [s for s in present if s is not None]
    if len(known) == len(names):
        _check_total(names, known, total, locate)
        offsets = [0, *itertools.accumulate(known)]
        return [Shard(name=n, size=s, offset=o, length=s) for n, s, o in zip(names, known, offsets)]
    step = _uniform_size(present, total)
    if step is not None:
        last = total - step * (len(names) - 1)
        if present[-1] is not None and present[-1] != last or not 0 < last <= step:
            raise DataError(
                f"{locate(names[-1])}: field 'size': {present[-1]} bytes, but shards of {step} bytes "
                f"and the idx's {total} bytes leave {last} for the last shard"
            )
        lengths = [step] * (len(names) - 1) + [last]
        return [
            Shard(name=n, size=s, offset=k * step, length=lengths[k])
            for k, (n, s) in enumerate(zip(names, present))
        ]
    out: list[Shard] = []
    at: int | None = 0
    for n, s in zip(names, present):
        out.append(Shard(name=n, size=s, offset=at, length=s))
        at = None if (s is None or at is None) else at + s
    return out


def _uniform_size(present: list[int | None], total: int) -> int | None:
    """The common size of the non-last shards, if the present ones agree on one."""
    sizes = {s for s in present[:-1] if s is not None}
    if len(sizes) == 1:
        return sizes.pop()
    if not sizes and present[-1] is not None and len(present) > 1:
        step, rest = divmod(total - present[-1], len(present) - 1)
        return step if rest == 0 and step > 0 else None
    return None


def _check_total(
    names: list[str], sizes: list[int], total: int, locate: Callable[[str], str]
) -> None:
    have = sum(sizes)
    if have == total:
        return
    body = sizes[:-1]
    common = max(set(body), key=body.count) if body else None
    odd = [n for n, s in zip(names, body) if s != common]
    if len(odd) == 1 and len(body) > 2:
        where = locate(odd[0])  # one shard differs from the others
    elif not odd:
        where = locate(names[-1])  # all alike but the last
    else:
        where = (
            str(Path(locate(names[0])).parent)
            if "://" not in locate(names[0])
            else (locate(names[0]).rsplit("/", 1)[0])
        )
    raise DataError(
        f"{where}: field 'size': the shards hold {have} bytes but the idx needs {total} "
        f"({'shorter' if have < total else 'longer'} by {abs(total - have)})"
    )


@dataclass(frozen=True, kw_only=True)
class IdxInfo:
    dtype: np.dtype
    num_rows: int
    width: int  # tokens per row (the first row's length; every row is checked when read)
    idx_size: int

    @property
    def row_bytes(self) -> int:
        return self.width * self.dtype.itemsize

    def entry_pieces(self, idx: str, r0: int, r1: int) -> list[Piece]:
        """The idx bytes holding rows [r0, r1)'s lengths (int32) and pointers (int64)."""
        lengths = HEADER_BYTES + 4 * r0
        pointers = HEADER_BYTES + 4 * self.num_rows + 8 * r0
        return [
            Piece(name=idx, start=lengths, end=lengths + 4 * (r1 - r0)),
            Piece(name=idx, start=pointers, end=pointers + 8 * (r1 - r0)),
        ]


def read_idx_info(files: Files, idx: str, idx_size: int) -> IdxInfo:
    """The idx header and the first row's length: one read of `HEADER_BYTES + 4` bytes."""
    where = files.locate(idx)
    if idx_size < HEADER_BYTES + 4:
        raise DataError(f"{where}: field 'size': {idx_size} bytes is too short for an idx")
    head = np.empty(HEADER_BYTES + 4, np.uint8)
    files.read_into(idx, 0, head)
    dtype, rows, _ = parse_header(head[:HEADER_BYTES].tobytes(), idx_size, where)
    if rows == 0:
        raise DataError(f"{where}: field 'sequence_count': the dataset is empty")
    width = int(head[HEADER_BYTES:].view(np.int32)[0])
    if width < 2:
        raise DataError(f"{where}: field 'sequence_lengths': first row has {width} tokens")
    return IdxInfo(dtype=dtype, num_rows=rows, width=width, idx_size=idx_size)


@dataclass(kw_only=True)
class ShardedRows:
    """Rows of a sharded dataset, read in place through a `Files` backend."""

    files: Files
    layout: Layout
    info: IdxInfo
    shards: list[Shard] = field(repr=False)

    @property
    def dtype(self) -> np.dtype:
        return self.info.dtype

    @property
    def missing(self) -> list[str]:
        return [s.name for s in self.shards if s.size is None]

    def bin_pieces(self, start: int, end: int, *, strict: bool = True) -> list[Piece]:
        """The shard slices holding merged-.bin bytes [start, end); DataError naming the
        missing shard file(s) if any of them is needed (`strict=False`: marked `missing`,
        unless a gap leaves them unplaceable)."""
        out, absent = [], []
        for k, s in enumerate(self.shards):
            if s.offset is None or s.length is None:  # nothing from here on can be placed
                if s.offset is None or end > s.offset:
                    absent += [x.name for x in self.shards[k:] if x.size is None]
                break
            lo, hi = max(start, s.offset), min(end, s.offset + s.length)
            if lo < hi:
                if s.size is None and strict:
                    absent.append(s.name)
                out.append(
                    Piece(
                        name=s.name, start=lo - s.offset, end=hi - s.offset, missing=s.size is None
                    )
                )
        if absent:
            raise DataError(
                f"{self.files.where}: bytes [{start}, {end}) of the data need "
                f"{', '.join(dict.fromkeys(absent))}, missing"
            )
        return out

    def row_bytes_range(self, r0: int, r1: int) -> tuple[int, int]:
        """[first byte, end byte) of rows [r0, r1) in the merged .bin, from their idx entries
        (checked: every row `width` tokens, each right after the previous)."""
        lens, ptrs = (
            self._bytes(p).view(dtype)
            for p, dtype in zip(self.info.entry_pieces(self.layout.idx, r0, r1), ("<i4", "<i8"))
        )
        want = np.arange(r0, r1, dtype=np.int64) * self.info.row_bytes
        if (lens == self.info.width).all() and (ptrs == want).all():
            return int(ptrs[0]), int(ptrs[-1]) + self.info.row_bytes
        where = self.files.locate(self.layout.idx)
        if (bad := np.flatnonzero(lens != self.info.width)).size:
            r = r0 + int(bad[0])
            raise DataError(
                f"{where}: field 'sequence_lengths': row {r} has {int(lens[bad[0]])} tokens, "
                f"row 0 has {self.info.width} (not rows of one length)"
            )
        if (bad := np.flatnonzero(ptrs != want)).size:
            r, dtype = r0 + int(bad[0]), self.info.dtype.name
            raise DataError(
                f"{where}: field 'sequence_pointers': row {r} starts at byte "
                f"{int(ptrs[bad[0]])}, rows of {self.info.width} {dtype} tokens put it at "
                f"{int(want[bad[0]])} (the idx's dtype or lengths disagree with its pointers)"
            )
        return int(ptrs[0]), int(ptrs[-1]) + self.info.row_bytes

    def _bytes(self, piece: Piece) -> np.ndarray:
        """A piece's bytes: a read-only view where the backend maps files, else a copy."""
        view = getattr(self.files, "view", None)
        if view is not None:
            return view(piece.name, piece.start, piece.size)  # type: ignore[no-any-return]
        out = np.empty(piece.size, np.uint8)
        self.files.read_into(piece.name, piece.start, out)
        return out

    def read(self, r0: int, r1: int) -> np.ndarray:
        """Rows [r0, r1) as a [r1 - r0, width] array in the stored dtype."""
        out = np.empty((r1 - r0, self.info.width), self.info.dtype)
        if r1 == r0:
            return out
        start, end = self.row_bytes_range(r0, r1)
        raw = out.reshape(-1).view(np.uint8)
        todo, at = [], 0
        for piece in self.bin_pieces(start, end):
            todo.append((piece.name, piece.start, raw[at : at + piece.size]))
            at += piece.size
        self.files.read_pieces(todo)
        return out

    def plan(self, r0: int, r1: int) -> list[Piece]:
        """Every byte range reading rows [r0, r1) touches: header, idx entries, shard slices."""
        head = Piece(name=self.layout.idx, start=0, end=HEADER_BYTES + 4)
        entries = self.info.entry_pieces(self.layout.idx, r0, r1)
        start, end = r0 * self.info.row_bytes, r1 * self.info.row_bytes
        return [head, *entries, *self.bin_pieces(start, end, strict=False)]


class LocalFiles:
    """A folder of files (plain, or an HF cache snapshot of symlinks into `blobs/`), each
    read through a memory map opened on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.where = str(folder)
        self._maps: dict[str, mmap.mmap] = {}

    def listing(self) -> dict[str, int | None]:
        """name -> size; None for a broken link (an HF snapshot whose blob is not there)."""
        out: dict[str, int | None] = {}
        for p in sorted(self.folder.iterdir()):
            if p.is_file():
                out[p.name] = p.stat().st_size
            elif p.is_symlink():
                out[p.name] = None
        return out

    def locate(self, name: str) -> str:
        return str(self.folder / name)

    def view(self, name: str, start: int, size: int) -> np.ndarray:
        """Bytes [start, start + size) of file `name`, a read-only view of its memory map."""
        mm = self._maps.get(name)
        if mm is None:
            with open(self.folder / name, "rb") as fh:
                mm = self._maps[name] = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        if start + size > len(mm):
            raise DataError(
                f"{self.locate(name)}: field 'size': {len(mm)} bytes, reading "
                f"[{start}, {start + size}) needs more"
            )
        return np.frombuffer(mm, np.uint8, size, start)

    def read_into(self, name: str, start: int, out: np.ndarray) -> None:
        out[:] = self.view(name, start, out.size)

    def read_pieces(self, pieces: list[tuple[str, int, np.ndarray]]) -> None:
        parallel_copy_pairs(
            [(out, self.view(name, start, out.size)) for name, start, out in pieces]
        )
