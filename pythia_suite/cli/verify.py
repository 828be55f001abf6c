"""`pythia-suite verify DATA|RUN`: recheck prepared data or a run before trusting it."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)

VERIFY_HELP = """Recheck prepared data DIR or a RUN, reading only.

DATA: every file sha256 of manifest.json (documents.bin, train.bin, the index arrays, ...),
every per-step batch hash (batch_sha256.txt), the index arrays rebuilt from documents.idx and
the manifest's seed, and every train row against documents.bin. RUN: its data as above (it must
have the fingerprint the run recorded), metrics.jsonl (steps 1..N, no gap, repeat or malformed
line; each batch_sha256 replayed), and every checkpoint against SHA256SUMS and the catalog.
SHARDS (a folder of EleutherAI's `.idx`/`.bin` shards, plain or an HF cache snapshot): each
file's sha256 against EleutherAI's utils/shard_hashes.txt or the hub's LFS sha256.
Exit 0 when all holds; otherwise exit 2 naming the first problem (the others are logged).
"""


def cmd_verify(args: argparse.Namespace) -> int:
    from pythia_suite.verify import verify_path

    report = verify_path(args.path)
    report.raise_first()
    for line in report.lines:
        print(line)
    print(f"OK: {args.path} verified")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "verify",
        help="recheck prepared data or a run (read-only)",
        description=VERIFY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", type=Path, metavar="DATA|RUN")
    p.set_defaults(handler=cmd_verify)
