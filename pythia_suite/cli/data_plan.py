"""`pythia-suite data plan SOURCE --steps A:B`: which files and byte ranges replaying steps
[A, B) reads, and how many bytes that is (nothing is read but the idx header)."""

from __future__ import annotations

import argparse
from pathlib import Path

from suite_core import ConfigError


def parse_step_range(text: str) -> tuple[int, int]:
    """`A:B` (B exclusive) or `A` (one step)."""
    try:
        a, _, b = text.partition(":")
        start = int(a)
        end = int(b) if b else start + 1
    except ValueError:
        raise ConfigError(f"--steps: expected A:B (B exclusive) or A, got {text!r}") from None
    if start < 0 or end <= start:
        raise ConfigError(f"--steps: expected 0 <= A < B, got {text!r}")
    return start, end


def cmd_plan(args: argparse.Namespace) -> int:
    """Print the files and byte ranges that replaying steps [A, B) of SOURCE reads (idx header,
    the steps' idx entries, the shard slices; a missing shard is marked), and their total."""
    from dataloader_replay.sources import open_source, plan_steps

    start, end = parse_step_range(args.steps)
    data = open_source(args.source, batch_size=args.batch_size, cache=args.cache)
    pieces = plan_steps(data, start, end)
    locate = getattr(data.store, "files", None)
    for p in pieces:
        where = locate.locate(p.name) if locate is not None else p.name
        flag = "  (missing)" if p.missing else ""
        print(f"{where}\tbytes {p.start}-{p.end - 1}\t{p.size}{flag}")
    total = sum(p.size for p in pieces)
    files = len({p.name for p in pieces})
    print(
        f"total: {total} bytes in {len(pieces)} ranges of {files} files "
        f"(steps {start}..{end - 1}, rows {start * data.batch_size}..{end * data.batch_size - 1})"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="where training rows come from")
    sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    plan = sub.add_parser(
        "plan",
        help="files and byte ranges a range of steps reads",
        description=" ".join((cmd_plan.__doc__ or "").split()),
    )
    plan.add_argument("source", type=Path, help="SOURCE: DIR, prefix, shards folder, hf:// or URL")
    plan.add_argument("--steps", required=True, help="A:B, steps A..B-1")
    plan.add_argument("--batch-size", type=int, help="rows per step (default 1024)")
    plan.add_argument("--cache", type=Path, help="range cache for a remote SOURCE")
    plan.set_defaults(handler=cmd_plan)
