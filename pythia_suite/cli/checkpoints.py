"""`pythia-suite checkpoints ...`: list, verify, sync, index, schedule, hub, fetch.

`list` and `verify` only read; `sync` re-catalogues a run's folders after a crash; `index`
catalogues a folder of Hugging Face checkpoints laid out as DIR/stepN/."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from checkpoints_index import hub
from checkpoints_index.catalog import Catalog
from checkpoints_index.layout import CATALOG, CHECKPOINTS, SUMS_FILE
from checkpoints_index.schedule import checkpoint_steps
from suite_core import ConfigError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "checkpoints", help="list, verify and plan checkpoints", description=__doc__
    )
    sub = parser.add_subparsers(dest="checkpoints_command", required=True, metavar="ACTION")
    _add(sub, "list", cmd_list, "RUN", formats=True)
    _add(sub, "verify", cmd_verify, "RUN")
    _add(sub, "sync", cmd_sync, "RUN")
    p = _add(sub, "index", cmd_index, "DIR", formats=True)
    p.add_argument(
        "--model",
        default=None,
        help="the published Pythia model DIR holds, e.g. pythia-2.8b, to flag the "
        "revisions reported as bad (default: guessed from DIR's path)",
    )
    p = _add(sub, "schedule", cmd_schedule, "RULE", formats=True)
    p.add_argument("--steps", type=int, required=True, help="the run's last step")
    p = _add(sub, "hub", cmd_hub, "MODEL", formats=True)
    p.add_argument("--step", type=int, default=None, help="one step (default: all 154)")
    _add_fetch(sub)


def _add_fetch(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "fetch", cmd_fetch, "MODEL")
    p.add_argument(
        "--steps", required=True, metavar="RULE", help="'pythia', 'log+every:K', 'steps:A,B'"
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="DIR/stepN per revision")
    p.add_argument("--dry-run", action="store_true", help="print the plan; download nothing")
    p.add_argument(
        "--skip-reported", action="store_true", help="skip the revisions the hub table reports"
    )
    p.add_argument(
        "--endpoint", default=None, metavar="URL", help="hub URL (default: HF_ENDPOINT or the hub)"
    )


def _add(
    sub: argparse._SubParsersAction, name: str, handler, positional: str, formats: bool = False
) -> argparse.ArgumentParser:
    doc = (handler.__doc__ or "").strip()
    p = sub.add_parser(name, help=doc.splitlines()[0], description=doc)
    p.add_argument(positional.lower(), metavar=positional)
    if formats:
        p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=handler)
    return p


def _open_run(run: str, *, read_only: bool = True) -> Catalog:
    run_dir = Path(run)
    is_run = (run_dir / CATALOG).exists() or (run_dir / CHECKPOINTS).is_dir()
    if run_dir.is_dir() and not is_run:
        raise FileNotFoundError(f"{run_dir}: not a run directory (no {CATALOG}, no {CHECKPOINTS}/)")
    if read_only and run_dir.is_dir() and not (run_dir / CATALOG).exists():
        raise FileNotFoundError(
            f"{run_dir / CATALOG}: no catalog (`pythia-suite checkpoints "
            f"sync {run_dir}` builds it from the checkpoint folders)"
        )
    return Catalog.open(run_dir, read_only=read_only)


def cmd_list(args: argparse.Namespace) -> int:
    """List a run's checkpoints as the catalog records them: step, tokens, sha256 prefix,
    optimizer, path. Read-only: a catalogued checkpoint whose folder or SHA256SUMS is missing
    is an error (exit 2); folders the catalog does not list are warned about (`sync` adds them).
    """
    with _open_run(args.run) as catalog:
        records = catalog.checkpoints()
        for message in catalog.uncatalogued():
            log.warning("%s", message)
    for record in records:
        folder = record.folder(catalog.run_dir)
        if not folder.is_dir():
            raise ConfigError(f"{folder}: catalogued checkpoint is missing")
        if not (folder / SUMS_FILE).is_file() and record.path.startswith(f"{CHECKPOINTS}/"):
            raise ConfigError(
                f"{folder}: catalogued checkpoint is damaged ({SUMS_FILE} is missing)"
            )
    if args.format == "json":
        print(json.dumps([r.as_dict() for r in records], indent=2))
        return 0
    rows = [("step", "tokens", "sha256", "optimizer", "path")]
    rows += [
        (
            str(r.step),
            "-" if r.tokens_seen is None else str(r.tokens_seen),
            r.sha256[:12],
            "yes" if r.has_optimizer else "no",
            r.path,
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print(
            "  ".join(
                [
                    *(
                        cell.rjust(w) if i < 2 else cell.ljust(w)
                        for i, (cell, w) in enumerate(zip(row, widths))
                    ),
                    row[4],
                ]
            )
        )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Re-hash every file of every checkpoint of RUN against its SHA256SUMS and the catalog;
    exit 2 naming each bad, missing or uncatalogued checkpoint. Read-only."""
    with _open_run(args.run) as catalog:
        problems = catalog.verify()
        count = len(catalog.checkpoints())
    if problems:
        for problem in problems[1:]:
            log.error("%s", problem)
        raise ConfigError(
            f"{problems[0]}"
            + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else "")
        )
    print(f"OK: {count} checkpoints verified")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """Re-catalogue RUN after a crash: add complete stepN folders the catalog lacks, forget the
    rows of checkpoints whose folder or SHA256SUMS is gone (each logged). Takes the run's lock:
    refused while a `train` writes the run."""
    from checkpoints_index.lock import run_lock

    with run_lock(args.run, what="sync"), _open_run(args.run, read_only=False) as catalog:
        if any(not r.path.startswith(f"{CHECKPOINTS}/") for r in catalog.checkpoints()):
            raise ConfigError(
                f"{args.run}: catalogued by `checkpoints index`; run that again instead of sync"
            )
        added, forgotten = catalog.sync()
        count = len(catalog.checkpoints())
    print(
        f"{args.run}: {count} checkpoints catalogued ({len(added)} added, "
        f"{len(forgotten)} forgotten)"
    )
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    """Catalogue a folder of Hugging Face GPT-NeoX checkpoints laid out as DIR/stepN/ (e.g.
    downloaded EleutherAI Pythia revisions) into DIR/catalog.sqlite: every file hashed, each
    step checked loadable (config.json + safetensors), revisions whose weights are
    byte-identical to another step's and steps the hub table reports as bad flagged. Analyses
    then take DIR like a run."""
    from checkpoints_index.hf_index import index_folder
    from checkpoints_index.lock import run_lock

    with run_lock(Path(args.dir), what="index"):
        result = index_folder(Path(args.dir), model=args.model)
    if args.format == "json":
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    print(
        f"{args.dir}: {len(result.steps)} checkpoints catalogued in {CATALOG}"
        + (f" ({result.model})" if result.model else "")
    )
    for flag in result.flags:
        print(f"step{flag.step}: {flag.kind}: {flag.message}")
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    """Print the checkpoint steps of RULE ('pythia', 'log+every:K', 'steps:A,B') for --steps S.

    The run's last step is always included; steps past it are dropped.
    """
    steps = checkpoint_steps(args.rule, args.steps)
    print(json.dumps(steps) if args.format == "json" else "\n".join(map(str, steps)))
    return 0


