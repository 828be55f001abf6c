"""Matplotlib figures of the memorization study (PNG files; headless backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from analysis.memorization.metrics import PoissonSpread
from analysis.memorization.profiles import Profiles


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
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
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(table["predictor_step"], table["precision"], marker="o", label="precision")
    ax.plot(table["predictor_step"], table["recall"], marker="o", label="recall")
    ax.set_xlabel("predictor checkpoint step (target: final)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    ax.set_title("Predictability of final memorization")
    return _save(fig, path)


def poisson_figure(spread: PoissonSpread, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
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
