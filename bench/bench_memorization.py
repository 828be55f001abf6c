"""Memorization scoring: the two-path score vs generate()-based scoring (as Pythia's script).

Same rows, batch 128, float32. The peer: `generate(do_sample=False)` for the 32-token greedy
continuation of every row, plus one forward pass for the per-row log-likelihood and token
accuracy the results file also holds. Scores must be identical. Also prints rows/s against
the FLOP bound at this machine's measured float32 matmul peak (2 x params x tokens per row).

    python bench/bench_memorization.py RUN [--step N] [--rows 512] [--k 32] [--target 32]

Two row sets: the run's training rows (what the model saw) and rows the model is made to
memorize (its own greedy continuations), the two ends of the speed-up.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from machine import print_machine

from analysis.memorization.score import ScoreConfig, score_rows, teacher_forced
from analysis.sources import open_checkpoints, open_rows

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


@torch.no_grad()
def generate_scores(model, rows: np.ndarray, k: int, t: int, batch: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    model.generation_config.eos_token_id = None
    out = []
    for lo in range(0, len(rows), batch):
        x = torch.from_numpy(rows[lo : lo + batch])
        g = model.generate(
            x[:, :k],
            attention_mask=torch.ones_like(x[:, :k]),
            do_sample=False,
            max_new_tokens=t,
            pad_token_id=1,
        )
        teacher_forced(model, x)  # the log-likelihood / token accuracy pass
        out.append((g[:, k:] == x[:, k : k + t]).float().mean(1).numpy())
    return np.concatenate(out)


def ours(model, rows: np.ndarray, cfg: ScoreConfig, batch: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.concatenate(
        [score_rows(model, rows[lo : lo + batch], cfg).scores for lo in range(0, len(rows), batch)]
    )


def main() -> None:
    machine = print_machine()
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("run")
    p.add_argument("--step", type=int, default=None)
    p.add_argument("--rows", type=int, default=512)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--target", type=int, default=32)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    ck = open_checkpoints(args.run)
    model = ck.load(args.step if args.step is not None else ck.steps[-1])
    data = open_rows(args.run)
    rows = data.rows(0, min(args.rows, data.num_rows)).astype(np.int64)
    cfg = ScoreConfig(k=args.k, target=args.target)
    k, t = args.k, args.target
    with torch.no_grad():  # rows made to be memorized: the model's own greedy continuation
        model.generation_config.eos_token_id = None
        memo = rows.copy()
        for lo in range(0, len(rows), args.batch):
            x = torch.from_numpy(rows[lo : lo + args.batch, :k])
            memo[lo : lo + args.batch, k : k + t] = model.generate(
                x,
                attention_mask=torch.ones_like(x),
                do_sample=False,
                max_new_tokens=t,
                pad_token_id=1,
            )[:, k:].numpy()
    peak = machine.peak_fp32
    n_params = sum(p.numel() for p in model.parameters())
    flops_row = 2 * n_params * (rows.shape[1] - 1)  # one teacher-forced pass per row
    print(
        f"model {ck.name}: {n_params:,} parameters; rows of {rows.shape[1]} tokens; "
        f"batch {args.batch}; float32; {torch.get_num_threads()} threads"
    )
    print(
        f"measured matmul peak: {peak / 1e9:.1f} GFLOP/s; FLOP bound {peak / flops_row:,.0f} rows/s"
    )
    for label, rs in (("training rows", rows), ("memorized rows", memo)):
        a = b = None
        ta, tb = [], []
        for _ in range(args.repeat):  # interleaved, best of
            t0 = time.perf_counter()
            a = ours(model, rs, cfg, args.batch)
            ta.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            b = generate_scores(model, rs, k, t, args.batch)
            tb.append(time.perf_counter() - t0)
        assert a is not None and b is not None
        same = bool(np.array_equal(a, b.astype(np.float32)))
        ra, rb = len(rs) / min(ta), len(rs) / min(tb)
        print(
            f"{label}: two-path {ra:,.0f} rows/s, generate() {rb:,.0f} rows/s, "
            f"ratio {ra / rb:.2f}x, identical scores: {same}, mean score {a.mean():.3f}, "
            f"{ra / (peak / flops_row):.1%} of the FLOP bound"
        )


if __name__ == "__main__":
    main()
