"""`pythia-suite prepare | replay | find`: the data pipeline with exact replay."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from pythia_suite.cli.corpus import add_engine_args, ray_options
from suite_core import ConfigError, DataError
from suite_core.layout import RunLayout


def cmd_prepare(args: argparse.Namespace) -> int:
    """Tokenize a Pile-schema jsonl(.zst) corpus and write DIR in GPT-NeoX's packed training
    order: documents.{bin,idx} (input order, EOD appended), train.{bin,idx} (one row of
    seq_length + 1 tokens per sample, training order; row i is used at step i // batch_size),
    doc_idx/sample_idx/shuffle_idx.npy (provenance), manifest.json, tokenizer.json."""
    from dataloader_replay.prepare import prepare

    manifest = prepare(
        args.input,
        args.tokenizer,
        args.out,
        seq_length=args.seq_length,
        batch_size=args.batch_size,
        steps=args.steps,
        seed=args.seed,
        num_samples=args.num_samples,
        engine=args.engine,
        ray=ray_options(args),
    )
    print(
        f"{args.out}: {manifest.num_samples} rows of {manifest.seq_length + 1} tokens "
        f"({manifest.num_documents} documents, {manifest.num_epochs} epochs, {manifest.dtype})"
    )
    return 0


def _open(
    path: Path, batch_size: int | None, cache: Path | None = None
):  # -> TrainData | TransformedData
    from dataloader_replay.sources import open_run, open_source

    if RunLayout(path).is_run():
        if batch_size is not None:
            raise ConfigError("--batch-size: not allowed for a run (it replays the run's data)")
        return open_run(path)
    return open_source(path, batch_size=batch_size, cache=cache)


def _tokenizer_for(path: Path, given: Path | None):
    from dataloader_replay.tokenizer import load_tokenizer

    if given is not None:
        return load_tokenizer(given).tokenizer
    if (path / "tokenizer.json").is_file():
        return load_tokenizer(path / "tokenizer.json").tokenizer
    raise ConfigError(f"{path}: no tokenizer.json here; pass --tokenizer")


def _verify(args: argparse.Namespace) -> int:
    from pythia_suite.verify import verify_batches  # the one run verifier, batches only

    report = verify_batches(args.path)
    if report.problems:
        print(f"pythia-suite: error: {report.problems[0]}", file=sys.stderr)
        return 1
    print(f"{args.path}: {report.batches} logged batches verified")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay the batches that steps [S, E) trained on (E exclusive, default S + 1): rows
    [S*B, E*B) as an integer array [(E-S)*B, L+1] (--out FILE.npy), or decoded (--text).
    PATH is a prepared DIR, a bare train-style .bin/.idx prefix (EleutherAI's preshuffled
    Pythia files: batch size 1024 unless --batch-size), or a RUN (run.json): what that run's
    model saw, transform applied. `replay RUN --verify` recomputes every batch_sha256 logged in
    RUN/metrics.jsonl and exits 1 naming the first mismatching step."""
    if args.verify:
        _check_verify_flags(args)
        return _verify(args)
    if args.step is None or (args.out is None) == (not args.text):
        raise ConfigError("replay: give --step and exactly one of --out FILE.npy / --text")
    data = _open(args.path, args.batch_size, args.cache)
    end = _check_range(args, data)
    home = getattr(data, "data", data).directory or args.path
    tokenizer = _tokenizer_for(home, args.tokenizer) if args.text else None
    if tokenizer is not None:
        _check_covers(
            tokenizer, args.tokenizer or Path(home) / "tokenizer.json", data, args.step, end
        )
    if args.out is not None:
        from suite_core.atomic import atomic_path, refuse_existing

        refuse_existing(args.out)
        batch = np.concatenate([data.batch(s) for s in range(args.step, end)])
        with atomic_path(args.out) as tmp, open(tmp, "wb") as fh:
            np.save(fh, batch, allow_pickle=False)
        print(f"{args.out}: {batch.shape[0]} rows x {batch.shape[1]} tokens ({batch.dtype})")
        return 0
    assert tokenizer is not None  # --text
    B = data.batch_size
    for s in range(args.step, end):
        for i, row in enumerate(data.batch(s)):
            print(f"=== row {s * B + i} (step {s}) ===")
            print(tokenizer.decode(row.tolist(), skip_special_tokens=False))
    return 0


def _check_verify_flags(args: argparse.Namespace) -> None:
    """`--verify` takes a run and none of the replay flags."""
    ignored = [
        flag
        for flag, value in (
            ("--step", args.step),
            ("--end-step", args.end_step),
            ("--out", args.out),
            ("--text", args.text),
            ("--batch-size", args.batch_size),
            ("--tokenizer", args.tokenizer),
        )
        if value is not None and value is not False
    ]
    if ignored:
        raise ConfigError(
            f"--verify: checks every logged step of the run; "
            f"{', '.join(ignored)} cannot be combined with it"
        )
    if not RunLayout(args.path).is_run():
        raise FileNotFoundError(
            f"{RunLayout(args.path).run_json}: no such file (--verify needs a run)"
        )


def _check_range(args: argparse.Namespace, data: Any) -> int:
    """The end step (exclusive) of `--step S [--end-step E]`, both checked by `check_step`."""
    end: int = args.step + 1 if args.end_step is None else args.end_step
    data.check_step(args.step, "--step")
    if end <= args.step:
        raise ConfigError(f"--end-step: {end} must be greater than --step {args.step}")
    try:
        data.check_step(end - 1, "--end-step")  # end is exclusive: its last step must exist
    except DataError:
        raise DataError(
            f"{args.path}: field '--end-step': {end} is past the end of the data "
            f"({data.num_steps} steps)"
        ) from None
    return end


def _check_covers(tokenizer: Any, where: Path, data: Any, start: int, end: int) -> None:
    """Refuse a tokenizer that cannot decode the ids of steps [start, end) (it would panic)."""
    size = int(tokenizer.get_vocab_size(with_added_tokens=True))
    top = max(int(data.batch(s).max()) for s in range(start, end))
    if top >= size:
        raise DataError(
            f"{where}: tokenizer has {size} tokens but the data holds token id {top}; "
            "pass the tokenizer the data was prepared with (--tokenizer)"
        )


def _parse_tokens(text: str) -> list[int]:
    try:
        tokens = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"--tokens: expected comma-separated integers, got {text!r}") from None
    if not tokens or min(tokens) < 0:
        raise ConfigError(f"--tokens: expected non-negative token ids, got {text!r}")
    return tokens


