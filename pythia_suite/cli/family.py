"""`pythia-suite family`: the model family table, and GPT-NeoX configs for its rows."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dataloader_replay.tokenizer import MAX_VOCAB_SIZE
from pythia_suite.training.family import EXAMPLE_VOCAB, FAMILY, get_row, neox_yaml, param_counts
from suite_core import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "family",
        help="list the model family (or print a GPT-NeoX config for one row)",
        description=(
            "List every row of the model family: layers, width, heads, learning rate, padded "
            "vocabulary, total and non-embedding parameters (Pythia rows: the published counts). "
            "CPU rows take their vocabulary from the prepared data; their counts are shown at "
            f"--vocab (default {EXAMPLE_VOCAB})."
        ),
    )
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    p.add_argument(
        "--vocab",
        type=int,
        default=None,
        metavar="N",
        help=f"tokenizer size for the CPU rows' counts (default {EXAMPLE_VOCAB})",
    )
    p.add_argument(
        "--neox-yaml",
        metavar="NAME",
        default=None,
        help="print a GPT-NeoX training config (YAML) for model NAME instead",
    )
    m = p.add_argument_group(
        "memory plan",
        "--memory ROW: per-rank bytes of parameters, gradients, AdamW state and "
        "activations for training ROW on N processes (see pythia_suite.training.memory)",
    )
    m.add_argument(
        "--memory", metavar="ROW", default=None, help="print the memory plan of ROW instead"
    )
    m.add_argument(
        "--world-size", type=int, default=1, metavar="N", help="processes (GPUs) (default 1)"
    )
    m.add_argument("--precision", default="fp32", metavar="P", help="fp32 (default), bf16 or fp16")
    m.add_argument(
        "--parallel",
        default=None,
        metavar="MODE",
        help="ddp or fsdp (default: fsdp when N > 1, else ddp)",
    )
    m.add_argument(
        "--micro-batch",
        type=int,
        default=None,
        metavar="M",
        help="sequences per rank per forward (default: batch / N, what `train` runs; "
        "fewer needs gradient accumulation, which GPT-NeoX does and `train` does not)",
    )
    m.add_argument("--activation-checkpointing", action="store_true", help="recompute activations")
    p.set_defaults(handler=run)


def family_rows(vocab: int | None = None) -> list[dict[str, Any]]:
    """One dict per family row, CPU rows counted at `vocab` (default EXAMPLE_VOCAB)."""
    if vocab is not None and not 1 <= vocab <= MAX_VOCAB_SIZE:
        raise ConfigError(f"--vocab: must be between 1 and {MAX_VOCAB_SIZE:,}, got {vocab:,}")
    rows = []
    for cfg in FAMILY.values():
        from_data = cfg.vocab_size is None
        counted = cfg.with_vocab(vocab or EXAMPLE_VOCAB) if from_data else cfg
        total, non_embedding = param_counts(counted)
        rows.append({
            "name": cfg.name,
            "layers": cfg.num_layers,
            "hidden_size": cfg.hidden_size,
            "heads": cfg.num_heads,
            "lr": cfg.lr,
            "vocab": "from data" if from_data else cfg.vocab_size,
            "counted_at_vocab": counted.vocab_size,
            "total_params": total,
            "non_embedding_params": non_embedding,
            "seq_length": cfg.seq_length,
            "init": f"{cfg.init_method}/{cfg.output_init_method}",
            "note": cfg.note,
        })  # fmt: skip
    return rows


def _table(rows: list[dict[str, Any]], vocab: int | None) -> str:
    head = ("name", "layers", "hidden", "heads", "lr", "vocab", "total", "non-embedding")
    body = [
        (r["name"], str(r["layers"]), str(r["hidden_size"]), str(r["heads"]), f"{r['lr']:g}",
         str(r["vocab"]), f"{r['total_params']:,}", f"{r['non_embedding_params']:,}")
        for r in rows
    ]  # fmt: skip
    widths = [max(len(x[i]) for x in (head, *body)) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(x, widths)))
             for x in (head, *body)]  # fmt: skip
    lines.append(f"CPU rows ('from data'): counts at a vocabulary of {vocab or EXAMPLE_VOCAB} "
                 "tokens padded to a multiple of 128 (--vocab N). Any Pythia row also exists as "
                 "NAME-deduped.")  # fmt: skip
    return "\n".join(lines)


def run_memory(args: argparse.Namespace) -> int:
    from pythia_suite.training.memory import memory_plan, plan_table

    try:
        row = get_row(args.memory)
    except ValueError as exc:
        raise ConfigError(f"--memory: {exc}") from None
    if row.vocab_size is None:
        row = row.with_vocab(args.vocab or EXAMPLE_VOCAB)
    parallel = args.parallel or ("fsdp" if args.world_size > 1 else "ddp")
    plan = memory_plan(
        row, world_size=args.world_size, parallel=parallel, precision=args.precision,
        micro_batch=args.micro_batch, activation_checkpointing=args.activation_checkpointing,
    )  # fmt: skip
    if args.format == "json":
        sys.stdout.write(json.dumps(plan.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(plan_table([plan]) + "\n")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.memory is not None:
        return run_memory(args)
    if args.neox_yaml is not None:
        sys.stdout.write(neox_yaml(get_row(args.neox_yaml)))
        return 0
    rows = family_rows(args.vocab)
    if args.format == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        sys.stdout.write(_table(rows, args.vocab) + "\n")
    return 0
