"""`pythia-suite train`: train a family row on prepared data in its fixed order."""

from __future__ import annotations

import argparse
from pathlib import Path

from suite_core import ConfigError

TRAIN_HELP = """Train MODEL on the prepared data DIR, in the data's fixed order, into RUN.

Update n trains on the data's batch at step n-1; every update appends a line to
RUN/metrics.jsonl (step, loss, lr, grad_norm, tokens, batch_sha256) and the steps of the
checkpoint rule are saved as RUN/checkpoints/stepN (step0 = the initialization). The same
command gives byte-identical checkpoints; a killed run restarted with --resume continues from
its newest complete checkpoint. Under `torchrun --nproc_per_node K --no-python pythia-suite
train ...` each of K processes trains on B/K rows of every batch (gloo on CPU, NCCL with
--device cuda): with --parallel ddp (the default) each holds the whole model; with
--parallel fsdp the parameters, gradients and AdamW state are sharded (PyTorch FSDP2).
A run resumes only with the world size, parallel mode, device and precision it started with.
"""

BRANCH_HELP = """--branch-from RUN --branch-step STEP --intervention pronoun-swap: a new run (--out) that
continues RUN from its checkpoint at STEP (weights, optimizer, RNG, data order, LR position) and
swaps masculine for feminine pronoun tokens in every later batch. Model, data, steps, seed and
checkpoint rule default to the parent's and must equal them. RUN2's catalog lists RUN's
checkpoints up to STEP; its run.json records the token map and the branch point."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a model on prepared data (deterministic, resumable)",
        description=TRAIN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    _run_args(p)
    _engine_args(p)
    _branch_args(p.add_argument_group("intervention branch", BRANCH_HELP))
    p.set_defaults(handler=run_train)


def _run_args(p: argparse.ArgumentParser) -> None:
    """What is trained on what, where, with which seed and checkpoints."""
    p.add_argument(
        "--model",
        metavar="NAME",
        help="family row, e.g. pythia-nano or pythia-70m-deduped (a branch: the parent's)",
    )
    p.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="prepared data directory (pythia-suite prepare) (a branch: the parent's)",
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="RUN",
        help="run directory to create (or continue with --resume)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        metavar="S",
        help="optimizer updates (default: the data's steps)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="N",
        help="weight-initialization seed (default: the row's, 1234); the data order has its own seed",
    )
    p.add_argument(
        "--checkpoints",
        default=None,
        metavar="RULE",
        help="checkpoint rule: 'pythia', 'log+every:K' or 'steps:A,B,...' "
        "(default: log+every:1000 for Pythia rows, log+every:max(1,S//10) for CPU rows)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue RUN from its newest complete checkpoint (every earlier one re-hashed; "
        "refused while another process trains RUN)",
    )


def _engine_args(p: argparse.ArgumentParser) -> None:
    """How: threads, precision, schedule, parallelism, device."""
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="T",
        help="torch CPU threads per process (default: cores / processes); keep it fixed to get identical bytes",
    )
    p.add_argument(
        "--precision",
        default="fp32",
        metavar="P",
        help="fp32 (default), bf16 (autocast, float32 master weights) or fp16 (autocast with "
        "DeepSpeed's dynamic loss scaling); checkpoints hold float32 weights in every case",
    )
    p.add_argument(
        "--lr-schedule",
        default="neox-v1.0",
        metavar="NAME",
        help="neox-v1.0 (default: GPT-NeoX v1.0's AnnealingLR, as Pythia trained) or cosine "
        "(GPT-NeoX's later cosine, reaching min_lr at the last step)",
    )
    p.add_argument(
        "--parallel",
        default=None,
        metavar="MODE",
        help="ddp (every rank holds the model; the default under torchrun) or fsdp "
        "(FSDP2: parameters, gradients and optimizer state sharded over the ranks)",
    )
    p.add_argument(
        "--activation-checkpointing",
        action="store_true",
        help="recompute each layer's activations in the backward pass (less memory)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        metavar="DEV",
        help="cpu (gloo between processes; the default) or cuda (NCCL, one GPU per local rank)",
    )


def _branch_args(b: argparse._ArgumentGroup) -> None:
    b.add_argument(
        "--branch-from",
        type=Path,
        default=None,
        metavar="RUN",
        help="continue RUN's checkpoint at --branch-step with changed data",
    )
    b.add_argument(
        "--branch-step",
        type=int,
        default=None,
        metavar="STEP",
        help="the parent's checkpoint step the branch starts from",
    )
    b.add_argument(
        "--intervention",
        default=None,
        choices=("pronoun-swap",),
        help="pronoun-swap: masculine -> feminine pronoun tokens in every batch "
        "from update STEP+1 on",
    )


def run_train(args: argparse.Namespace) -> int:
    from pythia_suite.training.trainer import TrainConfig, train

    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads: must be >= 1, got {args.threads}")
    fields = {
        "model": args.model,
        "data": args.data,
        "steps": args.steps,
        "seed": args.seed,
        "checkpoints": args.checkpoints,
    }
    if args.branch_from is not None:
        from pythia_suite.training.branch import parent_defaults

        inherited = parent_defaults(args.branch_from)
        fields = {k: inherited[k] if v is None else v for k, v in fields.items()}
    for name in ("model", "data"):
        if fields[name] is None:
            raise ConfigError(f"--{name}: required (unless --branch-from gives it)")
    train(
        TrainConfig(
            **fields,
            out=args.out,
            resume=args.resume,
            threads=args.threads,
            precision=args.precision,
            lr_schedule=args.lr_schedule,
            parallel=args.parallel,
            activation_checkpointing=args.activation_checkpointing,
            device=args.device,
            branch_from=args.branch_from,
            branch_step=args.branch_step,
            intervention=args.intervention,
        )  # fmt: skip
    )
    return 0
