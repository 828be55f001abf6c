"""`runs/<name>/report.html`: one self-contained page (figures embedded as base64 PNG).

Sections: the planted-truth lines of every study (each a one-sided test, Holm-adjusted across
the report: effect [95% CI], adjusted p, n, test, status; also `tables/checks.csv`, and
restated so in each study's `report.json`), the runs (size, variant, checkpoints,
verification), the loss curves per size and variant, each study's figures and tables (every
table also as CSV in `runs/<name>/tables/`; one sentence for each one left out for want of
data), and the exact commands to replay any batch or load any checkpoint. The page is rendered
from `StudyReport`s only, so it knows nothing about the studies themselves.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.study import (
    ALPHA,
    NOT_RECOVERED,
    NOT_TESTABLE,
    RECOVERED,
    RunSpec,
    StudyReport,
    TruthCheck,
    apply_holm,
)
from pythia_suite.suite.config import SuiteConfig, dump_config
from pythia_suite.suite.curves import loss_figure, loss_table
from pythia_suite.suite.studyio import restate_checks, table_stem, tested_count
from suite_core.atomic import atomic_path

MAX_TABLE_ROWS = 40  # rows shown inline; the CSV beside holds them all
CHECKS_CSV = "tables/checks.csv"  # every check of the report with its statistics
CHECK_COLUMNS = [f.name for f in dataclasses.fields(TruthCheck)]

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222;
       padding: 0 1em; line-height: 1.45; }
h1 { margin-bottom: .2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.85em; margin: .5em 0 1em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
.check { font-family: ui-monospace, monospace; padding: .3em .6em; margin: .2em 0;
         border-radius: 4px; }
.recovered { background: #e7f6e7; } .not-recovered { background: #fbe4e4; }
.not-testable { background: #f0f0f0; } .omitted { color: #555; font-style: italic; }
figure { margin: 1em 0; } img { max-width: 100%; border: 1px solid #eee; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: 0.85em; }
.broken { outline: 3px solid red; }
.tbl { overflow-x: auto; }
"""

