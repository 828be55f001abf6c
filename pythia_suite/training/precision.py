"""Training precision: float32, bfloat16 autocast, or float16 autocast with dynamic loss scaling.

Parameters, gradients and the AdamW state stay float32 in every precision ("master weights"),
so checkpoints hold float32 weights whatever the precision. `bf16` and `fp16` run the forward
pass under `torch.autocast`: matmuls (linear, attention, the fused output layer) take their
inputs in the low precision and accumulate in float32; LayerNorm, softmax and the loss stay
float32. `fp16` adds DeepSpeed's `DynamicLossScaler` with the settings of Pythia's GPT-NeoX
configs (initial scale 2^12, window 1000, hysteresis 2, minimum 1): the loss is multiplied by
the scale before backward, the gradients divided by it after; a step whose gradients overflow
(a non-finite norm) is skipped, does not advance the learning-rate schedule, and lowers the
scale (after `hysteresis` overflows); `window` clean steps since the last overflow double it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import torch

from suite_core import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def fp16_supported(device: str) -> bool:
    """Whether `device` computes float16 matmuls natively (CPU: AVX512-FP16 / AMX-FP16 in oneDNN).

    A CPU without them computes float16 through a scalar reference path (measured here: 0.45
    GFLOP/s against 25 for float32), which is no way to train.
    """
    kind = torch.device(device).type
    if kind == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    if kind == "cuda":
        return torch.cuda.is_available()
    return False


def bf16_supported(device: str) -> bool:
    kind = torch.device(device).type
    if kind == "cpu":
        return True  # oneDNN's bf16 kernels where the CPU has AVX512-BF16 / AMX, else emulated
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return False


def check_precision(precision: str, device: str = "cpu") -> None:
    """`ValueError` (naming `--precision`) for an unknown precision or one `device` lacks."""
    if precision not in PRECISIONS:
        raise ConfigError(
            f"--precision: unknown precision {precision!r} (known: {', '.join(PRECISIONS)})"
        )
    if precision == "fp16" and not fp16_supported(device):
        raise ConfigError(
            f"--precision: fp16 needs native float16 arithmetic, which device {device!r} lacks "
            "(no AVX512-FP16/AMX-FP16 on this CPU); use bf16 or fp32"
        )
    if precision == "bf16" and not bf16_supported(device):
        raise ConfigError(f"--precision: device {device!r} has no bfloat16 support; use fp32")


def autocast(precision: str, device: str = "cpu") -> AbstractContextManager[Any]:
    """The forward pass's context: nothing for fp32, `torch.autocast` for bf16 / fp16."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=DTYPES[precision])


@dataclass(kw_only=True)
class LossScaler:
    """DeepSpeed's `DynamicLossScaler` (consecutive_hysteresis off), defaults from Pythia's configs."""

    scale: float = 2.0**12  # initial_scale_power 12
    window: int = 1000  # loss_scale_window
    hysteresis: int = 2  # delayed_shift
    min_scale: float = 1.0  # min_loss_scale
    factor: float = 2.0
    cur_hysteresis: int = 2
    cur_iter: int = 0
    last_overflow_iter: int = -1

    def update(self, overflow: bool) -> None:
        """After a step: halve on overflow (once hysteresis is used up), double after `window` clean steps."""
        if overflow:
            if self.hysteresis == 1 or self.cur_hysteresis == 1:
                self.scale = max(self.scale / self.factor, self.min_scale)
            else:
                self.cur_hysteresis -= 1
            self.last_overflow_iter = self.cur_iter
        elif (self.cur_iter - self.last_overflow_iter) % self.window == 0:
            self.cur_hysteresis = self.hysteresis
            self.scale *= self.factor
        self.cur_iter += 1

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LossScaler:
        return cls(**state)
