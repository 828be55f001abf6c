"""Training throughput: our trainer's step vs transformers' GPTNeoXForCausalLM in a plain loop,
in float32 and in bf16 (the precision axis).

For `pythia-micro` and `pythia-mini` (vocabulary 4096), all models start from the same weights
(ours, loaded into the HF model built from `hf_config`) and train on the same random batches
with AdamW and clip 1.0, at the same torch thread count; ours runs as the trainer runs it
(deterministic algorithms on, `train_step` with the state's precision). Four contestants:
ours fp32, HF fp32, ours bf16 (`--precision bf16`: autocast, float32 master weights) and HF
under the same `torch.autocast(bfloat16)`. Steps rotate through them (and which goes first) so
that a busy machine slows all alike; tokens/s are taken from the median step time. Prints
tokens/s, the ratios ours/HF in each precision (target >= 1.2x), ours bf16 / ours fp32
(target >= 2x) and the model FLOPs utilization: (6 N + 12 layers d T) FLOPs per token (PaLM's
count; N = parameters without the input embedding) against a measured matmul peak of the same
precision (float32 for fp32, bfloat16 for bf16).

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
from machine import print_machine

from pythia_suite.training.family import (
    EXAMPLE_VOCAB,
    ModelConfig,
    get_row,
    hf_config,
    param_counts,
)
from pythia_suite.training.model import GPTNeoX, init_weights
from pythia_suite.training.optim import OptimConfig
from pythia_suite.training.precision import autocast
from pythia_suite.training.trainer import deterministic, new_state, train_step

CONTESTANTS = ("ours", "hf", "ours_bf16", "hf_bf16")
FP32_ONLY = ("ours", "hf")


def hf_model(cfg: ModelConfig, ours: GPTNeoX) -> torch.nn.Module:
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    hf = GPTNeoXForCausalLM(GPTNeoXConfig(**hf_config(cfg)))
    state = {
        ("lm_head.weight" if k == "embed_out.weight" else k): v
        for k, v in ours.state_dict().items()
    }
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and all("rotary" in k or "inv_freq" in k for k in missing), (
        missing,
        unexpected,
    )
    return hf.train()


def hf_step(
    hf: torch.nn.Module,
    opt: torch.optim.Optimizer,
    rows: np.ndarray,
    clip: float,
    precision: str = "fp32",
) -> float:
    """The plain loop: forward (under autocast for bf16), cross-entropy, backward, clip, AdamW."""
    x = torch.from_numpy(rows.astype(np.int64))
    opt.zero_grad(set_to_none=True)
    with autocast(precision):
        logits = hf(input_ids=x[:, :-1]).logits
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(hf.parameters(), clip)
    opt.step()
    return float(loss.detach())


def bench_row(
    name: str,
    *,
    batch: int,
    seq: int | None,
    steps: int,
    warmup: int,
    threads: int,
    contestants: tuple[str, ...] = CONTESTANTS,
) -> dict:
    torch.set_num_threads(threads)
    cfg = get_row(name).with_vocab(EXAMPLE_VOCAB)
    cfg = cfg.with_seq_length(seq or cfg.seq_length)
    T = cfg.seq_length
    rng = np.random.default_rng(0)
    batches = [
        rng.integers(0, EXAMPLE_VOCAB, size=(batch, T + 1), dtype=np.int64)
        for _ in range(warmup + steps)
    ]
    optim = OptimConfig(lr=cfg.lr)
    ours, hf, opts = {}, {}, {}
    precisions = ("fp32", "bf16") if "ours_bf16" in contestants else ("fp32",)
    for precision in precisions:
        model = GPTNeoX(cfg)
        init_weights(model, cfg, seed=cfg.init_seed)
        ours[precision] = new_state(model, optim, precision)
        hf[precision] = hf_model(cfg, model)
        opts[precision] = torch.optim.AdamW(
            hf[precision].parameters(),
            lr=cfg.lr,
            betas=optim.betas,
            eps=optim.eps,
            weight_decay=optim.weight_decay,
        )
    times: dict[str, list[float]] = {c: [] for c in contestants}
    losses: dict[str, float] = {}
    for i, rows in enumerate(batches):
        # rotate which contestant goes first, so that none always runs right after another
        k = i % len(contestants)
        for who in contestants[k:] + contestants[:k]:
            precision = "bf16" if who.endswith("bf16") else "fp32"
            t0 = time.perf_counter()
            if who.startswith("ours"):
                with deterministic(threads, cfg.init_seed):  # as the trainer runs it
                    loss, _ = train_step(
                        ours[precision], rows, lr=cfg.lr, grad_clip=optim.grad_clip
                    )
                losses[who] = float(loss)
            else:
                losses[who] = hf_step(
                    hf[precision], opts[precision], rows, optim.grad_clip, precision
                )
            if i >= warmup:
                times[who].append(time.perf_counter() - t0)
        if i == 0:
            assert abs(losses["ours"] - losses["hf"]) < 1e-4 * losses["hf"], losses
            for who in set(contestants) & {"ours_bf16", "hf_bf16"}:
                assert abs(losses[who] - losses["hf"]) < 2e-2 * losses["hf"], losses
    total, _ = param_counts(cfg)
    n = total - cfg.vocab_size * cfg.hidden_size  # without the input embedding (a lookup)
    flops_per_token = 6 * n + 12 * cfg.num_layers * cfg.hidden_size * T
    tokens = batch * T  # per step; the median step time is robust to a busy moment
    return {
        "name": name,
        "tokens_per_step": tokens,
        "flops_per_token": flops_per_token,
        **{c: tokens / statistics.median(times[c]) for c in contestants},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes (batch 2, seq 64, 8 steps)"
    )
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch threads for both"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps per model (default 20; --quick 8)"
    )
    parser.add_argument(
        "--models", nargs="+", default=["pythia-micro", "pythia-mini"], metavar="ROW"
    )
    args = parser.parse_args()
    batch, seq, steps, warmup = (2, 64, 8, 2) if args.quick else (8, None, 20, 3)
    steps = args.steps or steps
    machine = print_machine(args.threads)
    peak, peak_bf16 = machine.peak_fp32, machine.peak_bf16
    contestants = CONTESTANTS if machine.bf16_usable else FP32_ONLY
    if not machine.bf16_usable:
        print(machine.skip_reason())
    print(
        f"{'model':<14}{'tok/step':>9}{'precision':>10}{'ours tok/s':>12}{'HF tok/s':>11}"
        f"{'ours/HF':>8}{'MFU ours':>10}{'MFU HF':>8}"
    )
    for name in args.models:
        r = bench_row(
            name,
            batch=batch,
            seq=seq,
            steps=steps,
            warmup=warmup,
            threads=args.threads,
            contestants=contestants,
        )
        rows = [("fp32", "", peak), ("bf16", "_bf16", peak_bf16)][: len(contestants) // 2]
        for precision, suffix, p in rows:
            o, h = r["ours" + suffix], r["hf" + suffix]
            print(
                f"{r['name']:<14}{r['tokens_per_step']:>9}{precision:>10}{o:>12.0f}{h:>11.0f}"
                f"{o / h:>7.2f}x{o * r['flops_per_token'] / p:>10.1%}{h * r['flops_per_token'] / p:>8.1%}"
            )
        if machine.bf16_usable:
            print(
                f"{r['name']:<14} ours bf16 / ours fp32 = {r['ours_bf16'] / r['ours']:.2f}x, "
                f"HF bf16 / HF fp32 = {r['hf_bf16'] / r['hf']:.2f}x"
            )
    print("targets: ours / HF >= 1.2x in each precision; ours bf16 / ours fp32 >= 2x")


if __name__ == "__main__":
    main()
