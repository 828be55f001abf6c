"""`pythia-suite analyze count` and `analyze fewshot`: the term-frequency study (issue 9)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pythia_suite.cli.options import add_overwrite, add_steps
from suite_core import ConfigError

COUNT_HELP = """Count terms exactly in the rows each checkpoint trained on, in one pass.

SOURCE is a RUN (its rows as its model saw them), a prepared DIR, or a bare .bin/.idx prefix
of EleutherAI's preshuffled files (B = 1024 unless --batch-size). The count at step s is the
number of occurrences inside rows [0, s*B), each row as stored (the one-token overlap between
consecutive samples counts in both rows). Without --out, one JSON object per term and step:
{"term", "tokens", "step", "count"} (with --pairs, then {"terms", "tokens", "step", "count"}
per pair of terms co-occurring within --window tokens of one row).

  pythia-suite analyze count RUN --text " 42" --text " 7" --steps 0,100,500
  pythia-suite analyze count DIR --terms-file terms.txt --steps checkpoints --out counts.h5
"""

FEWSHOT_HELP = """Few-shot accuracy of a run's checkpoints, joined with the counts of each term.

Arithmetic (`Q:What is x1 plus x2? A:` with --format pythia, or the embedded corpus's own
`Q: What is x1 plus x2? A: y.` with --format corpus) scored on the first number of a greedy
completion; fact recall from the corpus's truth.json (`eval.facts`) scored by exact match.
Accuracy per term, shot count and checkpoint with the term's count at that checkpoint goes to
an HDF5 file (--out) and is summarised on stdout; --figures DIR adds the PNG figures.

  pythia-suite analyze fewshot RUN --truth corpus/truth.json --steps checkpoints --out fs.h5
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_count(subparsers)
    _register_fewshot(subparsers)


def _register_count(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "count",
        help="exact term counts at every step, in one pass",
        description=COUNT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "source",
        type=Path,
        metavar="RUN|DATA",
        help="run, or SOURCE: prepared DIR, prefix, shards folder, hf://, http(s)://",
    )
    _term_options(p)
    add_steps(
        p,
        required=True,
        what="steps to count at (any step; words and ranges: the run's checkpoints)",
    )
    _count_options(p)
    p.set_defaults(handler=run_count)


def _term_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tokens",
        action="append",
        default=[],
        metavar="IDS",
        help="a term as comma-separated token ids (repeatable)",
    )
    p.add_argument(
        "--text",
        action="append",
        default=[],
        metavar="TEXT",
        help="a term as text, tokenized without special tokens (repeatable; leading spaces matter)",
    )
    p.add_argument(
        "--terms-file",
        type=Path,
        metavar="FILE",
        help="one term per line: a JSON string (text) or a JSON list of ids",
    )
    p.add_argument(
        "--tokenizer",
        type=Path,
        metavar="FILE",
        help="tokenizer.json for --text (default: the data's)",
    )


def _count_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pairs", action="store_true", help="also count co-occurring pairs")
    p.add_argument(
        "--window",
        type=int,
        default=16,
        metavar="N",
        help="pairs: start positions at most N tokens apart in one row (default 16)",
    )
    p.add_argument("--out", type=Path, metavar="FILE.h5|FILE.csv", help="write a file")
    add_overwrite(p)
    p.add_argument("--processes", type=int, default=1, metavar="K", help="worker processes")
    p.add_argument(
        "--engine",
        default="numpy",
        choices=("numpy", "tokengrams"),
        help="counting engine (default numpy: streaming; see bench/bench_count.py)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="B",
        help="rows per step for a bare prefix (default 1024)",
    )


