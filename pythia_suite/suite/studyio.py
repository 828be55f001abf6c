"""A StudyReport saved beside the study's outputs (`report.json` + tables as CSV) and read back,
so that the report can be rendered again without running the study again."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from analysis.study import StudyReport, TruthCheck
from suite_core.atomic import atomic_path

REPORT_JSON = "report.json"
TABLES = "tables"


def _relative(path: Path, out_dir: Path) -> str:
    path = Path(path).absolute()
    try:
        return str(path.relative_to(out_dir.absolute()))
    except ValueError:
        raise ValueError(f"{path}: a study output outside its out_dir {out_dir}") from None


def save_study_report(report: StudyReport, out_dir: Path) -> Path:
    """Write each table to `out_dir/tables/<name>.csv` and the rest to `out_dir/report.json`."""
    out_dir = Path(out_dir)
    (out_dir / TABLES).mkdir(parents=True, exist_ok=True)
    tables = {}
    for name, table in report.tables.items():
        rel = f"{TABLES}/{name}.csv"
        with atomic_path(out_dir / rel, overwrite=True) as tmp:
            table.to_csv(tmp, index=not isinstance(table.index, pd.RangeIndex))
        tables[name] = rel
    for figure in report.figures:
        if not Path(figure).is_file():
            raise FileNotFoundError(f"{figure}: no such figure (listed by study {report.study})")
    saved = {
        "study": report.study,
        "figures": [_relative(p, out_dir) for p in report.figures],
        "tables": tables,
        "indexed": [n for n, t in report.tables.items() if not isinstance(t.index, pd.RangeIndex)],
        "checks": [dataclasses.asdict(c) for c in report.checks],
        "results": [_relative(p, out_dir) for p in report.results],
    }
    path = out_dir / REPORT_JSON
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(saved, indent=1) + "\n")
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
        checks=[TruthCheck(**c) for c in saved["checks"]],
        results=[out_dir / p for p in saved["results"]],
    )
