"""Loss curves of the suite's runs, from each run's `metrics.jsonl`: a table and a figure."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from analysis.study import RunSpec
from suite_core import ConfigError
from suite_core.layout import RunLayout

PNG_METADATA = {"Software": None}  # no version string: the same data give the same bytes


def loss_table(runs: list[RunSpec]) -> pd.DataFrame:
    """One row per run and update: run, model, variant, intervention, step, tokens, loss, lr."""
    rows = []
    for run in runs:
        path = RunLayout(run.path).metrics
        if not path.is_file() and (Path(run.path) / "fetch.json").is_file():
            continue  # fetched checkpoints (suite/external.py): no training log
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}:{number}: malformed JSON ({exc.msg})") from None
                rows.append(
                    {
                        "run": run.name,
                        "model": run.model,
                        "variant": run.variant,
                        "intervention": run.intervention or "",
                        "step": obj["step"],
                        "tokens": obj.get("tokens"),
                        "loss": obj["loss"],
                        "lr": obj.get("lr"),
                    }
                )
    return pd.DataFrame(
        rows, columns=["run", "model", "variant", "intervention", "step", "tokens", "loss", "lr"]
    )


def loss_figure(table: pd.DataFrame, runs: list[RunSpec], out: Path) -> Path:
    """One panel per size (smallest first), one line per variant; branches dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m, _ in sorted({(r.model, r.n_params) for r in runs}, key=lambda x: x[1])]
    params = {r.model: r.n_params for r in runs}
    fig, axes = plt.subplots(
        1, len(models), figsize=(5.2 * len(models), 3.6), squeeze=False, sharey=True
    )
    colors = {"standard": "tab:blue", "deduped": "tab:orange"}
    for ax, model in zip(axes[0], models):
        for run in (r for r in runs if r.model == model):
            rows = table[table["run"] == run.name]
            smooth = rows["loss"].rolling(max(1, len(rows) // 40), min_periods=1).mean()
            label = run.variant + (
                f" + {run.intervention} from step {run.branch_step}" if run.intervention else ""
            )
            ax.plot(
                rows["step"],
                smooth,
                label=label,
                color=colors.get(run.variant, "tab:gray"),
                linestyle="--" if run.intervention else "-",
                linewidth=1.4,
            )
        ax.set_title(f"{model} ({params[model] / 1e6:.2f}M parameters)")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("training loss (nats/token)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, metadata=PNG_METADATA)
    plt.close(fig)
    return out
