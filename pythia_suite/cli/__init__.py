"""The one command line: `pythia-suite SUBCOMMAND ...`.

Each subcommand lives in its own small module under `pythia_suite.cli` and exposes
`register(subparsers)`; the module's handler calls typed library functions. Errors that the
user can act on (the suite's own family, `suite_core.SuiteError`, and a missing, existing or
unreadable file) are printed as one line on stderr with exit status 2 and no traceback.
Anything else is a bug: one line saying "internal error" with the log holding the traceback
(the suite's suite.log, or a file in the temporary directory), exit status 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path

from pythia_suite.cli import (
    analyze,
    checkpoints,
    corpus,
    data,
    data_plan,
    family,
    ledger,
    run,
    train,
    verify,
)
from suite_core import USER_ERRORS

MODULES = (run, corpus, data, data_plan, family, train, checkpoints, verify, analyze, ledger)


def one_line(message: object) -> str:
    """A message as one line (a multi-line message's lines joined by ' | ')."""
    return " | ".join(line.strip() for line in str(message).splitlines() if line.strip())


def _internal_error(exc: BaseException) -> int:
    """One line naming the log that holds the traceback; exit status 1."""
    path = getattr(exc, "log_path", None)
    if path is None:
        fd, name = tempfile.mkstemp(prefix="pythia-suite-error-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("".join(traceback.format_exception(exc)))
        path = Path(name)
    if os.environ.get("RANK", "0") == "0":
        print(
            f"pythia-suite: internal error: {type(exc).__name__}: {one_line(exc)[:300]} "
            f"(a bug, not your input; traceback in {path})",
            file=sys.stderr,
        )
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pythia-suite",
        description="Reproducible training-dynamics research suite (Pythia-style).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # megatron-core logs every file it opens at INFO
        logging.getLogger("megatron").setLevel(logging.WARNING)
    try:
        result = args.handler(args)
    except BrokenPipeError:  # output piped into `head` and friends: not an error
        sys.stderr.close()
        return 0
    except USER_ERRORS as exc:  # the one place user errors become exit 2
        # Under torchrun every rank validates the same arguments and data and hits the same
        # error: rank 0 prints it once, the others exit 2 silently.
        if os.environ.get("RANK", "0") == "0":
            print(f"pythia-suite: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pythia-suite: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place a bug is reported as one
        return _internal_error(exc)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
