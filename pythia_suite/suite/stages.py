"""The suite's stage graph: corpus, dedup, tokenizer, prepare x variants, train sizes x variants
(+ the intervention branch), verify every run, one stage per study, the report.

`build_stages` checks everything it can before anything runs (`checks`: files, seeds,
resources; the studies are in `study_table.STUDY_TABLE` and accept their options) and returns the stages in dependency order
for `runner.run_stages`; one small builder per stage kind makes them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pythia_suite.suite import actions
from pythia_suite.suite.checks import check_all, study_function
from pythia_suite.suite.config import SuiteConfig, to_plain
from pythia_suite.suite.layout import Layout, corpus_file, truth_file
from pythia_suite.suite.ledger_stage import ledger_stages
from pythia_suite.suite.plan import PlannedRun, plan_runs
from pythia_suite.suite.runner import REPORT, Inputs, Stage, forget
from pythia_suite.suite.study_table import StudyFunction
from suite_core import ConfigError
from suite_core.hashing import sha256_file

log = logging.getLogger(__name__)

FLOPS_PER_SECOND = 2.0e10  # training throughput of this 2-core machine, for estimates only


@dataclass(frozen=True, kw_only=True)
class Context:
    """What every builder reads: the config, the layout, the planned runs."""

    config: SuiteConfig
    layout: Layout
    runs: list[PlannedRun]
    source: str = "the suite config"  # names the config in error messages

    @property
    def docs(self) -> int:
        return 3000 if self.config.corpus.synth in ("tiny", None) else 30000


def _estimate_train(config: SuiteConfig, model: str, steps: int) -> float:
    from pythia_suite.training.family import get_row, param_counts

    params = param_counts(get_row(model).with_vocab(config.tokenizer.vocab_size))[0]
    d = config.data
    return 1.0 + steps * (6 * params * d.batch_size * d.seq_length / FLOPS_PER_SECOND + 0.02)


def _renderer_hash() -> str:
    """The report's own code: a new renderer redraws the page (it costs seconds)."""
    here = Path(__file__).parent
    code = b"".join((here / n).read_bytes() for n in ("report.py", "curves.py", "studyio.py"))
    return hashlib.sha256(code).hexdigest()


def _plain(fn: Callable[[], None]) -> Callable[[bool, Inputs], None]:
    """A stage function that starts over whether or not it was interrupted, reading no input
    digests."""

    def run(resume: bool, inputs: Inputs) -> None:
        del resume, inputs
        fn()

    return run


def corpus_stage(ctx: Context) -> Stage:
    c, layout = ctx.config, ctx.layout
    if c.corpus.path is None:
        return Stage(
            slug="corpus",
            title=f"corpus synth ({c.corpus.synth})",
            kind="corpus",
            config=c.section("corpus") | actions.synth_key(c),
            deps=(),
            outputs=(layout.corpus_dir,),
            run=_plain(partial(actions.synth, c, layout)),
            digest=partial(actions.file_digests, layout.corpus_dir, "corpus.jsonl", "truth.json"),
            estimate=ctx.docs / 10000,
        )
    return Stage(
        slug="corpus",
        title=f"corpus {c.corpus.path}",
        kind="corpus",
        config={
            **c.section("corpus"),
            "stat": actions.stat_key(corpus_file(c, layout)),
            "truth_stat": actions.stat_key(truth_file(c, layout)),
        },
        deps=(),
        outputs=(),
        run=_plain(lambda: None),
        digest=partial(actions.named_corpus_digest, c, layout),
        estimate=ctx.docs / 20000,
    )


def dedup_stage(ctx: Context) -> Stage:
    c, layout = ctx.config, ctx.layout
    return Stage(
        slug="dedup",
        title="dedup (MinHashLSH)",
        kind="dedup",
        config=c.section("dedup"),
        deps=("corpus",),
        outputs=(layout.deduped, actions.dedup_report(layout)),
        run=_plain(partial(actions.dedup, c, layout)),
        digest=lambda: {"deduped.jsonl": sha256_file(layout.deduped)},
        estimate=ctx.docs / 5000,
    )


def tokenizer_stage(ctx: Context) -> Stage:
    c, layout = ctx.config, ctx.layout
    return Stage(
        slug="tokenizer",
        title="tokenizer train",
        kind="tokenizer",
        config=c.section("tokenizer"),
        deps=("dedup",),
        outputs=(layout.tokenizer,),
        run=_plain(partial(actions.tokenizer, c, layout)),
        digest=lambda: {"tokenizer.json": sha256_file(layout.tokenizer)},
        estimate=ctx.docs / 6000,
    )


def branch_check_stage(ctx: Context) -> Stage:
    """The pronoun branch needs single-token pronouns: checked as soon as the tokenizer
    exists, before any data is prepared or any run trained."""
    layout = ctx.layout

    def check() -> None:
        from dataloader_replay.tokenizer import read_tokenizer
        from pythia_suite.training.branch import pronoun_map

        try:
            pronoun_map(read_tokenizer(layout.tokenizer), str(layout.tokenizer))
        except ConfigError as exc:
            raise ConfigError(
                f"{ctx.source}: field 'branch.enabled': {exc} (vocab_size {ctx.config.tokenizer.vocab_size}; "
                "a larger tokenizer.vocab_size gives single-token pronouns)"
            ) from None

    return Stage(
        slug="check-branch",
        title="check the branch's pronouns",
        kind="check",
        config={},
        deps=("tokenizer",),
        outputs=(),
        always=True,
        run=_plain(check),
        digest=dict,
        estimate=0.1,
    )