def cmd_find(args: argparse.Namespace) -> int:
    """Print one JSON object {"row", "step", "offset"} per occurrence of a token sequence in
    the training data, in training order. --text is encoded with the data's tokenizer.json
    (or --tokenizer) without special tokens: mind leading spaces (" the" and "the" are
    different tokens). Occurrences that span two rows are not reported."""
    from dataloader_replay.find import find_tokens
    from dataloader_replay.sources import open_source

    data = open_source(args.path, batch_size=args.batch_size, cache=args.cache)
    if args.tokens is not None:
        pattern = _parse_tokens(args.tokens)
        limit = data.vocab_size if data.vocab_size is not None else np.iinfo(data.dtype).max + 1
        if max(pattern) >= limit:
            what = "vocabulary" if data.vocab_size is not None else f"{data.dtype} token range"
            raise ConfigError(
                f"--tokens: id {max(pattern)} is past the data's {what} (ids 0..{limit - 1})"
            )
    else:
        tok = _tokenizer_for(args.path, args.tokenizer)
        pattern = tok.encode(args.text, add_special_tokens=False).ids
        if not pattern:
            raise ConfigError(f"--text: {args.text!r} encodes to no tokens")
    for occ in find_tokens(data, pattern):
        print(json.dumps(occ.as_dict()))
    return 0


def _doc(fn) -> str:  # type: ignore[no-untyped-def]
    return " ".join((fn.__doc__ or "").split())


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare", help="tokenize a corpus into training order", description=_doc(cmd_prepare)
    )
    p.add_argument(
        "input",
        type=Path,
        nargs="+",
        help="corpus .jsonl / .jsonl.zst files (Pile schema) or folders of them, read in order",
    )
    p.add_argument("--tokenizer", type=Path, required=True, help="tokenizers JSON file")
    p.add_argument("--out", type=Path, required=True, help="output directory (must not exist)")
    p.add_argument("--seq-length", type=int, required=True, help="tokens per sample, L")
    p.add_argument("--batch-size", type=int, required=True, help="rows per step, B")
    p.add_argument("--steps", type=int, required=True, help="optimizer steps, S")
    p.add_argument("--seed", type=int, default=1234, help="data order seed (default 1234)")
    p.add_argument(
        "--num-samples",
        type=int,
        default=None,
        help="rows (default ceil(S*B*1.005), GPT-NeoX's count; rows past S*B are held out)",
    )
    add_engine_args(p)
    p.set_defaults(handler=cmd_prepare)

    r = subparsers.add_parser(
        "replay", help="the exact batch(es) a step trained on", description=_doc(cmd_replay)
    )
    r.add_argument("path", type=Path, help="SOURCE (DIR, .bin/.idx prefix, shards, URL) or RUN")
    r.add_argument("--step", type=int, help="first step S")
    r.add_argument("--end-step", type=int, help="end step E, exclusive (default S + 1)")
    r.add_argument("--out", type=Path, help="write rows [S*B, E*B) to this .npy file")
    r.add_argument("--text", action="store_true", help="print the rows decoded")
    r.add_argument("--verify", action="store_true", help="RUN: check every logged batch_sha256")
    r.add_argument("--batch-size", type=int, help="override (bare prefix: default 1024)")
    r.add_argument("--tokenizer", type=Path, help="for --text (default DIR/tokenizer.json)")
    add_cache_argument(r)
    r.set_defaults(handler=cmd_replay)

    f = subparsers.add_parser(
        "find", help="where a token sequence occurs in training", description=_doc(cmd_find)
    )
    f.add_argument("path", type=Path, help="SOURCE: DIR, .bin/.idx prefix, shards or URL")
    what = f.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", help="text to encode and search for")
    what.add_argument("--tokens", help="comma-separated token ids, e.g. 17,42,9")
    f.add_argument("--tokenizer", type=Path, help="for --text (default DIR/tokenizer.json)")
    f.add_argument("--batch-size", type=int, help="override (bare prefix: default 1024)")
    add_cache_argument(f)
    f.set_defaults(handler=cmd_find)


def add_cache_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache",
        type=Path,
        help="range cache for a remote SOURCE (default: the user cache dir, pythia-suite/ranges)",
    )
