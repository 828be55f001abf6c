"""The `ledger` stages: one per run, `<suite>/ledger/<run>.h5` + `.csv` (analysis.ledger),
when the corpus has a truth.json (a user's corpus without one has nothing planted)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from pythia_suite.suite.config import SuiteConfig
from pythia_suite.suite.layout import Layout, truth_file
from pythia_suite.suite.runner import Inputs, Stage
from suite_core.hashing import sha256_file

if TYPE_CHECKING:
    from pythia_suite.suite.plan import PlannedRun

LEDGER_DIR = "ledger"


def ledger_dir(layout: Layout) -> Path:
    return layout.root / LEDGER_DIR


def write_ledger(run: Path, truth: Path, out: Path, resume: bool, inputs: Inputs) -> None:
    """The stage's work (it starts over whether or not it was interrupted)."""
    from analysis.ledger import build_ledger

    del resume, inputs
    build_ledger(run, truth).write(out)


def _digest(csv: Path) -> dict[str, str]:
    return {csv.name: sha256_file(csv)}


def ledger_stages(config: SuiteConfig, layout: Layout, runs: list[PlannedRun]) -> list[Stage]:
    """A `ledger-<run>` stage per run (none without a truth.json)."""
    truth = truth_file(config, layout)
    if truth is None:
        return []
    out = ledger_dir(layout)
    return [
        Stage(
            slug=f"ledger-{r.name}",
            title=f"ledger {r.name}",
            kind="ledger",
            config={
                "steps": config.data.steps,
                "branch": config.section("branch") if r.branch_of else None,
            },
            deps=("corpus", f"prepare-{r.variant}"),  # the data, the truth and the transform
            outputs=(out / f"{r.name}.h5", out / f"{r.name}.csv"),
            run=partial(write_ledger, r.path, truth, out),
            digest=partial(_digest, out / f"{r.name}.csv"),
            estimate=1.0 + config.data.steps * config.data.batch_size * 2e-5,
        )
        for r in runs
    ]