# Marks every figure with its natural width once the page has loaded (and outlines a broken
# one), so that a figure that failed to decode is visible and machine-checkable.
SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img');
  var ok = 0;
  imgs.forEach(function (img) {
    img.setAttribute('data-natural-width', String(img.naturalWidth));
    if (img.naturalWidth > 0) { ok += 1; } else { img.classList.add('broken'); }
  });
  document.body.setAttribute('data-figures', String(imgs.length));
  document.body.setAttribute('data-figures-loaded', String(ok));
});
"""


@dataclass(kw_only=True)
class ReportInputs:
    config: SuiteConfig
    layout: Any  # pythia_suite.suite.layout.Layout
    runs: list[RunSpec]
    verified: dict[str, dict[str, Any]]  # run name -> what `verify` counted
    studies: list[StudyReport]


def _e(value: Any) -> str:
    return html.escape(str(value))


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(alt)}</figcaption></figure>"
    )


def _table(df: pd.DataFrame, csv: str | None) -> str:
    shown = df if len(df) <= MAX_TABLE_ROWS else df.head(MAX_TABLE_ROWS)
    body = shown.to_html(
        index=not isinstance(df.index, pd.RangeIndex),
        border=0,
        float_format=lambda x: f"{x:.4g}",
        escape=True,
    )
    more = f"<p>first {MAX_TABLE_ROWS} of {len(df)} rows</p>" if len(df) > MAX_TABLE_ROWS else ""
    link = f'<p>CSV: <a href="{_e(csv)}">{_e(csv)}</a></p>' if csv else ""
    return f'<div class="tbl">{body}</div>' + more + link


def report_checks(studies: list[StudyReport]) -> list[tuple[str, TruthCheck]]:
    """(study, check) for every check of the report, Holm-adjusted across all of them."""
    pairs = [(r.study, c) for r in studies for c in r.checks]
    adjusted = apply_holm([c for _, c in pairs], alpha=ALPHA)
    return [(study, c) for (study, _), c in zip(pairs, adjusted, strict=True)]


def checks_table(checks: list[tuple[str, TruthCheck]]) -> pd.DataFrame:
    """The checks as `tables/checks.csv`: one line per check, every statistic a column."""
    return pd.DataFrame(
        [{"study": study, **dataclasses.asdict(c)} for study, c in checks],
        columns=["study", *CHECK_COLUMNS],
    )


def _num(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else "NaN"


def _check_line(study: str, c: TruthCheck) -> str:
    mark = {RECOVERED: "&#10004;", NOT_RECOVERED: "&#10008;"}.get(c.status, "&#8212;")
    css = c.status.replace(" ", "-")
    if c.status == NOT_TESTABLE:
        stats = f"<b>{_e(c.status)}</b>: {_e(c.reason)}"
    else:
        stats = (
            f"<b>{_e(c.status)}</b>: {_num(c.effect)} [{_num(c.ci_low)}, {_num(c.ci_high)}], "
            f"adjusted p {_num(c.p_adjusted)}, n = {c.n} {_e(c.unit)}, {_e(c.test)}"
        )
    detail = f" ({_e(c.detail)})" if c.detail else ""
    return (
        f'<div class="check {css}" data-passed="{str(c.passed).lower()}">{mark} '
        f"{_e(study)}: {_e(c.name)}: {stats}{detail}</div>"
    )


def _checks(studies: list[StudyReport]) -> str:
    checks = report_checks(studies)
    if not checks:
        return "<p>No planted-truth check in this suite (config section <code>studies</code>).</p>"
    count = {
        s: sum(c.status == s for _, c in checks) for s in (RECOVERED, NOT_RECOVERED, NOT_TESTABLE)
    }
    tested = len(checks) - count[NOT_TESTABLE]
    head = (
        f"<p><b>{count[RECOVERED]} recovered</b>, {count[NOT_RECOVERED]} not recovered, "
        f"{count[NOT_TESTABLE]} not testable, of {len(checks)} planted-truth checks. Each is a "
        f"one-sided test in the planted direction at alpha {ALPHA}, Holm-adjusted across the "
        f"{tested} tested checks; a line reads effect [95% bootstrap interval], adjusted p, "
        f'n independent units, test (all columns: <a href="{CHECKS_CSV}">{CHECKS_CSV}</a>; '
        "each study's <code>studies/&lt;study&gt;/report.json</code> holds the same adjusted "
        "p).</p>"
    )
    return head + "".join(_check_line(study, c) for study, c in checks)


def _omitted(report: StudyReport) -> str:
    """One sentence for each figure or table the study left out for want of data."""
    return "".join(
        f'<p class="omitted"><b>{_e(name)}</b> (not drawn): {_e(why)}</p>'
        for name, why in report.omitted.items()
    )


def _planted_truth(inputs: ReportInputs) -> str:
    """The planted-truth section, or why there is none (a corpus without truth.json)."""
    c = inputs.config.corpus
    if c.path is not None and c.truth is None:
        return (
            f'<p class="no-truth">No planted truth: the corpus <code>{_e(c.path)}</code> comes '
            "without a truth.json, so nothing was planted and nothing is checked. The studies "
            "below are descriptive (for example memorization against the natural duplication "
            "of each row's window in the trained rows).</p>"
        )
    return "<h2>Planted truth</h2>" + _checks(inputs.studies)


def table_file(study: str, name: str) -> str:
    """`tables/<study>__<name>.csv` with a file-safe name (`studyio.table_stem`)."""
    return f"tables/{study}__{table_stem(name)}.csv"


def runs_table(inputs: ReportInputs) -> pd.DataFrame:
    from checkpoints_index.catalog import Catalog

    rows = []
    for run in inputs.runs:
        with Catalog.open(run.path, create=False) as catalog:
            records = catalog.checkpoints()
        verified = inputs.verified.get(run.name, {})
        rows.append(
            {
                "run": run.name,
                "model": run.model,
                "parameters": run.n_params,
                "variant": run.variant,
                "intervention": run.intervention or "",
                "branch of": run.branch_of or "",
                "branch step": run.branch_step or "",
                "checkpoints": len(records),
                "last step": records[-1].step,
                "last sha256": records[-1].sha256[:16],
                "batches verified": verified.get("batches_verified"),
                "checkpoints verified": verified.get("checkpoints_verified"),
            }
        )
    return pd.DataFrame(rows)


def _commands(inputs: ReportInputs) -> str:
    root, steps = inputs.layout.root, inputs.config.data.steps
    run = inputs.runs[0]
    path = run.path if not Path(run.path).is_absolute() else Path(run.path)
    with_ckpt = sorted(
        int(p.name[4:]) for p in (Path(path) / "checkpoints").glob("step*") if p.name[4:].isdigit()
    )
    mid = with_ckpt[len(with_ckpt) // 2] if with_ckpt else 0
    s = min(steps - 1, mid)
    shell = "\n".join(
        [
            "# the whole suite again (skips what is done): from the directory it ran in",
            f"pythia-suite run {root / 'suite.yaml'}",
            f"# the batch step {s} trained on (rows [{s}*B, {s + 1}*B)), as {run.name} saw it",
            f"pythia-suite replay {path} --step {s} --out batch{s}.npy",
            f"pythia-suite replay {path} --step {s} --text",
            "# the same rows from the prepared data; every logged batch hash rechecked",
            f"pythia-suite replay {inputs.layout.data(run.variant)} --step {s} --out batch{s}.npy",
            f"pythia-suite replay {path} --verify",
            "# checkpoints: list, re-hash",
            f"pythia-suite checkpoints list {path}",
            f"pythia-suite checkpoints verify {path}",
        ]
    )
    python = "\n".join(
        [
            "from analysis.sources import open_checkpoints, open_rows",
            f"ck = open_checkpoints({str(path)!r})       # any run of the table above",
            f"model = ck.load({mid})                  # transformers GPTNeoXForCausalLM, sha256-checked",
            (
                f"rows = open_rows({str(path)!r}).rows({s} * {inputs.config.data.batch_size}, "
                f"{s + 1} * {inputs.config.data.batch_size})"
            ),
            "# or, without this package:",
            "from transformers import GPTNeoXForCausalLM",
            f"model = GPTNeoXForCausalLM.from_pretrained({str(Path(path) / 'checkpoints' / f'step{mid}')!r})",
        ]
    )
    return (
        f"<p>Paths are relative to the directory <code>pythia-suite run</code> ran in. "
        f"Replace the run by any of the table above and the step by any of 0 &hellip; "
        f"{steps - 1} (a batch) or any checkpoint step of the run.</p>"
        f"<pre>{_e(shell)}</pre><pre>{_e(python)}</pre>"
    )


def _subtitle(inputs: ReportInputs) -> str:
    c = inputs.config
    if c.external:  # fetched checkpoints and their rows (suite/external.py): nothing trained
        runs = [
            f"{name} ({r['model']}, {r['steps']}; rows {r['rows']})"
            for name, r in c.external["runs"].items()
        ]
        return f'<p class="sub">{len(runs)} external runs, fetched: {_e("; ".join(runs))}</p>'
    corpus = (
        f"synthetic mini-Pile ({c.corpus.synth} preset, seed {c.corpus.seed})"
        if c.corpus.synth
        else str(c.corpus.path)
    )
    return (
        f'<p class="sub">{len(inputs.runs)} runs: {_e(", ".join(c.train.models))} on '
        f"{' and '.join(c.train.variants)} data; {c.data.steps} steps of "
        f"{c.data.batch_size} x {c.data.seq_length} tokens in one fixed order (seed "
        f"{c.data.seed}); corpus: {_e(corpus)}</p>"
    )


def render_html(
    inputs: ReportInputs, *, loss_png: Path, runs: pd.DataFrame, csv: dict[str, str]
) -> str:
    """The page (pure given its inputs: the same inputs give the same bytes)."""
    c = inputs.config
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>pythia-suite: {_e(c.name)}</title><style>{STYLE}</style>",
        f"<script>{SCRIPT}</script></head><body>",
        f"<h1>pythia-suite: {_e(c.name)}</h1>",
        _subtitle(inputs),
        _planted_truth(inputs),
        "<h2>Runs</h2>",
        _table(runs, csv["runs"]),
        "<h2>Loss curves</h2>",
        _img(loss_png, "training loss per size and variant"),
        f'<p>CSV: <a href="{_e(csv["loss_curves"])}">{_e(csv["loss_curves"])}</a></p>',
    ]
    for report in inputs.studies:
        parts.append(f"<h2>Study: {_e(report.study)}</h2>")
        parts += [
            _img(p, f"{report.study}: {Path(p).stem.replace('_', ' ')}") for p in report.figures
        ]
        for name, df in report.tables.items():
            parts.append(f"<h3>{_e(name)}</h3>" + _table(df, csv[f"{report.study}/{name}"]))
        parts.append(_omitted(report))
        if report.results:
            parts.append(
                "<p>Result files: "
                + ", ".join(f"<code>{_e(p)}</code>" for p in report.results)
                + "</p>"
            )
    parts += [
        "<h2>Replay a batch, load a checkpoint</h2>",
        _commands(inputs),
        "<h2>Suite config</h2>",
        f"<pre>{_e(dump_config(c))}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


STALE_ID = "not-current"  # the banner a failed invocation puts on the page it left behind
# inline: the page may come from an older renderer, without this style in its sheet
STALE_STYLE = "background:#fbe4e4;border:2px solid #c62828;border-radius:4px;padding:.6em .9em"


def mark_not_current(page: Path, reason: str) -> bool:
    """Put (or replace) a banner at the top of `page`, a report left from an earlier
    invocation, saying that the last invocation failed (`reason`) and this page is not its
    result; False when there is no page. Nothing else of the page changes."""
    if not page.is_file():
        return False
    text = page.read_text(encoding="utf-8")
    text = re.sub(rf'<div id="{STALE_ID}".*?</div>\n', "", text, count=1, flags=re.DOTALL)
    banner = (
        f'<div id="{STALE_ID}" style="{STALE_STYLE}"><b>Not current.</b> The last '
        f"<code>pythia-suite run</code> of this suite failed: {_e(reason)}. This page is from "
        "an earlier invocation and does not show what the suite holds now; the next complete "
        "run draws it again (the full log: <code>suite.log</code>).</div>\n"
    )
    body = re.search(r"<body[^>]*>\n?", text)
    at = body.end() if body else 0
    with atomic_path(page, overwrite=True) as tmp:
        tmp.write_text(text[:at] + banner + text[at:], encoding="utf-8")
    return True


def restate_study_checks(inputs: ReportInputs) -> None:
    """Each study's report.json restated with the report-wide Holm adjustment (the declared
    family), so that a check shows one adjusted p in report.json, checks.csv and the page."""
    checks = report_checks(inputs.studies)
    tested = tested_count([c for _, c in checks])
    table = inputs.layout.root / CHECKS_CSV
    for report in inputs.studies:
        out_dir = inputs.layout.study(report.study)
        own = [c for study, c in checks if study == report.study]
        restate_checks(out_dir, own, tested=tested, table=os.path.relpath(table, out_dir))


def write_report(inputs: ReportInputs) -> Path:
    """Write the tables (CSV), the loss figure and report.html; return the page's path."""
    layout = inputs.layout
    runs = runs_table(inputs)
    losses = loss_table(inputs.runs)
    csv = {"runs": "tables/runs.csv", "loss_curves": "tables/loss_curves.csv"}
    for report in inputs.studies:
        for name in report.tables:
            csv[f"{report.study}/{name}"] = table_file(report.study, name)
    if layout.tables.exists():
        shutil.rmtree(layout.tables)
    with atomic_path(layout.tables) as tmp:
        tmp.mkdir()
        runs.to_csv(tmp / "runs.csv", index=False)
        checks_table(report_checks(inputs.studies)).to_csv(tmp / "checks.csv", index=False)
        losses.to_csv(tmp / "loss_curves.csv", index=False)
        for report in inputs.studies:
            for name, df in report.tables.items():
                df.to_csv(
                    tmp / Path(table_file(report.study, name)).name,
                    index=not isinstance(df.index, pd.RangeIndex),
                )
        loss_png = loss_figure(losses, inputs.runs, tmp / "loss_curves.png")
        page = render_html(inputs, loss_png=loss_png, runs=runs, csv=csv)
    restate_study_checks(inputs)
    with atomic_path(layout.report, overwrite=True) as tmp_page:
        tmp_page.write_text(page, encoding="utf-8")
    return layout.report
