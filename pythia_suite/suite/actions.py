"""What each stage does (thin calls into the packages) and the content digests of its outputs.

(Named `actions`, not `tasks`: `analysis.bias.tasks` is the bias study's task definitions.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from checkpoints_index.catalog import Catalog
from pythia_suite.suite.config import SuiteConfig
from pythia_suite.suite.layout import Layout, corpus_file, truth_file, variant_input
from pythia_suite.suite.plan import PlannedRun
from suite_core import ConfigError
from suite_core.hashing import sha256_file
from suite_core.layout import METRICS
from suite_core.records import Manifest

log = logging.getLogger(__name__)

STUDY_REPORT = "report.json"


def file_digests(folder: Path, *names: str) -> dict[str, str]:
    return {name: sha256_file(folder / name) for name in names}


def stat_key(path: Path | None) -> list[int] | None:
    """(size, mtime) of a named input: a cheap change detector for the stage key."""
    if path is None:
        return None
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (named in the suite config)")
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def named_corpus_digest(config: SuiteConfig, layout: Layout) -> dict[str, str | None]:
    truth = truth_file(config, layout)
    return {
        "corpus": sha256_file(corpus_file(config, layout)),
        "truth": None if truth is None else sha256_file(truth),
    }


def read_truth(config: SuiteConfig, layout: Layout) -> dict[str, Any] | None:
    path = truth_file(config, layout)
    if path is None:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None


def synth_placement(config: SuiteConfig) -> Any:
    """The suite's settings as the synth preset's timing-canary placement (None: no timing)."""
    from dataclasses import replace

    from pythia_suite.corpus.synth import get_preset

    assert config.corpus.synth is not None
    own = get_preset(config.corpus.synth).placement
    if own is None:
        return None
    d, t = config.data, config.dedup
    return replace(
        own,
        seq_length=d.seq_length,
        batch_size=d.batch_size,
        steps=d.steps,
        held_out_rows=d.held_out_rows,
        seed=d.seed,
        vocab_size=config.tokenizer.vocab_size,
        threshold=t.threshold,
        num_perm=t.num_perm,
        dedup_seed=t.seed,
    )


def synth_key(config: SuiteConfig) -> dict[str, Any]:
    """What the corpus stage depends on beyond `corpus`: the synthetic world's design (so that
    a changed preset of the generator rebuilds it) and the timing placement, if any."""
    from dataclasses import asdict

    from pythia_suite.corpus.synth import get_preset

    if config.corpus.synth is None:
        return {}
    key: dict[str, Any] = {"world": asdict(get_preset(config.corpus.synth))}
    placement = synth_placement(config)
    if placement is not None:
        key["placement"] = asdict(placement)
    return key


def synth(config: SuiteConfig, layout: Layout) -> None:
    from pythia_suite.corpus.synth import write_corpus

    assert config.corpus.synth is not None
    write_corpus(
        layout.corpus_dir,
        preset=config.corpus.synth,
        seed=config.corpus.seed,
        placement=synth_placement(config),
    )


def dedup_report(layout: Layout) -> Path:
    from pythia_suite.corpus.dedup import report_path

    return report_path(layout.deduped)


def dedup(config: SuiteConfig, layout: Layout) -> None:
    from pythia_suite.corpus.dedup import DedupConfig, dedup_file

    d = config.dedup
    dedup_file(
        corpus_file(config, layout),
        layout.deduped,
        DedupConfig(threshold=d.threshold, num_perm=d.num_perm, seed=d.seed),
    )


def tokenizer(config: SuiteConfig, layout: Layout) -> None:
    from pythia_suite.corpus.tokenizer import train_tokenizer

    train_tokenizer(layout.deduped, layout.tokenizer, vocab_size=config.tokenizer.vocab_size)


def prepare_variant(config: SuiteConfig, layout: Layout, variant: str) -> None:
    """Both variants: the same settings and order seed, rows past steps * B held out."""
    from dataloader_replay.prepare import prepare

    d = config.data
    prepare(
        variant_input(config, layout, variant),
        layout.tokenizer,
        layout.data(variant),
        seq_length=d.seq_length,
        batch_size=d.batch_size,
        steps=d.steps,
        seed=d.seed,
        num_samples=d.num_samples,
    )


def data_digest(data_dir: Path) -> dict[str, str]:
    """The data's one identity: its manifest's fingerprint (suite_core.records.Manifest)."""
    return {"fingerprint": Manifest.read(data_dir).fingerprint}


def train_run(
    config: SuiteConfig,
    layout: Layout,
    run: PlannedRun,
    by_name: dict[str, PlannedRun],
    resume: bool,
) -> None:
    """Train (or continue) one run with the agreed `TrainConfig` fields."""
    from pythia_suite.training.trainer import TrainConfig, train

    t = config.train
    kwargs: dict[str, Any] = {
        "model": run.model,
        "data": layout.data(run.variant),
        "out": run.path,
        "steps": config.data.steps,
        "seed": t.seed,
        "checkpoints": t.checkpoints,
        "threads": t.threads,
        "precision": t.precision,
        "resume": resume and run.path.exists(),
    }
    if run.branch_of is not None:
        kwargs.update(
            branch_from=by_name[run.branch_of].path,
            branch_step=run.branch_step,
            intervention=run.intervention,
        )
    train(TrainConfig(**kwargs))


def run_digest(run_dir: Path) -> dict[str, Any]:
    """Every checkpoint's sha256 (from the catalog) and the metrics file's."""
    with Catalog.open(run_dir, create=False) as catalog:
        checkpoints = {str(r.step): r.sha256 for r in catalog.checkpoints()}
    return {"checkpoints": checkpoints, METRICS: sha256_file(run_dir / METRICS)}


def verify_run_dir(run_dir: Path) -> dict[str, Any]:
    """`pythia-suite verify RUN` (the one run verifier): its counts, or the first problem."""
    from pythia_suite.verify import verify_path

    report = verify_path(run_dir)
    report.raise_first()
    log.info("%s: %s", run_dir, "; ".join(report.lines))
    return {"batches_verified": report.batches, "checkpoints_verified": report.checkpoints}


def study(
    config: SuiteConfig,
    layout: Layout,
    name: str,
    run_study: Callable[..., Any],
    runs: list[PlannedRun],
    out_dir: Path,
) -> None:
    """Call `analysis.<name>.run_study` and save its StudyReport beside its outputs."""
    from pythia_suite.suite.studyio import save_study_report

    out_dir.mkdir(parents=True, exist_ok=True)
    specs = [r.spec(layout) for r in runs]
    report = run_study(
        specs, truth=read_truth(config, layout), out_dir=out_dir, **config.studies[name]
    )
    save_study_report(report, out_dir)


def study_digest(out_dir: Path) -> dict[str, str]:
    """The saved report and its tables (figures and result files are derived from them)."""
    saved = json.loads((out_dir / STUDY_REPORT).read_text())
    names = [STUDY_REPORT, *saved["tables"].values()]
    return {n: sha256_file(out_dir / n) for n in names}


def report(
    config: SuiteConfig,
    layout: Layout,
    runs: list[PlannedRun],
    studies: list[str],
    verified: dict[str, dict[str, Any]],
) -> None:
    """The page, with what the verify stages of this invocation found (`verified`: run name ->
    their digest, as the runner handed it over)."""
    from pythia_suite.suite.report import ReportInputs, write_report
    from pythia_suite.suite.studyio import load_study_report

    write_report(
        ReportInputs(
            config=config,
            layout=layout,
            runs=[r.spec(layout) for r in runs],
            verified=verified,
            studies=[load_study_report(layout.study(s)) for s in studies],
        )
    )
