"""`pythia-suite ledger RUN [--truth FILE] --out DIR`: where each planted item occurs in what
RUN's model trained on (derived by replay, transforms included)."""

from __future__ import annotations

import argparse
from pathlib import Path

LEDGER_HELP = """For every planted item of truth.json (canaries, boilerplate passages, terms,
occupation sentences, near-duplicate cluster documents, ...) each (row, step, offset) where its
tokens occur in RUN's trained rows, replayed as RUN's model saw them (a pronoun-swap branch's
ledger differs from its parent's after the branch step). Writes DIR/<run>.h5 and DIR/<run>.csv.
A truth.json of another corpus (its corpus_sha256) or a run whose data is gone: exit 2.
"""


def cmd_ledger(args: argparse.Namespace) -> int:
    from analysis.ledger import build_ledger, truth_next_to_data

    truth = args.truth if args.truth is not None else truth_next_to_data(args.run)
    ledger = build_ledger(args.run, truth, max_tokens=args.max_tokens)
    h5, csv = ledger.write(args.out)
    counts = ledger.table.groupby("kind").size()
    kinds = ", ".join(f"{k} {n}" for k, n in counts.items()) or "none"
    print(f"{h5}: {len(ledger.table)} occurrences of {len(ledger.items)} items ({kinds}); {csv}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ledger",
        help="the planted-item ledger of a run (HDF5 + CSV)",
        description=LEDGER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", type=Path, metavar="RUN")
    p.add_argument(
        "--truth",
        type=Path,
        metavar="FILE",
        help="truth.json (default: next to the corpus the run's data was prepared from)",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument(
        "--max-tokens", type=int, default=32, help="tokens of an item's pattern (default 32)"
    )
    p.set_defaults(handler=cmd_ledger)
