"""`pythia-suite run`: the whole suite as one reproducible experiment into `runs/<name>/`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

RUN_HELP = """Run the whole suite into ROOT/NAME (default runs/<name>): synthesize (or read) the
corpus, deduplicate it, train the tokenizer, prepare the standard and deduplicated data on one
fixed order, train every model of the config on both, verify every run (replay --verify,
checkpoints verify), run the studies, and write ROOT/NAME/report.html.

SUITE.yaml is merged over the preset (default: `default`); the resolved config is saved as
ROOT/NAME/suite.yaml and the full log goes to ROOT/NAME/suite.log. Run the same command again
and every stage that is complete and unchanged is skipped; change the config and exactly what
depends on the change runs again; kill it at any moment and re-run it to finish with the same
results. Every run is re-verified on every invocation, skipped or not.

Nothing is lost without being asked: ROOT/NAME must be new, empty or a suite folder (marker
file .pythia-suite); nothing inside it may be a symlink; a config change that would retrain a
completed run names the runs and stops unless --replace is given. train.threads left unset is
pinned on the first run (suite.yaml) and kept on re-runs, on any machine.
"""

SUITE_LOGGERS = ("pythia_suite.suite.runner", "pythia_suite.suite.suite")


class _ConsoleFilter(logging.Filter):
    """On the console: the suite's one line per stage, and warnings from anything."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name in SUITE_LOGGERS or record.levelno >= logging.WARNING


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="run the whole suite (corpus to report) with skip-if-done",
        description=RUN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "suite",
        nargs="?",
        type=Path,
        metavar="SUITE.yaml",
        help="suite config (merged over the preset)",
    )
    p.add_argument(
        "--preset",
        default="default",
        metavar="NAME",
        help="default | full | tiny (default: default)",
    )
    p.add_argument("--name", default=None, help="suite name: the directory ROOT/NAME")
    p.add_argument(
        "--root", type=Path, default=Path("runs"), help="where suites live (default: ./runs)"
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="let a changed config retrain and replace completed runs (refused without it)",
    )
    p.set_defaults(handler=run_suite_cmd)


def run_suite_cmd(args: argparse.Namespace) -> int:
    from pythia_suite.suite.config import load_config
    from pythia_suite.suite.suite import run_suite

    config = load_config(args.suite, preset=args.preset, name=args.name)
    for handler in logging.getLogger().handlers:
        if getattr(handler, "stream", None) in (sys.stderr, sys.stdout):
            handler.addFilter(_ConsoleFilter())
            handler.setFormatter(logging.Formatter("%(message)s"))
    source = str(args.suite) if args.suite is not None else f"preset {args.preset!r}"
    run_suite(config, root=args.root, source=source, replace=args.replace)
    print(args.root / config.name / "report.html")
    return 0
