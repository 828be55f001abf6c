"""External runs: published checkpoints fetched from the hub, their training rows from any
SOURCE (`hf://datasets/...`, an `https://` mirror, shards, a merged file); nothing trained.

A suite config with an `external` section runs these stages instead of corpus ... train:

```yaml
external:
  endpoint: null               # hub URL (null: HF_ENDPOINT, else huggingface.co)
  skip_reported: false         # skip the revisions the hub table reports as bad
  crows: https://.../crows_pairs_anonymized.csv   # CrowS-Pairs CSV for the bias study (URL or path)
  runs:
    pythia-70m-deduped:        # the run's name: <suite>/runs/<name>/
      model: pythia-70m-deduped            # a Pythia row or OWNER/NAME
      steps: "steps:0,1000,2000"           # the fetch rule
      rows: hf://datasets/EleutherAI/pile-deduped-pythia-preshuffled
      batch_size: 1024                     # rows per step of that data order
```

`fetch-NAME` fetches and verifies the revisions into `<suite>/runs/NAME/` (`checkpoints fetch`),
catalogues them, copies the last revision's `tokenizer.json` beside them and writes `rows.json`
naming the rows (`analysis.sources.open_rows` follows it), so the folder is a run to the studies.
`verify-NAME` re-hashes the checkpoints against the catalog and opens the rows.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from analysis.sources import ROWS_JSON as ROWS_FILE  # {"source": SPEC, "batch_size": B}
from pythia_suite.suite.config import SuiteConfig, to_plain
from pythia_suite.suite.external_config import (
    RUN_KEYS,
    ExternalRun,
    ExternalSection,
    parse_external,
)
from pythia_suite.suite.layout import Layout
from pythia_suite.suite.runner import REPORT, Inputs, Stage, forget
from suite_core.atomic import write_atomic

log = logging.getLogger(__name__)

TOKENIZER = "tokenizer.json"


def fetch_run(section: ExternalSection, run: ExternalRun) -> None:
    """Fetch, verify and catalogue the run's revisions; tokenizer and rows beside them."""
    from checkpoints_index.fetch import fetch, plan_fetch
    from checkpoints_index.hf_index import index_folder
    from suite_core import CheckpointError

    plan = plan_fetch(run.model, run.steps, endpoint=section.endpoint)
    result = fetch(plan, run.path, skip_reported=section.skip_reported)
    if result.corrupt:
        bad = result.corrupt[0]
        raise CheckpointError(
            f"{plan.repo_id}@step{bad.step}/{bad.path}: downloaded bytes differ from the hub's "
            f"sha256 ({len(result.corrupt)} corrupt file(s)); run the suite again to retry"
        )
    index = index_folder(run.path, model=plan.model)
    last = run.path / f"step{index.steps[-1]}" / TOKENIZER
    if not last.is_file():
        raise CheckpointError(f"{last}: no such file (the studies need the model's tokenizer)")
    shutil.copyfile(last, run.path / f".{TOKENIZER}.tmp")
    os.replace(run.path / f".{TOKENIZER}.tmp", run.path / TOKENIZER)
    rows = {"source": run.rows, "batch_size": run.batch_size}
    write_atomic(run.path / ROWS_FILE, json.dumps(rows, indent=2) + "\n")


def fetch_digest(run: ExternalRun) -> dict[str, Any]:
    from checkpoints_index.catalog import Catalog

    with Catalog.open(run.path, create=False) as catalog:
        checkpoints = {str(r.step): r.sha256 for r in catalog.checkpoints()}
    return {"checkpoints": checkpoints, ROWS_FILE: json.loads((run.path / ROWS_FILE).read_text())}


def verify_run(run: ExternalRun) -> dict[str, Any]:
    """Re-hash the checkpoints against the catalog; open the rows (their layout checked)."""
    from analysis.sources import open_rows
    from checkpoints_index.catalog import Catalog

    with Catalog.open(run.path, create=False) as catalog:
        problems = catalog.verify()
        count = len(catalog.checkpoints())
    if problems:
        raise ValueError(problems[0])
    rows = open_rows(run.path)
    return {"checkpoints_verified": count, "rows": int(rows.num_rows)}


