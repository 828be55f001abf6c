"""Training throughput: our trainer's step vs transformers' GPTNeoXForCausalLM in a plain loop.

For `pythia-micro` and `pythia-mini` (vocabulary 4096), both models start from the same weights
(ours, loaded into the HF model built from `hf_config`) and train on the same random batches
with AdamW and clip 1.0, at the same torch thread count; ours runs as the trainer runs it
(deterministic algorithms on). Steps alternate between the two (and which goes first) so
that a busy machine slows both alike; tokens/s are taken from the median step time. Prints
tokens/s of each, the ratio (target >= 1.2x) and
the model FLOPs utilization of ours: (6 N + 12 layers d T) FLOPs per token (PaLM's count;
N = parameters without the input embedding) against a measured float32 matmul peak.

    python bench/bench_train.py            # full size: batch 8 at the rows' context length
    python bench/bench_train.py --quick    # small: batch 2, seq 64, few steps
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from pythia_suite.training.family import EXAMPLE_VOCAB, ModelConfig, get_row, hf_config, param_counts
from pythia_suite.training.model import GPTNeoX, init_weights
from pythia_suite.training.optim import OptimConfig
from pythia_suite.training.trainer import deterministic, new_state, train_step


def matmul_peak(threads: int, n: int = 2048, reps: int = 5) -> float:
    """Best float32 matmul FLOP/s of this machine at `threads` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def hf_model(cfg: ModelConfig, ours: GPTNeoX) -> torch.nn.Module:
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    hf = GPTNeoXForCausalLM(GPTNeoXConfig(**hf_config(cfg)))
    state = {("lm_head.weight" if k == "embed_out.weight" else k): v for k, v in ours.state_dict().items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and all("rotary" in k or "inv_freq" in k for k in missing), (missing, unexpected)
    return hf.train()


def hf_step(hf: torch.nn.Module, opt: torch.optim.Optimizer, rows: np.ndarray, clip: float) -> float:
    """The plain loop: forward, cross-entropy, backward, clip, AdamW."""
    x = torch.from_numpy(rows.astype(np.int64))
    opt.zero_grad(set_to_none=True)
    logits = hf(input_ids=x[:, :-1]).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(hf.parameters(), clip)
    opt.step()
    return float(loss.detach())


def bench_row(name: str, *, batch: int, seq: int | None, steps: int, warmup: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    cfg = get_row(name).with_vocab(EXAMPLE_VOCAB)
    cfg = cfg.with_seq_length(seq or cfg.seq_length)
    T = cfg.seq_length
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, EXAMPLE_VOCAB, size=(batch, T + 1), dtype=np.int64) for _ in range(warmup + steps)]
    ours = GPTNeoX(cfg)
    init_weights(ours, cfg, seed=cfg.init_seed)
    hf = hf_model(cfg, ours)
    optim = OptimConfig(lr=cfg.lr)
    state = new_state(ours, optim)
    hf_opt = torch.optim.AdamW(hf.parameters(), lr=cfg.lr, betas=optim.betas, eps=optim.eps, weight_decay=optim.weight_decay)
    times: dict[str, list[float]] = {"ours": [], "hf": []}
    for i, rows in enumerate(batches):
        # alternate which model goes first, so that neither always runs right after the other
        for who in ("ours", "hf") if i % 2 == 0 else ("hf", "ours"):
            t0 = time.perf_counter()
            if who == "ours":
                with deterministic(threads, cfg.init_seed):  # as the trainer runs it
                    loss_ours, _ = train_step(state, rows, lr=cfg.lr, grad_clip=optim.grad_clip)
            else:
                loss_hf = hf_step(hf, hf_opt, rows, optim.grad_clip)
            if i >= warmup:
                times[who].append(time.perf_counter() - t0)
        if i == 0:
            assert abs(float(loss_ours) - loss_hf) < 1e-4 * loss_hf, (float(loss_ours), loss_hf)
    tokens = batch * T  # per step; the median step time is robust to a busy moment
    total, _ = param_counts(cfg)
    n = total - cfg.vocab_size * cfg.hidden_size  # without the input embedding (a lookup)
    flops_per_token = 6 * n + 12 * cfg.num_layers * cfg.hidden_size * T
    return {
        "name": name, "tokens_per_step": batch * T, "ours": tokens / statistics.median(times["ours"]),
        "hf": tokens / statistics.median(times["hf"]),
        "flops_per_token": flops_per_token,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (batch 2, seq 64, 8 steps)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads for both")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per model (default 20; --quick 8)")
    parser.add_argument("--models", nargs="+", default=["pythia-micro", "pythia-mini"], metavar="ROW")
    args = parser.parse_args()
    batch, seq, steps, warmup = (2, 64, 8, 2) if args.quick else (8, None, 20, 3)
    steps = args.steps or steps
    peak = matmul_peak(args.threads)
    print(f"threads {args.threads}; float32 matmul peak {peak / 1e9:.1f} GFLOP/s")
    print(f"{'model':<14}{'tok/step':>9}{'ours tok/s':>12}{'HF tok/s':>11}{'ratio':>7}{'MFU ours':>10}{'MFU HF':>8}")
    for name in args.models:
        r = bench_row(name, batch=batch, seq=seq, steps=steps, warmup=warmup, threads=args.threads)
        mfu_ours = r["ours"] * r["flops_per_token"] / peak
        mfu_hf = r["hf"] * r["flops_per_token"] / peak
        print(f"{r['name']:<14}{r['tokens_per_step']:>9}{r['ours']:>12.0f}{r['hf']:>11.0f}"
              f"{r['ours'] / r['hf']:>6.2f}x{mfu_ours:>10.1%}{mfu_hf:>8.1%}")  # fmt: skip
    print("target: ours / HF >= 1.2x")


if __name__ == "__main__":
    main()
