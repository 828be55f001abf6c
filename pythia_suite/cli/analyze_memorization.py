"""`pythia-suite analyze memorization`: memorization scores across checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path

from pythia_suite.cli.options import add_overwrite, add_steps

HELP = """Score memorization (Biderman et al. 2023) of training rows at every checkpoint.

Prompt = the first K tokens of a row, target = the next TARGET; the score is the fraction of
target tokens that greedy decoding reproduces (1 = memorized). Every (step, row) cell also gets
the row's mean token log-likelihood and token accuracy. Results: an HDF5 file with `steps`,
`rows`, `scores`, `seen`, `loglik`, `token_acc` and the configuration as attributes.

  pythia-suite analyze memorization RUN --rows 1024 --out mem.h5
  pythia-suite analyze memorization --model HF_DIR --step 143000 --data PREFIX --out mem.h5

Under `torchrun --nproc_per_node K --no-python pythia-suite analyze memorization ...` the rows
are split over K processes (gloo) and one file, identical to a single-process run, is written.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "memorization",
        help="memorization scores across checkpoints",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", nargs="?", type=Path, metavar="RUN", help="run directory")
    p.add_argument(
        "--model",
        type=Path,
        metavar="HF_DIR",
        help="a GPTNeoXForCausalLM folder (with --step) or a folder of stepN folders",
    )
    p.add_argument(
        "--data",
        type=Path,
        metavar="PATH",
        help="SOURCE: prepared DIR, .bin/.idx prefix, shards folder, hf:// or http(s):// (with a RUN: checked "
        "against the run's data)",
    )
    p.add_argument("--step", type=int, metavar="N", help="the step of a single --model folder")
    p.add_argument(
        "--data-batch-size",
        type=int,
        metavar="B",
        help="rows per training step of a bare prefix (default 1024)",
    )
    add_steps(p)
    p.add_argument(
        "--rows",
        default="1024",
        metavar="N|all",
        help="rows to score, stratified over training order (default 1024)",
    )
    p.add_argument("--seed", type=int, default=0, help="row sampling seed (default 0)")
    p.add_argument("--k", type=int, default=32, help="prompt tokens (default 32)")
    p.add_argument("--target", type=int, default=32, help="target tokens (default 32)")
    p.add_argument("--batch-size", type=int, default=128, help="rows per forward pass")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.h5", help="HDF5 to write")
    add_overwrite(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from analysis.memorization.across import MemConfig, score_memorization
    from analysis.memorization.sample import parse_rows

    cfg = MemConfig(
        out=args.out,
        run=args.run,
        model=args.model,
        data=args.data,
        step=args.step,
        steps=args.steps,
        rows=parse_rows(args.rows),
        seed=args.seed,
        k=args.k,
        target=args.target,
        batch_size=args.batch_size,
        data_batch_size=args.data_batch_size,
        dtype=args.dtype,
        threads=args.threads,
        overwrite=args.overwrite,
    )
    path = score_memorization(cfg)
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        print(path)
    return 0
