"""Figures: accuracy against log-binned term frequency, one line per checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from analysis.term_frequency.metrics import binned_accuracy, log_bins
from suite_core import DataError
from suite_core.atomic import atomic_path

if TYPE_CHECKING:
    import pandas as pd


def accuracy_vs_frequency(
    joined: pd.DataFrame,
    *,
    task: str,
    shots: int,
    out: Path,
    n_bins: int = 6,
    overwrite: bool = False,
) -> Path:
    """PNG: mean accuracy per log-spaced frequency bin (bins from the data's range of counts
    over all checkpoints), one line per checkpoint step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    part = joined[(joined["task"] == task) & (joined["shots"] == shots)]
    if part.empty:
        raise DataError(f"{task}, {shots}-shot: no accuracy to plot")
    edges = log_bins(part["count"].to_numpy(), n_bins)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    steps = sorted(part["step"].unique())
    cmap = plt.get_cmap("viridis")
    for i, step in enumerate(steps):
        g = part[part["step"] == step]
        x, y, _ = binned_accuracy(g["accuracy"].to_numpy(), g["count"].to_numpy(), edges)
        ax.plot(x, y, marker="o", color=cmap(i / max(1, len(steps) - 1)), label=f"step {step}")
    ax.set_xscale("log")
    ax.set_xlabel("term count in the rows trained on (log bins)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{task}, {shots}-shot: accuracy vs term frequency")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_path(Path(out), overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
    return Path(out)
