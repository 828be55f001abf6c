"""Options every `analyze` subcommand spells the same way: `--steps` (one grammar,
`analysis.steps`) and `--overwrite`."""

from __future__ import annotations

import argparse

from analysis.steps import GRAMMAR


def add_steps(
    parser: argparse.ArgumentParser,
    *,
    default: str | None = "all",
    required: bool = False,
    what: str = "checkpoints to score",
) -> None:
    """`--steps STEPS`: `all` | `checkpoints` | `A,B,...` | `A:B` (parsed by analysis.steps)."""
    parser.add_argument(
        "--steps",
        default=None if required else default,
        required=required,
        metavar="STEPS",
        help=f"{what}: {GRAMMAR}"
        + ("" if required or default is None else f" (default {default})"),
    )


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    """`--overwrite`: replace an existing output instead of refusing it."""
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
