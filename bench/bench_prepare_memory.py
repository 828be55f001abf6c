"""Peak memory of `pythia-suite prepare` at two corpus sizes (1x and 10x, same steps/batch).

prepare streams (tokenize in batches into the builder; materialize rows in chunks from a memory
map), so peak RSS should stay flat as the corpus grows. Each run is a child process; its peak
RSS is `ru_maxrss` from `os.wait4` (cross-checked by psutil polling). The corpus and a
WordLevel tokenizer are generated here. Nothing is asserted; the ratio is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from machine import print_machine

WORDS = 8192


def write_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<|endoftext|>": 0, "<|padding|>": 1}
    vocab.update({f"w{k}": k + 2 for k in range(WORDS)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|padding|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(path))


def write_corpus(path: Path, docs: int, mean_words: int, seed: int = 0) -> int:
    """Pile-schema jsonl of random-word documents; returns the number of words."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{k}" for k in range(WORDS)])
    total = 0
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(docs):
            n = int(rng.integers(1, 2 * mean_words))
            total += n
            text = " ".join(words[rng.integers(0, WORDS, n)].tolist())
            fh.write(json.dumps({"text": text, "meta": {"pile_set_name": f"set{i % 5}"}}) + "\n")
    return total


def peak_rss_mib(argv: list[str]) -> tuple[float, float, float]:
    """(peak RSS by wait4, peak RSS by polling, seconds) of a child process, in MiB."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    proc, polled = psutil.Process(child.pid), 0
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        try:
            polled = max(polled, proc.memory_info().rss)
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.02)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"prepare failed (exit {child.returncode}): {' '.join(argv)}")
    return usage.ru_maxrss / 2**10, polled / 2**20, time.perf_counter() - start


def write_hostile(path: Path, megabytes: int, seed: int = 0) -> None:
    """A corpus whose first document is one single line of `megabytes` MB of random words."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{k}" for k in range(WORDS)])
    n = megabytes * 2**20 // 6  # ~6 bytes per word with its space
    with open(path, "w", encoding="utf-8") as fh:  # written in blocks: this process stays small
        fh.write('{"text": "')
        for start in range(0, n, 1 << 20):
            block = words[rng.integers(0, WORDS, min(1 << 20, n - start))].tolist()
            fh.write((" " if start else "") + " ".join(block))
        fh.write('", "meta": {"pile_set_name": "huge"}}\n')
        for i in range(50):
            small = " ".join(words[rng.integers(0, WORDS, 200)].tolist())
            fh.write(json.dumps({"text": small, "meta": {"pile_set_name": f"set{i % 5}"}}) + "\n")


def hostile(megabytes: int) -> None:
    """Peak RSS of prepare, tokenizer train and dedup on one huge single-line document."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_tokenizer(root / "tokenizer.json")
        write_hostile(root / "hostile.jsonl", megabytes)
        cli = [sys.executable, "-m", "pythia_suite"]
        runs = {  # prepare uses the byte-level BPE tokenizer trained first
            "tokenizer train": [
                *cli,
                "tokenizer",
                "train",
                str(root / "hostile.jsonl"),
                "--vocab-size",
                "1024",
                "--out",
                str(root / "bpe.json"),
            ],
            "prepare": [
                *cli,
                "prepare",
                str(root / "hostile.jsonl"),
                "--tokenizer",
                str(root / "bpe.json"),
                "--out",
                str(root / "data"),
                "--seq-length",
                "128",
                "--batch-size",
                "8",
                "--steps",
                "64",
            ],
            "dedup": [
                *cli,
                "dedup",
                str(root / "hostile.jsonl"),
                "--out",
                str(root / "deduped.jsonl"),
            ],
        }
        for name, argv in runs.items():
            peak, polled, seconds = peak_rss_mib(argv)
            print(
                f"{megabytes} MB single-line document: {name:16s} peak RSS {peak:7.1f} MiB "
                f"(polled {polled:.1f}), {seconds:.1f} s (target < 1536 MiB)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small corpus (500 / 5000 docs)")
    parser.add_argument(
        "--hostile",
        type=int,
        nargs="*",
        default=None,
        metavar="MB",
        help="instead: one single-line document of MB megabytes (e.g. 47 100)",
    )
    args = parser.parse_args()
    print_machine()
    if args.hostile is not None:
        for megabytes in args.hostile or [47, 100]:
            hostile(megabytes)
        return
    docs = 500 if args.quick else 5000
    mean_words = 300
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = Path(tmp) / "tokenizer.json"
        write_tokenizer(tokenizer)
        for scale in (1, 10):
            corpus = Path(tmp) / f"corpus{scale}.jsonl"
            words = write_corpus(corpus, docs * scale, mean_words, seed=scale)
            argv = [
                sys.executable,
                "-m",
                "pythia_suite",
                "prepare",
                str(corpus),
                "--tokenizer",
                str(tokenizer),
                "--out",
                str(Path(tmp) / f"data{scale}"),
                "--seq-length",
                "128",
                "--batch-size",
                "8",
                "--steps",
                "256",
            ]
            peak, polled, seconds = peak_rss_mib(argv)
            size = corpus.stat().st_size / 2**20
            results.append(peak)
            print(
                f"{scale:>3}x corpus: {docs * scale:7d} docs, {words:10d} words, "
                f"{size:7.1f} MiB jsonl -> peak RSS {peak:7.1f} MiB (polled {polled:.1f}), "
                f"{seconds:.1f} s"
            )
    print(f"peak RSS ratio 10x / 1x: {results[1] / results[0]:.3f} (target: flat, ~1.0)")


if __name__ == "__main__":
    main()
