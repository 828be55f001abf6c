"""`pythia-suite analyze STUDY ...`: the checkpoint studies.

Each study's subcommands live in their own module `pythia_suite/cli/analyze_<study>.py` with a
`register(subparsers)` function; `STUDY_MODULES` lists them (a new study adds one line here).
"""

from __future__ import annotations

import argparse

from pythia_suite.cli import analyze_bias, analyze_count, analyze_memorization

STUDY_MODULES = (analyze_bias, analyze_count, analyze_memorization)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="studies across checkpoints: memorization, term frequency, bias",
        description="Run a study across the checkpoints of a run (or of Hugging Face folders).",
    )
    studies = p.add_subparsers(dest="study", required=True, metavar="STUDY")
    for module in STUDY_MODULES:
        module.register(studies)
