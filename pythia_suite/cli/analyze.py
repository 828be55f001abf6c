"""`pythia-suite analyze STUDY ...`: the checkpoint studies.

Each study's subcommands live in their own module `pythia_suite/cli/analyze_<study>.py` with a
`register(subparsers)` function; this module finds them, so that studies are added without
touching a shared file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import pythia_suite.cli as cli_package

PREFIX = "analyze_"


def study_modules() -> list[str]:
    """Names of the `analyze_*` modules of `pythia_suite.cli`, sorted."""
    return sorted(
        m.name for m in pkgutil.iter_modules(cli_package.__path__) if m.name.startswith(PREFIX)
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="studies across checkpoints: memorization, term frequency, bias",
        description="Run a study across the checkpoints of a run (or of Hugging Face folders).",
    )
    studies = p.add_subparsers(dest="study", required=True, metavar="STUDY")
    for name in study_modules():
        importlib.import_module(f"{cli_package.__name__}.{name}").register(studies)
