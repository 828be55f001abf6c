"""Matplotlib figures of the memorization study (PNG files; headless backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.memorization.metrics import PoissonSpread
from analysis.memorization.profiles import Profiles

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # titles naming runs are never clipped
    plt.close(fig)
    return path


def fraction_figure(fractions: dict[str, pd.DataFrame], path: Path) -> Path:
    """Memorized fraction of seen rows against step, one line per run (dashed: deduped)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, frame in fractions.items():
        style = "--" if "deduped" in name else "-"
        ax.plot(frame["step"], frame["mean_score_seen"], style, marker="o", ms=3, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("mean memorization score (seen rows)")
    ax.set_title("Memorization against training step")
    ax.legend(fontsize=7)
    return _save(fig, path)


def canary_figure(table: pd.DataFrame, path: Path) -> Path:
    """Canary extraction score and log-likelihood against repetition count (per run)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, frame in table.groupby("run"):
        agg = frame.groupby("count")[["score", "target_loglik"]].mean()
        axes[0].plot(agg.index, agg["score"], marker="o", label=name)
        axes[1].plot(agg.index, agg["target_loglik"], marker="o", label=name)
    for ax, label in zip(axes, ("extraction score", "canary log-likelihood / token")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("repetitions in the corpus")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    fig.suptitle("Canaries: more repetitions, more memorized")
    return _save(fig, path)


def duplicates_figure(table: pd.DataFrame, path: Path) -> Path:
    """Near-duplicate cluster text: log-likelihood per run (standard vs deduped)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    agg = table.groupby("run")["target_loglik"].agg(["mean", "sem"])
    ax.bar(agg.index, agg["mean"], yerr=agg["sem"], color="tab:blue", alpha=0.7)
    ax.set_ylabel("cluster text log-likelihood / token")
    ax.set_title("Near-duplicate text: standard vs deduped")
    ax.tick_params(axis="x", labelsize=7, rotation=20)
    return _save(fig, path)


def predictability_figure(table: pd.DataFrame, path: Path) -> Path:
    """Precision and recall of each earlier checkpoint for the final one, per threshold."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for (label, part), color in zip(table.groupby("label", sort=False), COLORS, strict=False):
        ax.plot(
            part["predictor_step"],
            part["precision"],
            "-o",
            color=color,
            ms=3,
            label=f"precision ({label})",
        )
        ax.plot(
            part["predictor_step"],
            part["recall"],
            "--s",
            color=color,
            ms=3,
            label=f"recall ({label})",
        )
    ax.set_xlabel("predictor checkpoint step (target: final)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    ax.set_title("Predictability of final memorization")
    return _save(fig, path)


def threshold_figure(table: pd.DataFrame, path: Path) -> Path:
    """Fraction of seen rows at or above each labelled score threshold against step, per run."""
    labels = list(dict.fromkeys(table["label"]))
    fig, axes = plt.subplots(1, len(labels), figsize=(3.4 * len(labels), 3.4), squeeze=False)
    for ax, label in zip(axes[0], labels, strict=True):
        for name, frame in table[table["label"] == label].groupby("run", sort=False):
            style = "--" if "deduped" in str(name) else "-"
            ax.plot(frame["step"], frame["memorized_seen"], style, marker="o", ms=3, label=name)
        ax.set_title(label)
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("fraction of seen rows")
    axes[0][0].legend(fontsize=6)
    fig.suptitle("Memorized fraction: exact (Pythia) and at lower score thresholds")
    return _save(fig, path)


def distribution_figure(res_scores: dict[int, np.ndarray], path: Path, title: str) -> Path:
    """Box plot of the seen rows' memorization scores at each checkpoint."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    steps = list(res_scores)
    ax.boxplot([res_scores[s] for s in steps], positions=range(len(steps)), widths=0.6)
    ax.set_xticks(range(len(steps)), [str(s) for s in steps], fontsize=7, rotation=45)
    ax.set_xlabel("checkpoint step")
    ax.set_ylabel("memorization score (seen rows)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    return _save(fig, path)


def poisson_figure(spread: PoissonSpread, path: Path, label: str = "") -> Path:
    """Memorized rows per block of training order, and their Q-Q plot against a Poisson."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    if label:
        fig.suptitle(f"Spread over training order of rows memorized ({label})")
    axes[0].bar(range(len(spread.counts)), spread.counts, color="tab:gray")
    axes[0].axhline(spread.mean, color="tab:red", label=f"mean {spread.mean:.2f}")
    axes[0].set_xlabel("block of training order")
    axes[0].set_ylabel("memorized rows")
    axes[0].legend()
    axes[1].plot(spread.qq["poisson"], spread.qq["observed"], "o")
    top = max(float(spread.qq["poisson"].max()), float(spread.qq["observed"].max()), 1.0)
    axes[1].plot([0, top], [0, top], "k--", lw=1)
    axes[1].set_xlabel("Poisson quantile")
    axes[1].set_ylabel("observed quantile")
    axes[1].set_title(f"KS {spread.ks:.3f} (p {spread.p_value:.2f})")
    return _save(fig, path)


def profiles_figure(prof: Profiles, path: Path) -> Path:
    """ATT by event time (checkpoints since treatment) with its confidence band."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ev = prof.event
    ax.fill_between(ev["event"], ev["lower"], ev["upper"], alpha=0.3)
    ax.plot(ev["event"], ev["att"], marker="o")
    ax.axhline(0, color="k", lw=0.8)
    ax.axvline(0, color="tab:red", lw=0.8, ls="--")
    ax.set_xlabel("checkpoints since the row was trained on (event time)")
    ax.set_ylabel("ATT on log-likelihood / token")
    ax.set_title("Memorization profile (ATT by event time, 95% band)")
    return _save(fig, path)