def cmd_hub(args: argparse.Namespace) -> int:
    """Print the Hugging Face repo id and revision of EleutherAI's published MODEL checkpoints.

    MODEL is e.g. 'pythia-70m' or 'pythia-70m-deduped'. Nothing is downloaded. Revisions
    reported as wrong or corrupted are flagged (and warned about).
    """
    entries = hub.list_revisions(args.model, steps=None if args.step is None else [args.step])
    if args.step is not None:
        hub.warnings_for(args.model, args.step)
    else:
        for note in hub.parse_model(args.model).notes:
            log.warning("%s", note)
    if args.format == "json":
        print(json.dumps([e.as_dict() for e in entries], indent=2))
        return 0
    for e in entries:
        flag = f"  # reported: {'; '.join(r.summary for r in e.reports)}" if e.reports else ""
        print(f"{e.repo_id}  {e.revision}{flag}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """Download the `stepN` revisions of MODEL (a Pythia row such as pythia-70m-deduped, or
    OWNER/NAME) chosen by --steps into DIR/stepN through the Hugging Face cache, every file
    checked against the sha256 the hub's metadata gives, then catalogue DIR (`checkpoints
    index`). Revisions whose weights duplicate an earlier step's are flagged and not downloaded
    twice; revisions the hub table reports as bad are warned about (or skipped); missing ones
    are named. A corrupt file fails the command after the other revisions are placed."""
    from checkpoints_index.fetch import fetch, plan_fetch
    from checkpoints_index.hf_index import index_folder, step_folders
    from suite_core import CheckpointError

    plan = plan_fetch(args.model, args.steps, endpoint=args.endpoint)
    if args.dry_run:
        print("\n".join(plan.lines()))
        return 0
    result = fetch(plan, args.out, skip_reported=args.skip_reported)
    if step_folders(args.out):
        index = index_folder(args.out, model=plan.model)
        print(f"{args.out}: {len(index.steps)} revisions verified and catalogued in {CATALOG}")
        for flag in index.flags:
            print(f"step{flag.step}: {flag.kind}: {flag.message}")
    if result.corrupt:
        first = result.corrupt[0]
        more = f" (and {len(result.corrupt) - 1} more)" if len(result.corrupt) > 1 else ""
        raise CheckpointError(
            f"{plan.repo_id}@step{first.step}/{first.path}: downloaded bytes hash to "
            f"{first.actual[:12]}..., the hub's metadata says {first.expected[:12]}...; "
            f"not placed{more}"
        )
    return 0