def prepare_stage(ctx: Context, variant: str) -> Stage:
    c, d = ctx.config, ctx.config.data
    out = ctx.layout.data(variant)
    return Stage(
        slug=f"prepare-{variant}",
        title=f"prepare {variant}",
        kind="prepare",
        config=c.section("data"),
        outputs=(out,),
        deps=("corpus" if variant == "standard" else "dedup", "tokenizer"),
        run=_plain(partial(actions.prepare_variant, c, ctx.layout, variant)),
        digest=partial(actions.data_digest, out),
        estimate=1.0 + d.num_samples * d.seq_length / 2e5,
    )


def train_stage(ctx: Context, run: PlannedRun) -> Stage:
    c = ctx.config
    t = c.section("train")  # this run's settings only: adding a model retrains nothing
    train_config = {k: t[k] for k in ("seed", "checkpoints", "precision", "threads")} | {
        "model": run.model,
        "variant": run.variant,
        "steps": c.data.steps,
    }
    deps: tuple[str, ...] = (f"prepare-{run.variant}",)
    if run.branch_of is not None:
        train_config["branch"] = c.section("branch") | {"step": run.branch_step}
        deps += (f"train-{run.branch_of}",)
    by_name = {r.name: r for r in ctx.runs}
    return Stage(
        slug=f"train-{run.name}",
        title=f"train {run.name}",
        kind="train",
        config=train_config,
        deps=deps,
        outputs=(run.path,),
        resumable=True,
        protected=True,
        run=lambda resume, inputs: actions.train_run(c, ctx.layout, run, by_name, resume),
        digest=partial(actions.run_digest, run.path),
        estimate=_estimate_train(c, run.model, c.data.steps - (run.branch_step or 0)),
    )


def verify_stage(ctx: Context, run: PlannedRun) -> Stage:
    """Runs on every invocation (`always`): a skipped run is re-verified, never assumed."""
    verified: dict[str, Any] = {}
    return Stage(
        slug=f"verify-{run.name}",
        title=f"verify {run.name} (replay, checkpoints)",
        kind="verify",
        config={},
        deps=(f"train-{run.name}",),
        outputs=(),
        always=True,
        run=_plain(lambda: verified.update(actions.verify_run_dir(run.path))),
        digest=lambda: dict(verified),
        estimate=0.5 + ctx.config.data.steps * 0.002,
    )


def _run_deps(ctx: Context) -> tuple[str, ...]:
    return tuple(f"verify-{r.name}" for r in ctx.runs) + tuple(f"train-{r.name}" for r in ctx.runs)


def study_stage(ctx: Context, study: str, run_study: StudyFunction) -> Stage:
    c, out = ctx.config, ctx.layout.study(study)

    def run(resume: bool, inputs: Inputs) -> None:
        del resume, inputs
        actions.study(c, ctx.layout, study, run_study, ctx.runs, out)
        # the report restates every study's checks with one Holm across the report: a study
        # that ran has the report drawn again, even when its bytes are those recorded before
        forget(ctx.layout.state, REPORT)

    return Stage(
        slug=f"study-{study}",
        title=f"study {study}",
        kind="study",
        config={"options": to_plain(c.studies[study]), "runs": [to_plain(r) for r in ctx.runs]},
        deps=("corpus", *_run_deps(ctx)),
        outputs=(out,),
        run=run,
        digest=partial(actions.study_digest, out),
        estimate=30.0,
    )


def report_stage(ctx: Context, studies: list[str]) -> Stage:
    c, layout = ctx.config, ctx.layout

    def run(resume: bool, inputs: Inputs) -> None:
        verified = {r.name: inputs[f"verify-{r.name}"] for r in ctx.runs}
        actions.report(c, layout, ctx.runs, studies, verified)

    return Stage(
        slug=REPORT,
        title=f"report {layout.report}",
        kind="report",
        config={"suite": to_plain(c), "renderer": _renderer_hash()},
        deps=("corpus", *_run_deps(ctx), *(f"study-{s}" for s in studies)),
        outputs=(layout.report, layout.tables),
        run=run,
        digest=lambda: {"report.html": sha256_file(layout.report)},
        estimate=2.0,
    )


def build_stages(config: SuiteConfig, layout: Layout, *, source: str) -> list[Stage]:
    """The stages of `config`, in order; `source` names the config in error messages."""
    if config.external:  # fetched checkpoints and remote rows: nothing to train
        from pythia_suite.suite.external import external_stages

        return external_stages(config, layout, source=source)
    check_all(config, layout, source)
    ctx = Context(
        config=config, layout=layout, runs=plan_runs(config, layout, source), source=source
    )
    studies = {s: study_function(s, opts, source) for s, opts in config.studies.items()}
    return [
        corpus_stage(ctx),
        dedup_stage(ctx),
        tokenizer_stage(ctx),
        *([branch_check_stage(ctx)] if config.branch.enabled else []),
        *(prepare_stage(ctx, v) for v in config.train.variants),
        *(train_stage(ctx, r) for r in ctx.runs),
        *(verify_stage(ctx, r) for r in ctx.runs),
        *ledger_stages(config, layout, ctx.runs),
        *(study_stage(ctx, s, fn) for s, fn in studies.items()),
        report_stage(ctx, list(studies)),
    ]