def _register_fewshot(subparsers: argparse._SubParsersAction) -> None:
    f = subparsers.add_parser(
        "fewshot",
        help="few-shot accuracy vs term frequency",
        description=FEWSHOT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f.add_argument("run", type=Path, metavar="RUN", help="a run with checkpoints")
    f.add_argument("--truth", type=Path, metavar="FILE", help="truth.json (for --tasks facts)")
    add_steps(f, default="checkpoints", what="checkpoints to evaluate")
    f.add_argument(
        "--tasks",
        default=None,
        metavar="T,T",
        help="facts,arithmetic (default: both with --truth, else arithmetic)",
    )
    f.add_argument("--format", default="corpus", choices=("corpus", "pythia"))
    f.add_argument("--ops", default="plus", metavar="OP,OP", help="plus, minus, times")
    f.add_argument("--x2", default="1-50", metavar="A-B", help="second operands (default 1-50)")
    f.add_argument(
        "--max-answer",
        type=int,
        default=99,
        metavar="N",
        help="keep arithmetic items whose answer is at most N (default 99; 0: all)",
    )
    f.add_argument("--shots", default="0,2,4,8,16", metavar="K,K")
    f.add_argument("--seed", type=int, default=1234, help="few-shot sampling seed")
    f.add_argument("--batch-size", type=int, default=128, metavar="N", help="prompts per batch")
    f.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    f.add_argument("--tokenizer", type=Path, metavar="FILE")
    f.add_argument("--out", type=Path, metavar="FILE.h5", help="HDF5 results")
    f.add_argument("--figures", type=Path, metavar="DIR", help="write PNG figures into DIR")
    f.set_defaults(handler=run_fewshot_cli)


def _terms(args: argparse.Namespace):  # -> list[Term]
    from analysis.sources import open_rows
    from analysis.term_frequency.terms import (
        check_vocabulary,
        parse_token_ids,
        read_terms_file,
        text_term,
        unique_terms,
    )
    from dataloader_replay.tokenizer import read_tokenizer

    if not (args.tokens or args.text or args.terms_file):
        raise ConfigError("terms: give --tokens, --text or --terms-file")
    rows = open_rows(args.source, batch_size=args.batch_size)
    data = getattr(rows, "data", rows)
    tok_path = args.tokenizer
    directory = getattr(data, "directory", None)
    if tok_path is None and directory is not None:
        tok_path = Path(directory) / "tokenizer.json"
    tokenizer = None
    if args.text or args.terms_file:
        tokenizer = read_tokenizer(tok_path) if tok_path is not None else None
    terms = [parse_token_ids(v) for v in args.tokens]
    terms += [text_term(v, tokenizer) for v in args.text]
    if args.terms_file:
        terms += read_terms_file(args.terms_file, tokenizer)
    vocab = getattr(data, "vocab_size", None)
    if vocab is None and tokenizer is not None:
        vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    check_vocabulary(terms, vocab, where=str(args.source))
    return unique_terms(terms), rows


def _steps(value: str, source: Path, *, checkpoints_only: bool) -> list[int]:
    """`--steps` in the shared grammar (analysis.steps); counts may be taken at any step."""
    from analysis.sources import open_checkpoints
    from analysis.steps import needs_checkpoints, parse_steps

    need = needs_checkpoints(value) or checkpoints_only
    available = open_checkpoints(source).steps if need else None
    return parse_steps(value, available, checkpoints_only=checkpoints_only)


def run_count(args: argparse.Namespace) -> int:
    from analysis.term_frequency.results import check_output, write_counts, write_jsonl
    from analysis.term_frequency.scan import CountConfig, check_steps, count_terms

    check_output(args.out, overwrite=args.overwrite)
    if args.window < 1:
        raise ConfigError(f"--window: must be >= 1, got {args.window}")
    terms, rows = _terms(args)
    steps = _steps(args.steps, args.source, checkpoints_only=False)
    check_steps(rows, steps)
    config = CountConfig(
        steps=tuple(steps),
        pairs=args.pairs,
        window=args.window,
        processes=args.processes,
        engine=args.engine,
        batch_size=args.batch_size,
    )
    result = count_terms(args.source, terms, config)
    if args.out is None:
        write_jsonl(result, sys.stdout)
    else:
        write_counts(result, args.out, overwrite=args.overwrite)
    return 0


def _ints(value: str, flag: str) -> tuple[int, ...]:
    try:
        if "-" in value and "," not in value:
            lo, hi = (int(v) for v in value.split("-"))
            return tuple(range(lo, hi + 1))
        return tuple(int(v) for v in value.split(","))
    except ValueError:
        raise ConfigError(f"{flag}: {value!r} is not a list of integers or a range A-B") from None


def _read_truth(path: Path) -> dict[str, Any]:
    """`--truth FILE`: a corpus's truth.json (a JSON object)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such truth file")
    try:
        truth = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not JSON ({exc})") from None
    if not isinstance(truth, dict):
        raise ConfigError(
            f"{path}: field '--truth': must be a JSON object (a corpus's truth.json), "
            f"got a {type(truth).__name__}"
        )
    return truth


def run_fewshot_cli(args: argparse.Namespace) -> int:
    from analysis.term_frequency.across import ItemsConfig, run_fewshot
    from analysis.term_frequency.decode import DecodeConfig
    from analysis.term_frequency.fewshot import FewShotConfig
    from analysis.term_frequency.figures import accuracy_vs_frequency
    from analysis.term_frequency.metrics import gap_table

    truth = None if args.truth is None else _read_truth(args.truth)
    tasks = (
        tuple(args.tasks.split(","))
        if args.tasks
        else (("facts", "arithmetic") if truth is not None else ("arithmetic",))
    )
    shots = _ints(args.shots, "--shots")
    if any(k < 0 for k in shots):
        raise ConfigError(f"--shots: must be >= 0, got {args.shots!r}")
    if args.figures is not None and args.figures.exists():
        raise FileExistsError(f"{args.figures}: already exists")
    from analysis.steps import names_all

    steps = None if names_all(args.steps) else _steps(args.steps, args.run, checkpoints_only=True)
    items = ItemsConfig(
        tasks=tasks,
        format=args.format,
        ops=tuple(args.ops.split(",")),
        x2=_ints(args.x2, "--x2"),
        max_answer=args.max_answer or None,
    )
    fewshot = FewShotConfig(
        shots=shots,
        seed=args.seed,
        dtype=args.dtype,
        decode=DecodeConfig(batch_size=args.batch_size),
    )
    result = run_fewshot(
        args.run,
        truth=truth,
        steps=steps,
        items_config=items,
        fewshot=fewshot,
        tokenizer=args.tokenizer,
        out=args.out,
    )
    joined = result.joined
    for task in sorted(joined["task"].unique()):
        sys.stdout.write(f"{task}: top-10 minus bottom-10 accuracy x100 (rows: shots)\n")
        sys.stdout.write(gap_table(joined, task=task).round(1).to_string() + "\n")
    if args.figures is not None:
        args.figures.mkdir(parents=True)
        for (task, k), _ in joined.groupby(["task", "shots"]):
            accuracy_vs_frequency(
                joined, task=task, shots=int(k), out=args.figures / f"{task}.{k}shot.png"
            )
    return 0
