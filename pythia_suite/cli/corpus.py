"""`pythia-suite` subcommands for the corpus: `corpus synth`, `dedup`, `tokenizer train`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dataloader_replay.engine_ray import RayOptions


def register(subparsers: argparse._SubParsersAction) -> None:
    corpus = subparsers.add_parser("corpus", help="the embedded synthetic corpus")
    corpus_sub = corpus.add_subparsers(dest="corpus_command", required=True, metavar="COMMAND")
    synth = _add(corpus_sub, "synth", corpus_synth)
    synth.add_argument("--out", type=Path, required=True, help="output directory (must not exist)")
    synth.add_argument("--seed", type=int, default=1234, help="generator seed (default 1234)")
    synth.add_argument(
        "--preset",
        choices=("tiny", "default", "small"),
        default="tiny",
        help="corpus (default tiny; default: the world of make demo)",
    )

    dedup = _add(subparsers, "dedup", dedup_cmd)
    dedup.add_argument(
        "input",
        type=Path,
        nargs="+",
        help="corpus .jsonl / .jsonl.zst files or folders of them (read in order, folders sorted)",
    )
    dedup.add_argument(
        "--out", type=Path, required=True, help="deduplicated .jsonl (.zst to compress)"
    )
    dedup.add_argument(
        "--threshold", type=float, default=0.87, help="Jaccard threshold (default 0.87)"
    )
    dedup.add_argument(
        "--num-perm", type=int, default=128, help="MinHash permutations (default 128)"
    )
    dedup.add_argument("--seed", type=int, default=1, help="MinHash permutation seed (default 1)")
    dedup.add_argument(
        "--verify",
        choices=("exact", "estimate"),
        default="exact",
        help="candidate check: exact Jaccard of the shingle sets (default) or the MinHash estimate",
    )
    add_engine_args(dedup)

    tok = subparsers.add_parser("tokenizer", help="byte-level BPE tokenizer")
    tok_sub = tok.add_subparsers(dest="tokenizer_command", required=True, metavar="COMMAND")
    train = _add(tok_sub, "train", tokenizer_train)
    train.add_argument("input", type=Path, help="corpus .jsonl or .jsonl.zst")
    train.add_argument(
        "--vocab-size", type=int, required=True, help="vocabulary size incl. special tokens"
    )
    train.add_argument("--out", type=Path, required=True, help="tokenizer.json to write")


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    """--engine / --address / --workers, shared by `dedup` and `prepare`."""
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: one process (default); ray: a Ray cluster (byte-identical outputs)",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: start one on this machine)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="Ray tasks at once (default: the cluster's CPUs)"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=None,
        help="Ray: retries of a task whose worker was lost (default 3; the retry gives the same "
        "output)",
    )


def ray_options(args: argparse.Namespace) -> RayOptions:
    """The `RayOptions` of the engine flags; refuses Ray flags with the local engine."""
    from dataloader_replay.engine_ray import RayOptions
    from suite_core import ConfigError

    if args.engine == "local":
        flags = (
            ("--address", args.address),
            ("--workers", args.workers),
            ("--retries", args.retries),
        )
        given = [f for f, v in flags if v is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: only with --engine ray")
    retries = 3 if args.retries is None else args.retries
    return RayOptions(address=args.address, workers=args.workers, max_retries=retries)


def _add(sub: argparse._SubParsersAction, name: str, handler: object) -> argparse.ArgumentParser:
    doc = (handler.__doc__ or "").strip()
    parser = sub.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc)
    parser.set_defaults(handler=handler)
    return parser


def corpus_synth(args: argparse.Namespace) -> int:
    """Write the synthetic mini-Pile: DIR/corpus.jsonl and its ground truth DIR/truth.json.

    Deterministic: the same preset and seed give byte-identical files.
    """
    from pythia_suite.corpus.synth import write_corpus

    write_corpus(args.out, preset=args.preset, seed=args.seed)
    return 0


def dedup_cmd(args: argparse.Namespace) -> int:
    """Remove near-duplicates (MinHash + LSH, verified by exact Jaccard), keeping the first of each
    group in input order.

    Writes the kept lines unchanged to OUTPUT and a report to OUTPUT.report.json. --engine ray
    runs on a Ray cluster with byte-identical outputs.
    """
    from pythia_suite.corpus.dedup import DedupConfig, dedup_file

    config = DedupConfig(
        threshold=args.threshold, num_perm=args.num_perm, seed=args.seed, verify=args.verify
    )
    report = dedup_file(args.input, args.out, config, engine=args.engine, ray=ray_options(args))
    print(
        f"{args.out}: kept {report['kept']} of {report['input_documents']} documents "
        f"(verify {config.verify}, b={report['lsh']['b']} r={report['lsh']['r']}, candidate "
        f"recall at {config.threshold}: {report['lsh']['candidate_recall_at_threshold']:.4f})"
    )
    return 0


def tokenizer_train(args: argparse.Namespace) -> int:
    """Train a byte-level BPE tokenizer (GPT-NeoX-20B style: <|endoftext|>=0, <|padding|>=1)."""
    from pythia_suite.corpus.tokenizer import train_tokenizer

    train_tokenizer(args.input, args.out, vocab_size=args.vocab_size)
    return 0
