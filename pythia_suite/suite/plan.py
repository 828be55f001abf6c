"""The runs a suite config trains: every model on every variant, then the intervention branch."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from analysis.study import RunSpec
from checkpoints_index.schedule import checkpoint_steps
from pythia_suite.suite.config import SuiteConfig
from pythia_suite.suite.layout import Layout, run_name
from suite_core import ConfigError
from suite_core.records import Manifest


@dataclasses.dataclass(frozen=True, kw_only=True)
class PlannedRun:
    """A run the suite trains (the RunSpec the studies get, before training)."""

    name: str
    model: str
    variant: str
    path: Path
    branch_of: str | None = None
    branch_step: int | None = None
    intervention: str | None = None

    def spec(self, layout: Layout) -> RunSpec:
        return RunSpec(
            name=self.name,
            path=self.path,
            model=self.model,
            n_params=run_params(self.model, layout.data(self.variant)),
            variant=self.variant,
            branch_of=self.branch_of,
            branch_step=self.branch_step,
            intervention=self.intervention,
        )


def run_params(model: str, data_dir: Path) -> int:
    """Total parameters of `model` at the vocabulary of the prepared data."""
    from pythia_suite.training.family import get_row, param_counts

    return param_counts(get_row(model).with_vocab(Manifest.read(data_dir).vocab_size))[0]


def checkpoint_rule(config: SuiteConfig, model: str) -> str:
    from pythia_suite.training.family import get_row
    from pythia_suite.training.setup import default_rule

    return config.train.checkpoints or default_rule(get_row(model), config.data.steps)


def plan_runs(config: SuiteConfig, layout: Layout, source: str) -> list[PlannedRun]:
    """Every model on every variant, then the branch (when enabled)."""
    runs = [
        PlannedRun(name=run_name(m, v), model=m, variant=v, path=layout.run(run_name(m, v)))
        for m in config.train.models
        for v in config.train.variants
    ]
    b = config.branch
    if not b.enabled:
        return runs
    model = b.model or config.train.models[0]
    steps = checkpoint_steps(checkpoint_rule(config, model), config.data.steps)
    step = (
        b.step if b.step is not None else max(s for s in steps if s <= config.data.steps * 3 // 4)
    )
    if step not in steps:
        raise ConfigError(
            f"{source}: field 'branch.step': {step} is not a checkpoint of the "
            f"parent run (its checkpoints: {steps})"
        )
    name = run_name(model, b.variant, b.intervention)
    runs.append(
        PlannedRun(
            name=name,
            model=model,
            variant=b.variant,
            path=layout.run(name),
            branch_of=run_name(model, b.variant),
            branch_step=step,
            intervention=b.intervention,
        )
    )
    return runs
