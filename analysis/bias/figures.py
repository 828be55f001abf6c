"""Figures: bias against the fraction of training, baseline and intervention on the same axes
(as Pythia's `crowspairs_plots.ipynb` and `winobias.ipynb`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from suite_core.atomic import atomic_path

PANELS = (  # (benchmark, subset, metric, title, neutral line)
    ("crows_pairs", "gender", "pct_stereotype", "CrowS-Pairs (gender): % stereotype", 0.5),
    (
        "crows_pairs",
        "gender",
        "association",
        "CrowS (gender): association, balanced ll(stereo) - ll(anti)",
        0.0,
    ),
    ("winobias", "all", "bias_acc_mc", "WinoBias bias, multiple choice: acc(pro) - acc(anti)", 0.0),
    ("winobias", "all", "bias_em", "WinoBias bias, generation: EM(pro) - EM(anti)", 0.0),
)
from suite_core import DataError


def plot_bias(
    frame: pd.DataFrame,
    out: Path,
    *,
    branch_steps: dict[str, int] | None = None,
    title: str = "",
    overwrite: bool = True,
) -> Path:
    """One panel per available metric of PANELS; one line per run (branches dashed from their
    branch step, with a dotted vertical line there)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    branch_steps = branch_steps or {}
    panels = [
        p
        for p in PANELS
        if (
            (frame["benchmark"] == p[0]) & (frame["subset"] == p[1]) & (frame["metric"] == p[2])
        ).any()
    ]
    if not panels:
        raise DataError("bias figure: no CrowS-Pairs or WinoBias metrics to plot")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, (bench, subset, metric, label, neutral) in zip(axes[0], panels, strict=True):
        part = frame[
            (frame["benchmark"] == bench)
            & (frame["subset"] == subset)
            & (frame["metric"] == metric)
        ]
        for run, rows in part.groupby("run", sort=False):
            rows = rows.sort_values("step")
            start = branch_steps.get(str(run))
            if start is not None:
                rows = rows[rows["step"] >= start]
                ax.axvline(rows["fraction"].min(), color="grey", linestyle=":", linewidth=1)
            ax.plot(
                rows["fraction"],
                rows["value"],
                marker="o",
                markersize=3,
                linestyle="--" if start is not None else "-",
                label=str(run),
            )
        ax.axhline(neutral, color="black", linewidth=0.6)
        ax.set_xlabel("fraction of training")
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(Path(out), overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(out)