def fetch_crows(url: str, out: Path) -> None:
    """Download the CrowS-Pairs CSV once (atomically)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as handle, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, handle)
        os.replace(name, out)
    except OSError as exc:
        Path(name).unlink(missing_ok=True)
        raise OSError(f"{url}: download failed ({exc})") from None


def _plain(fn: Callable[[], None]) -> Callable[[bool, Inputs], None]:
    """A stage function that starts over whether or not it was interrupted."""

    def run(resume: bool, inputs: Inputs) -> None:
        del resume, inputs
        fn()

    return run


def _study(
    config: SuiteConfig, layout: Layout, name: str, run_study: Any, runs: list[ExternalRun]
) -> None:
    from pythia_suite.suite.studyio import save_study_report

    out = layout.study(name)
    out.mkdir(parents=True, exist_ok=True)
    options = dict(config.studies[name])
    if name == "bias" and config.external.get("crows") and "crows" not in options:
        options["crows"] = crows_path(config, layout)
    report = run_study([r.spec(layout) for r in runs], truth=None, out_dir=out, **options)
    save_study_report(report, out)
    forget(layout.state, REPORT)  # the report restates the study's checks (stages.study_stage)


def crows_path(config: SuiteConfig, layout: Layout) -> Path:
    crows = str(config.external["crows"])
    if crows.startswith(("http://", "https://")):
        return layout.root / "external" / "crows_pairs.csv"
    return Path(crows).absolute()


def _report(
    config: SuiteConfig, layout: Layout, runs: list[ExternalRun], studies: list[str]
) -> Callable[[bool, Inputs], None]:
    """The report stage's function: the page, with what this invocation's verify stages found."""
    from pythia_suite.suite.report import ReportInputs, write_report
    from pythia_suite.suite.studyio import load_study_report

    def run(resume: bool, inputs: Inputs) -> None:
        del resume
        write_report(
            ReportInputs(
                config=config,
                layout=layout,
                runs=[r.spec(layout) for r in runs],
                verified={r.name: inputs[f"verify-{r.name}"] for r in runs},
                studies=[load_study_report(layout.study(s)) for s in studies],
            )
        )

    return run


def _run_stages(section: ExternalSection, r: ExternalRun) -> list[Stage]:
    """fetch-NAME, and verify-NAME (on every invocation: a skipped fetch is re-verified)."""
    verified: dict[str, Any] = {}
    run_config = {"endpoint": section.endpoint, "skip_reported": section.skip_reported}
    run_config |= {k: getattr(r, k) for k in RUN_KEYS}
    return [
        Stage(
            slug=f"fetch-{r.name}",
            title=f"fetch {r.model} ({r.steps})",
            kind="fetch",
            config=run_config,
            deps=(),
            outputs=(r.path,),
            resumable=True,
            run=_plain(partial(fetch_run, section, r)),
            digest=partial(fetch_digest, r),
            estimate=60.0,
        ),
        Stage(
            slug=f"verify-{r.name}",
            title=f"verify {r.name} (checkpoints, rows)",
            kind="verify",
            config={},
            deps=(f"fetch-{r.name}",),
            outputs=(),
            always=True,
            run=_plain(lambda: verified.update(verify_run(r))),
            digest=lambda: dict(verified),
            estimate=5.0,
        ),
    ]


def _crows_stage(url: str, out: Path) -> Stage:
    from suite_core.hashing import sha256_file

    return Stage(
        slug="fetch-crows",
        title=f"fetch {url}",
        kind="fetch",
        config={"url": url},
        deps=(),
        outputs=(out,),
        run=_plain(partial(fetch_crows, url, out)),
        digest=lambda: {"crows_pairs.csv": sha256_file(out)},
        estimate=2.0,
    )


def external_stages(config: SuiteConfig, layout: Layout, *, source: str) -> list[Stage]:
    """fetch + verify per external run, the CrowS-Pairs CSV, one stage per study, the report."""
    from pythia_suite.suite import actions
    from pythia_suite.suite.checks import study_function
    from pythia_suite.suite.config import _Where
    from suite_core.hashing import sha256_file

    section = parse_external(config.external, layout.root, _Where(source, {}).error)
    studies = {s: study_function(s, opts, source) for s, opts in config.studies.items()}
    runs = list(section.runs)
    stages = [stage for r in runs for stage in _run_stages(section, r)]
    deps = tuple(stage.slug for stage in stages)
    if section.crows is not None and section.crows.startswith(("http://", "https://")):
        stages.append(_crows_stage(section.crows, crows_path(config, layout)))
        deps += ("fetch-crows",)
    for study, run_study in studies.items():
        out_dir = layout.study(study)
        stages.append(
            Stage(
                slug=f"study-{study}",
                title=f"study {study}",
                kind="study",
                config={"options": to_plain(config.studies[study]), "runs": to_plain(runs)},
                deps=deps,
                outputs=(out_dir,),
                run=_plain(partial(_study, config, layout, study, run_study, runs)),
                digest=partial(actions.study_digest, out_dir),
                estimate=60.0,
            )
        )
    stages.append(
        Stage(
            slug=REPORT,
            title=f"report {layout.report}",
            kind="report",
            config={"suite": to_plain(config)},
            deps=(*deps, *(f"study-{s}" for s in studies)),
            outputs=(layout.report, layout.tables),
            run=_report(config, layout, runs, list(studies)),
            digest=lambda: {"report.html": sha256_file(layout.report)},
            estimate=2.0,
        )
    )
    return stages
