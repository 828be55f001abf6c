"""What machine a benchmark ran on: CPU model and features, and measured matmul peaks.

Every benchmark prints this first, so its ratios can be read against the hardware (the
project's machines are AMD EPYCs that differ: some have AVX-512 with BF16, some only AVX2,
where bfloat16 matmul is emulated at well under 1 GFLOP/s). The bfloat16 peak is probed on a
small matrix first, so a machine without native bf16 costs a fraction of a second to detect,
and `Machine.bf16_usable` tells a benchmark to skip (and say why) a bf16 contestant that would
run for hours.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

FEATURES = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")
# Native bf16 (AVX512-BF16) runs near or above the float32 peak; emulated bf16 (AVX2 only) was
# measured at 0.3 GFLOP/s against 75 for float32 (0.004x). A tenth separates the two even on a
# loaded machine.
BF16_USABLE = 0.1


@dataclass(frozen=True, kw_only=True)
class Machine:
    model: str
    cores: int
    features: tuple[str, ...]  # those of FEATURES the CPU has
    threads: int
    peak_fp32: float  # FLOP/s, 2048^2 float32 matmul
    peak_bf16: float  # FLOP/s, bfloat16 matmul (2048^2; the 512^2 probe if emulated)

    @property
    def bf16_usable(self) -> bool:
        return self.peak_bf16 >= BF16_USABLE * self.peak_fp32

    def skip_reason(self) -> str:
        native = {"avx512_bf16", "amx_bf16"} & set(self.features)
        why = "emulated" if not native else f"slow despite {', '.join(sorted(native))}"
        return (
            f"bf16 skipped: bfloat16 matmul runs at {self.peak_bf16 / 1e9:.2f} GFLOP/s against "
            f"{self.peak_fp32 / 1e9:.1f} for float32 on this CPU ({why}); timing it would take hours"
        )

    def describe(self) -> str:
        return (
            f"machine: {self.model}, {self.cores} cores, features "
            f"{' '.join(self.features) or 'none of ' + ','.join(FEATURES)}; torch {torch.__version__}, "
            f"{self.threads} threads; matmul peak float32 {self.peak_fp32 / 1e9:.1f} GFLOP/s, "
            f"bfloat16 {self.peak_bf16 / 1e9:.1f} GFLOP/s ({self.peak_bf16 / self.peak_fp32:.2f}x)"
        )


def cpu_info() -> tuple[str, tuple[str, ...]]:
    """(model name, the FEATURES flags present) from /proc/cpuinfo (platform data elsewhere)."""
    info = Path("/proc/cpuinfo")
    if not info.exists():
        return platform.processor() or platform.machine(), ()
    model, flags = platform.machine(), set()
    for line in info.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    return model, tuple(f for f in FEATURES if f in flags)


def matmul_peak(threads: int, n: int, dtype: torch.dtype = torch.float32, reps: int = 5) -> float:
    """Best `dtype` matmul FLOP/s at `threads` threads on n x n matrices."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def measure(threads: int | None = None) -> Machine:
    threads = threads or torch.get_num_threads()
    model, features = cpu_info()
    fp32 = matmul_peak(threads, 2048)
    bf16 = matmul_peak(threads, 512, torch.bfloat16, reps=2)  # a probe: ~1 s even if emulated
    if bf16 >= BF16_USABLE * fp32:  # native: measure it properly
        bf16 = matmul_peak(threads, 2048, torch.bfloat16)
    return Machine(
        model=model,
        cores=os.cpu_count() or 1,
        features=features,
        threads=threads,
        peak_fp32=fp32,
        peak_bf16=bf16,
    )


def print_machine(threads: int | None = None) -> Machine:
    machine = measure(threads)
    print(machine.describe(), flush=True)
    return machine
