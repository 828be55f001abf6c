"""A StudyReport saved beside the study's outputs (`report.json` + tables as CSV) and read back,
so that the report can be rendered again without running the study again.

`report.json` holds each check's statistics (NaN written as null, valid JSON) and names the
family its `p_adjusted` and `status` were Holm-adjusted in (`holm`): the study's own checks
when the study stage writes it; the suite's report then restates them adjusted across every
check of the report (`restate_checks`), the declared family, so that a check has one adjusted
p in report.json, `tables/checks.csv` and report.html."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.study import NOT_TESTABLE, StudyReport, TruthCheck, apply_holm
from suite_core import ConfigError
from suite_core.atomic import atomic_path

REPORT_JSON = "report.json"
TABLES = "tables"
HOLM_STUDY = "study"  # adjusted across the study's own checks (the study stage's file)
HOLM_REPORT = "report"  # adjusted across every check of the suite's report (the declared one)


def table_stem(name: str) -> str:
    """A table's file name (without `.csv`): letters, digits, `_`, `-` and `.` only (no spaces
    or colons, so that it opens by name in any shell and on any filesystem)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "table"


def _relative(path: Path, out_dir: Path) -> str:
    path = Path(path).absolute()
    try:
        return str(path.relative_to(out_dir.absolute()))
    except ValueError:
        raise ConfigError(f"{path}: a study output outside its out_dir {out_dir}") from None


def save_study_report(report: StudyReport, out_dir: Path) -> Path:
    """Write each table to `out_dir/tables/<name>.csv` and the rest to `out_dir/report.json`."""
    out_dir = Path(out_dir)
    (out_dir / TABLES).mkdir(parents=True, exist_ok=True)
    tables = {}
    for name, table in report.tables.items():
        rel = f"{TABLES}/{table_stem(name)}.csv"
        with atomic_path(out_dir / rel, overwrite=True) as tmp:
            table.to_csv(tmp, index=not isinstance(table.index, pd.RangeIndex))
        tables[name] = rel
    checks = apply_holm(report.checks)
    for figure in report.figures:
        if not Path(figure).is_file():
            raise FileNotFoundError(f"{figure}: no such figure (listed by study {report.study})")
    saved = {
        "study": report.study,
        "figures": [_relative(p, out_dir) for p in report.figures],
        "tables": tables,
        "indexed": [n for n, t in report.tables.items() if not isinstance(t.index, pd.RangeIndex)],
        "holm": {"family": HOLM_STUDY, "tested": tested_count(checks)},
        "checks": [_check_json(c) for c in checks],
        "results": [_relative(p, out_dir) for p in report.results],
        "omitted": report.omitted,
    }
    path = out_dir / REPORT_JSON
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(saved, indent=1, allow_nan=False) + "\n")
    return path


def tested_count(checks: list[TruthCheck]) -> int:
    """The size of a Holm family: the checks that were tested (not `not testable`)."""
    return sum(c.status != NOT_TESTABLE for c in checks)


def restate_checks(
    out_dir: Path, checks: list[TruthCheck], *, tested: int, table: str
) -> Path | None:
    """Rewrite `out_dir/report.json` with `checks` (its own, Holm-adjusted across the report's
    `tested` checks, listed in `table`); None when there is no saved report to restate."""
    path = Path(out_dir) / REPORT_JSON
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    assert [c["name"] for c in saved["checks"]] == [c.name for c in checks], path  # loaded here
    saved["holm"] = {"family": HOLM_REPORT, "tested": tested, "table": table}
    saved["checks"] = [_check_json(c) for c in checks]
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(saved, indent=1, allow_nan=False) + "\n")
    return path


def load_study_report(out_dir: Path) -> StudyReport:
    """The StudyReport that `save_study_report` wrote into `out_dir`."""
    out_dir = Path(out_dir)
    path = out_dir / REPORT_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (the study has not completed)")
    saved = json.loads(path.read_text())
    tables = {
        name: pd.read_csv(out_dir / rel, index_col=0 if name in saved["indexed"] else None)
        for name, rel in saved["tables"].items()
    }
    return StudyReport(
        study=saved["study"],
        figures=[out_dir / p for p in saved["figures"]],
        tables=tables,
        checks=[_check_from_json(c) for c in saved["checks"]],
        results=[out_dir / p for p in saved["results"]],
        omitted=dict(saved.get("omitted", {})),
    )


def _check_json(check: TruthCheck) -> dict[str, Any]:
    """A check's fields, NaN as None (JSON null)."""
    return {
        k: None if isinstance(v, float) and math.isnan(v) else v
        for k, v in dataclasses.asdict(check).items()
    }


def _check_from_json(saved: dict[str, Any]) -> TruthCheck:
    floats = ("effect", "ci_low", "ci_high", "p_value", "p_adjusted")
    fields: dict[str, Any] = {
        k: math.nan if k in floats and v is None else v for k, v in saved.items()
    }
    return TruthCheck(**fields)
