"""The suite's stage graph: corpus, dedup, tokenizer, prepare x variants, train sizes x variants
(+ the intervention branch), verify every run, one stage per study, the report.

`build_stages` checks everything it can before anything runs (the study packages exist and
accept their options, the trainer has the fields the config asks for) and returns the stages in
dependency order for `runner.run_stages`.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from analysis.study import RunSpec
from checkpoints_index.schedule import checkpoint_steps
from pythia_suite.suite.config import SuiteConfig, to_plain
from pythia_suite.suite.layout import Layout, corpus_file, run_name, truth_file
from pythia_suite.suite.runner import Stage
from suite_core.hashing import sha256_file
from suite_core.records import Manifest

log = logging.getLogger(__name__)

FLOPS_PER_SECOND = 2.0e10  # training throughput of this 2-core machine, for estimates only


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

    vocab_size = Manifest.read(data_dir).vocab_size
    return param_counts(get_row(model).with_vocab(vocab_size))[0]


def train_fields() -> set[str]:
    from pythia_suite.training.trainer import TrainConfig

    return {f.name for f in dataclasses.fields(TrainConfig)}


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
    missing = {"branch_from", "branch_step", "intervention"} - train_fields()
    if missing:
        raise ValueError(
            f"{source}: field 'branch.enabled': this build's trainer has no "
            f"{', '.join(sorted(missing))} (the {b.intervention} branch is not in it)"
        )
    model = b.model or config.train.models[0]
    steps = checkpoint_steps(checkpoint_rule(config, model), config.data.steps)
    step = (
        b.step if b.step is not None else max(s for s in steps if s <= config.data.steps * 3 // 4)
    )
    if step not in steps:
        raise ValueError(
            f"{source}: field 'branch.step': {step} is not a checkpoint of the "
            f"parent run (its checkpoints: {steps})"
        )
    parent = run_name(model, b.variant)
    name = run_name(model, b.variant, b.intervention)
    runs.append(
        PlannedRun(
            name=name,
            model=model,
            variant=b.variant,
            path=layout.run(name),
            branch_of=parent,
            branch_step=step,
            intervention=b.intervention,
        )
    )
    return runs


def study_function(study: str, options: dict[str, Any], source: str) -> Any:
    """`analysis.<study>.run_study`, after checking that it takes `options`."""
    try:
        module = importlib.import_module(f"analysis.{study}")
    except ModuleNotFoundError as exc:
        if exc.name not in (f"analysis.{study}",):
            raise
        raise ValueError(
            f"{source}: field 'studies.{study}': no package analysis/{study} in this build"
        ) from None
    run_study = getattr(module, "run_study", None)
    if run_study is None:
        raise ValueError(f"{source}: field 'studies.{study}': analysis.{study} has no run_study")
    params = inspect.signature(run_study).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = [k for k in options if k not in params or k in ("runs", "truth", "out_dir")]
        if unknown:
            raise ValueError(
                f"{source}: field 'studies.{study}.{unknown[0]}': not an option of "
                f"analysis.{study}.run_study"
            )
    return run_study


def _estimate_train(config: SuiteConfig, model: str, steps: int) -> float:
    from pythia_suite.training.family import get_row, param_counts

    params = param_counts(get_row(model).with_vocab(config.tokenizer.vocab_size))[0]
    d = config.data
    return 1.0 + steps * (6 * params * d.batch_size * d.seq_length / FLOPS_PER_SECOND + 0.02)


def _renderer_hash() -> str:
    """The report's own code: a new renderer redraws the page (it costs seconds)."""
    here = Path(__file__).parent
    return sha256_bytes(
        b"".join((here / n).read_bytes() for n in ("report.py", "curves.py", "studyio.py"))
    )


def sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _any_resume(fn: Callable[[], None]) -> Callable[[bool], None]:
    """A stage function that starts over whether or not it was interrupted."""

    def run(resume: bool) -> None:
        del resume
        fn()

    return run


