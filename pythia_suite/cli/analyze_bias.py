"""`pythia-suite analyze bias` and `pythia-suite analyze lm-eval`: benchmarks across checkpoints."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pythia_suite.cli.options import add_overwrite, add_steps
from suite_core import ConfigError

BIAS_HELP = """Score CrowS-Pairs and WinoBias at every checkpoint of each RUN through lm-eval.

With --crows FILE.csv (crows_pairs_anonymized.csv) and/or --winobias DIR (the bracketed
{pro,anti}_stereotyped_type{1,2}.txt.{dev,test} files) the official data are used; without
them, the suite's probes built from the corpus's truth.json (--truth, default: truth.json next to
the data's input corpus). Results: HDF5 (--out) with one array per (benchmark, subset, metric)
indexed by step, a CSV next to it, and a figure (--figure). Metrics: CrowS pct_stereotype and
likelihood_diff (all, gender), WinoBias exact match (greedy, promptsource templates) and
multiple-choice accuracy per type and pro/anti, and bias = acc(pro) - acc(anti).
"""

LM_EVAL_HELP = """Run any lm-eval task you have locally (--include-path DIR with your YAMLs, or tasks
whose datasets are in the Hugging Face cache) at every checkpoint of RUN, into one table:
Pythia's "benchmark evaluations across checkpoints". Nothing reaches a network.

Warning: a task YAML may name Python code (lm-eval's `!function module.name`), and lm-eval
imports and runs it from the --include-path folder. Only point --include-path at YAMLs (and
.py files beside them) you trust, as you would a Python script.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_bias(subparsers)
    _register_lm_eval(subparsers)


def _register_bias(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bias",
        help="CrowS-Pairs and WinoBias across checkpoints",
        description=BIAS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "runs",
        nargs="+",
        type=Path,
        metavar="RUN",
        help="run directories (or folders of HF checkpoints DIR/stepN)",
    )
    p.add_argument("--out", required=True, type=Path, metavar="FILE.h5", help="HDF5 results")
    add_steps(p)
    p.add_argument("--crows", type=Path, default=None, metavar="FILE.csv")
    p.add_argument("--winobias", type=Path, default=None, metavar="DIR")
    p.add_argument(
        "--truth",
        type=Path,
        default=None,
        metavar="truth.json",
        help="probes from this truth.json (default: next to the data's input corpus)",
    )
    p.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        metavar="tokenizer.json",
        help="default: the run's data tokenizer, or the folder's own",
    )
    p.add_argument(
        "--step",
        type=int,
        default=None,
        metavar="N",
        help="the step of a single HF model folder given as RUN",
    )
    p.add_argument(
        "--no-generation",
        action="store_true",
        help="skip WinoBias' greedy-generation form (the slow one)",
    )
    p.add_argument("--figure", type=Path, default=None, metavar="FILE.png")
    p.add_argument("--batch-size", type=int, default=32)
    add_overwrite(p)
    p.set_defaults(handler=run_bias)


def _register_lm_eval(subparsers: argparse._SubParsersAction) -> None:
    q = subparsers.add_parser(
        "lm-eval",
        help="any local lm-eval task across checkpoints",
        description=LM_EVAL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("run", type=Path, metavar="RUN")
    q.add_argument("--tasks", required=True, metavar="A,B", help="lm-eval task names")
    q.add_argument(
        "--include-path",
        type=Path,
        default=None,
        metavar="DIR",
        help="a folder of your own lm-eval task YAMLs; RUNS the Python their `!function` "
        "tags name (trusted folders only)",
    )
    add_steps(q)
    q.add_argument("--tokenizer", type=Path, default=None, metavar="tokenizer.json")
    q.add_argument("--step", type=int, default=None, metavar="N")
    q.add_argument("--limit", type=int, default=None, metavar="N", help="documents per task")
    q.add_argument("--out", required=True, type=Path, metavar="FILE.h5|FILE.csv")
    q.add_argument("--batch-size", type=int, default=32)
    add_overwrite(q)
    q.set_defaults(handler=run_lm_eval)


def run_bias(args: argparse.Namespace) -> int:
    from analysis.bias.across import across_checkpoints, bias_scorer, run_info, write_h5
    from analysis.bias.figures import plot_bias
    from analysis.bias.study import benchmarks, summary

    _refuse(args.out, args.overwrite)
    infos = [run_info(r, step=args.step, tokenizer=args.tokenizer) for r in args.runs]
    truth = None
    if args.crows is None and args.winobias is None:
        truth = _read_truth(args.truth or _default_truth(args.runs[0]))
    import tempfile

    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="bias-") as tmp:  # probes and task files
        work = Path(tmp)
        bench = benchmarks(
            truth=truth,
            out_dir=work,
            crows=args.crows,
            winobias=args.winobias,
            generation=not args.no_generation,
        )
        score = bias_scorer(bench, work / "tasks", batch_size=args.batch_size)
        cache: dict = {}
        frame = pd.concat(
            [across_checkpoints(i, score, steps=_steps(args.steps, i), cache=cache) for i in infos],
            ignore_index=True,
        )
    config = {
        "benchmarks": bench.source,
        "crows": str(args.crows),
        "winobias": str(args.winobias),
        "generation": not args.no_generation,
        "runs": [str(r) for r in args.runs],
    }
    write_h5(frame, infos, args.out, config=config, overwrite=args.overwrite)
    from suite_core.atomic import atomic_path

    with atomic_path(args.out.with_suffix(".csv"), overwrite=args.overwrite) as tmp_csv:
        frame.to_csv(tmp_csv, index=False)
    if args.figure is not None:
        branches = {
            i.name: int(i.config["branch"]["step"])
            for i in infos
            if isinstance(i.config.get("branch"), dict)
        }
        plot_bias(frame, args.figure, branch_steps=branches, overwrite=args.overwrite)
    sys.stdout.write(summary(frame).to_string(index=False) + "\n")
    return 0


def run_lm_eval(args: argparse.Namespace) -> int:
    from analysis.bias.across import across_checkpoints, run_info, write_h5
    from analysis.bias.lm_tasks import named_task_scorer

    _refuse(args.out, args.overwrite)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    info = run_info(args.run, step=args.step, tokenizer=args.tokenizer)
    score = named_task_scorer(
        tasks, include_path=args.include_path, limit=args.limit, batch_size=args.batch_size
    )
    frame = across_checkpoints(info, score, steps=_steps(args.steps, info))
    if args.out.suffix == ".csv":
        from suite_core.atomic import atomic_path

        with atomic_path(args.out, overwrite=args.overwrite) as tmp:
            frame.to_csv(tmp, index=False)
    else:
        write_h5(frame, [info], args.out, config={"tasks": tasks}, overwrite=args.overwrite)
    table = frame.pivot_table(index="step", columns=["benchmark", "metric"], values="value")
    sys.stdout.write(table.to_string() + "\n")
    return 0


def _steps(text: str | None, info: Any) -> list[int]:
    """`--steps` (the shared grammar, analysis.steps) against one run's checkpoints."""
    from analysis.steps import parse_steps

    return parse_steps(text, info.checkpoints.steps)


def _refuse(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (pass --overwrite to replace it)")


def _default_truth(run: Path) -> Path:
    from suite_core.layout import MANIFEST, RunLayout
    from suite_core.records import Manifest, RunJson

    data = RunJson.read(run).data_path if RunLayout(run).is_run() else None
    if data is not None and (data / MANIFEST).is_file():
        source = Manifest.read(data).input_path
        if source is not None and (source.parent / "truth.json").is_file():
            return source.parent / "truth.json"
    raise FileNotFoundError(
        f"{run}: no truth.json found next to the data's input corpus "
        "(pass --truth FILE, or --crows / --winobias files)"
    )


def _read_truth(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (truth.json of `corpus synth`)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