def build_stages(config: SuiteConfig, layout: Layout, *, source: str) -> list[Stage]:
    """The stages of `config`, in order; `source` names the config in error messages."""
    from pythia_suite.suite import tasks

    runs = plan_runs(config, layout, source)
    studies = {s: study_function(s, opts, source) for s, opts in config.studies.items()}
    precision_ok = config.train.precision == "fp32" or "precision" in train_fields()
    if not precision_ok:
        raise ValueError(
            f"{source}: field 'train.precision': this build's trainer has no "
            f"precision setting (only fp32)"
        )
    c, d = config, config.data
    docs = 3000 if c.corpus.synth in ("tiny", None) else 30000
    stages: list[Stage] = []
    if c.corpus.path is None:
        stages.append(
            Stage(
                slug="corpus",
                title=f"corpus synth ({c.corpus.synth})",
                kind="corpus",
                config=c.section("corpus"),
                deps=(),
                outputs=(layout.corpus_dir,),
                run=lambda resume: tasks.synth(c, layout),
                digest=lambda: tasks.file_digests(layout.corpus_dir, "corpus.jsonl", "truth.json"),
                estimate=docs / 10000,
            )
        )
    else:
        stages.append(
            Stage(
                slug="corpus",
                title=f"corpus {c.corpus.path}",
                kind="corpus",
                config={
                    **c.section("corpus"),
                    "stat": tasks.stat_key(corpus_file(c, layout)),
                    "truth_stat": tasks.stat_key(truth_file(c, layout)),
                },
                deps=(),
                outputs=(),
                run=lambda resume: None,
                digest=lambda: tasks.named_corpus_digest(c, layout),
                estimate=docs / 20000,
            )
        )
    stages.append(
        Stage(
            slug="dedup",
            title="dedup (MinHashLSH)",
            kind="dedup",
            config=c.section("dedup"),
            deps=("corpus",),
            outputs=(layout.deduped, tasks.dedup_report(layout)),
            run=lambda resume: tasks.dedup(c, layout),
            digest=lambda: {"deduped.jsonl": sha256_file(layout.deduped)},
            estimate=docs / 5000,
        )
    )
    stages.append(
        Stage(
            slug="tokenizer",
            title="tokenizer train",
            kind="tokenizer",
            config=c.section("tokenizer"),
            deps=("dedup",),
            outputs=(layout.tokenizer,),
            run=lambda resume: tasks.tokenizer(c, layout),
            digest=lambda: {"tokenizer.json": sha256_file(layout.tokenizer)},
            estimate=docs / 6000,
        )
    )
    for variant in c.train.variants:
        out = layout.data(variant)
        stages.append(
            Stage(
                slug=f"prepare-{variant}",
                title=f"prepare {variant}",
                kind="prepare",
                config=c.section("data"),
                outputs=(out,),
                deps=("corpus" if variant == "standard" else "dedup", "tokenizer"),
                run=_any_resume(partial(tasks.prepare_variant, c, layout, variant)),
                digest=partial(tasks.data_digest, out),
                estimate=1.0 + d.num_samples * d.seq_length / 2e5,
            )
        )
    by_name = {r.name: r for r in runs}
    for r in runs:
        t = c.section("train")  # this run's settings only: adding a model retrains nothing
        train_config = {k: t[k] for k in ("seed", "checkpoints", "precision", "threads")} | {
            "model": r.model,
            "variant": r.variant,
            "steps": d.steps,
        }
        deps: tuple[str, ...] = (f"prepare-{r.variant}",)
        if r.branch_of is not None:
            train_config["branch"] = c.section("branch") | {"step": r.branch_step}
            deps += (f"train-{r.branch_of}",)
        stages.append(
            Stage(
                slug=f"train-{r.name}",
                title=f"train {r.name}",
                kind="train",
                config=train_config,
                deps=deps,
                outputs=(r.path,),
                resumable=True,
                run=partial(tasks.train_run, c, layout, r, by_name),
                digest=partial(tasks.run_digest, r.path),
                estimate=_estimate_train(c, r.model, d.steps - (r.branch_step or 0)),
            )
        )
    verified: dict[str, dict[str, Any]] = {}
    for r in runs:
        stages.append(
            Stage(
                slug=f"verify-{r.name}",
                title=f"verify {r.name} (replay, checkpoints)",
                kind="verify",
                config={},
                deps=(f"train-{r.name}",),
                outputs=(),
                run=_any_resume(partial(tasks.verify_into, r.path, verified, r.name)),
                digest=partial(verified.__getitem__, r.name),
                estimate=0.5 + d.steps * 0.002,
            )
        )
    run_deps = tuple(f"verify-{r.name}" for r in runs) + tuple(f"train-{r.name}" for r in runs)
    for study, run_study in studies.items():
        out = layout.study(study)
        stages.append(
            Stage(
                slug=f"study-{study}",
                title=f"study {study}",
                kind="study",
                config={"options": to_plain(c.studies[study]), "runs": [to_plain(r) for r in runs]},
                deps=("corpus", *run_deps),
                outputs=(out,),
                run=_any_resume(partial(tasks.study, c, layout, study, run_study, runs, out)),
                digest=partial(tasks.study_digest, out),
                estimate=30.0,
            )
        )
    stages.append(
        Stage(
            slug="report",
            title=f"report {layout.report}",
            kind="report",
            config={"suite": to_plain(c), "renderer": _renderer_hash()},
            deps=("corpus", *run_deps, *(f"study-{s}" for s in studies)),
            outputs=(layout.report, layout.tables),
            run=lambda resume: tasks.report(c, layout, runs, list(studies)),
            digest=lambda: {"report.html": sha256_file(layout.report)},
            estimate=2.0,
        )
    )
    return stages
