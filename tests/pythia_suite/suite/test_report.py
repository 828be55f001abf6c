"""The report: StudyReports (real figures and tables) rendered into one self-contained page,
checked in headless Chromium: every figure decoded, every planted-truth line as given."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from analysis.stats import paired_test, stable_seed
from analysis.study import StudyReport, TruthCheck
from pythia_suite.suite.config import load_config
from pythia_suite.suite.layout import Layout
from pythia_suite.suite.plan import plan_runs
from pythia_suite.suite.report import ReportInputs, report_checks, write_report
from pythia_suite.suite.studyio import load_study_report, save_study_report
from tests.pythia_suite.suite.conftest import SuiteRun, render_in_chromium


def _figure(path: Path, seed: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(np.cumsum(rng.normal(size=50)))
    ax.set_title(path.stem)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _study(out_dir: Path, name: str, checks: list[TruthCheck]) -> StudyReport:
    """A StudyReport as a study builds it: PNGs and result files in out_dir, pandas tables."""
    steps = [0, 8, 16, 24]
    table = pd.DataFrame({"step": steps, "score": [0.0, 0.125, 0.5, 0.75]})
    indexed = pd.DataFrame(
        {"memorized": [3, 5]}, index=pd.Index(["standard", "deduped"], name="variant")
    )
    result = out_dir / "results.csv"
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(result, index=False)
    return StudyReport(
        study=name,
        figures=[_figure(out_dir / f"{name}_a.png", 1), _figure(out_dir / f"{name}_b.png", 2)],
        tables={"by_step": table, "by_variant": indexed},
        checks=checks,
        results=[result],
    )


@pytest.fixture
def suite_copy(tiny_suite: SuiteRun, tmp_path: Path) -> Layout:
    shutil.copytree(tiny_suite.dir, tmp_path / "tiny")
    return Layout(root=tmp_path / "tiny")


def _inputs(layout: Layout, studies: list[StudyReport]) -> ReportInputs:
    config = load_config(layout.suite_yaml)
    runs = [r.spec(layout) for r in plan_runs(config, layout, "suite.yaml")]
    return ReportInputs(
        config=config,
        layout=layout,
        runs=runs,
        studies=studies,
        verified={r.name: {"batches_verified": 24, "checkpoints_verified": 7} for r in runs},
    )


def _tested(name: str, shift: float, n: int = 12, *, direction: str = "greater") -> TruthCheck:
    """A real test's check: paired differences `shift` + a fixed spread over n units."""
    diffs = shift + np.linspace(-1, 1, n)
    result = paired_test(diffs, unit="pairs", seed=stable_seed(name), direction=direction)
    return TruthCheck.from_test(name, result, direction=direction, detail="")


def test_study_report_round_trips_through_its_files(tmp_path: Path) -> None:
    untestable = TruthCheck.not_testable("accuracy rises", "accuracy is constant (0) over terms")
    report = _study(tmp_path / "s", "memorization", [_tested("more copies", 2.0), untestable])
    report.omitted["predictability"] = "No row is memorized; more steps would produce it."
    save_study_report(report, tmp_path / "s")
    saved = json.loads((tmp_path / "s" / "report.json").read_text())  # valid JSON: no NaN
    assert saved["checks"][1]["effect"] is None and saved["checks"][1]["status"] == "not testable"
    assert saved["holm"] == {"family": "study", "tested": 1}  # the family it states
    back = load_study_report(tmp_path / "s")
    assert back.study == "memorization" and back.checks[0] == report.checks[0]
    assert back.checks[1].reason == untestable.reason and math.isnan(back.checks[1].p_value)
    assert back.omitted == report.omitted
    assert back.figures == report.figures and back.results == report.results
    for name, table in report.tables.items():
        pd.testing.assert_frame_equal(back.tables[name], table, check_dtype=False)


def test_report_renders_every_figure_and_every_check(suite_copy: Layout) -> None:
    checks = {
        "memorization": [
            _tested("canaries: more repetitions, more memorized", 2.0),  # exact p = 1/4096
            _tested("held-out rows are not memorized", 0.1),
        ],
        "bias": [
            _tested("the swap lowers the stereotype gap", -2.0, direction="less"),
            TruthCheck.not_testable("WinoBias <b>pro</b> above anti", "no paired difference"),
        ],
    }
    studies = [_study(suite_copy.study(s), s, c) for s, c in checks.items()]
    studies[1].omitted["bias_figure"] = "No checkpoint after the branch; more steps would do."
    for study in studies:  # as the suite does: saved by the study stage, loaded by the report
        save_study_report(study, suite_copy.study(study.study))
    loaded = [load_study_report(suite_copy.study(s.study)) for s in studies]
    page = write_report(_inputs(suite_copy, loaded))
    state = render_in_chromium(page)
    assert state.figures == 1 + 2 + 2 and state.loaded == state.figures
    assert len(state.widths) == 5 and min(state.widths) > 0
    # Holm across the report's three tested checks (statsmodels as the oracle)
    flat = [c for cs in checks.values() for c in cs]
    p = [c.p_value for c in flat[:3]]
    adjusted = multipletests(p, method="holm")[1]
    assert p[0] == pytest.approx(1 / 4096) and adjusted[0] == pytest.approx(3 / 4096)
    assert [passed for passed, _ in state.checks] == [True, False, True, False]
    first = flat[0]
    assert state.checks[0][1] == (
        "\u2714 memorization: canaries: more repetitions, more memorized: recovered: "
        f"{first.effect:.3g} [{first.ci_low:.3g}, {first.ci_high:.3g}], adjusted p "
        f"{adjusted[0]:.3g}, n = 12 pairs, {first.test}"
    )
    assert (
        ": not recovered: " in state.checks[1][1] and f"p {adjusted[1]:.3g}," in state.checks[1][1]
    )
    assert state.checks[3][1].endswith(
        "bias: WinoBias <b>pro</b> above anti: not testable: no paired difference"
    )  # escaped, not markup
    html = page.read_text()
    assert "<b>2 recovered</b>, 1 not recovered, 1 not testable, of 4 planted-truth checks" in html
    assert "Holm-adjusted across the 3 tested checks" in html
    assert "<b>bias_figure</b> (not drawn): No checkpoint after the branch" in html
    table = pd.read_csv(suite_copy.tables / "checks.csv")
    assert list(table.columns) == ["study", *(f.name for f in dataclasses.fields(TruthCheck))]
    assert table["status"].tolist() == ["recovered", "not recovered", "recovered", "not testable"]
    np.testing.assert_allclose(table["p_adjusted"].to_numpy()[:3], adjusted)
    assert table["n"].tolist() == [12, 12, 12, 0] and table["p_value"].isna().tolist()[3]
    # one Holm everywhere: each study's report.json restates its checks adjusted across the
    # report (before: across the study's own, 1 - (1 - p) for a family of one)
    for study in ("memorization", "bias"):
        saved = json.loads((suite_copy.study(study) / "report.json").read_text())
        table_path = suite_copy.study(study) / saved["holm"].pop("table")
        assert saved["holm"] == {"family": "report", "tested": 3}
        assert table_path.resolve() == (suite_copy.tables / "checks.csv").resolve()
        mine = table[table["study"] == study]
        assert [c["name"] for c in saved["checks"]] == mine["name"].tolist()
        assert [c["status"] for c in saved["checks"]] == mine["status"].tolist()
        for check, p_csv in zip(saved["checks"], mine["p_adjusted"], strict=True):
            if check["p_adjusted"] is None:
                assert math.isnan(p_csv)
            else:
                assert check["p_adjusted"] == p_csv  # the same float, from the same apply_holm
                assert f"adjusted p {p_csv:.3g}," in html
    saved = json.loads((suite_copy.study("memorization") / "report.json").read_text())
    np.testing.assert_allclose([c["p_adjusted"] for c in saved["checks"]], adjusted[:2])
    shown = [c for study, c in report_checks(loaded) if study == "memorization"]
    assert load_study_report(suite_copy.study("memorization")).checks == shown
    # self-contained: every image inline, links only to the CSV tables beside the page
    assert re.findall(r'src="([^"]{0,22})', html) == ["data:image/png;base64,"] * 5
    links = re.findall(r'href="([^"]+)"', html)
    assert links and all(link.startswith("tables/") and link.endswith(".csv") for link in links)
    for link in links:
        assert (suite_copy.root / link).is_file(), link
    table = pd.read_csv(suite_copy.tables / "bias__by_variant.csv", index_col=0)
    assert table.loc["deduped", "memorized"] == 5
    assert f"pythia-suite replay {suite_copy.root}/runs/pythia-nano-standard --step" in html


def test_a_failed_check_and_a_broken_figure_show(suite_copy: Layout) -> None:
    wrong_sign = _tested("accuracy rises with term frequency", -2.0)
    study = _study(suite_copy.study("term_frequency"), "term_frequency", [wrong_sign])
    broken = study.figures[1]
    broken.write_bytes(broken.read_bytes()[:100])  # a PNG cut short: it cannot decode
    state = render_in_chromium(write_report(_inputs(suite_copy, [study])))
    assert state.figures == 3 and state.loaded == 2 and min(state.widths) == 0
    assert state.checks == [(False, state.checks[0][1])]
    assert wrong_sign.p_value == 1.0 and wrong_sign.effect == pytest.approx(-2.0)
    assert ": not recovered: -2 [" in state.checks[0][1]
    assert "adjusted p 1, n = 12 pairs" in state.checks[0][1]


def test_tiny_suite_report_loads_in_chromium(tiny_suite: SuiteRun) -> None:
    state = render_in_chromium(tiny_suite.dir / "report.html")
    assert state.figures == 1 and state.loaded == 1 and state.widths[0] > 0
    assert state.checks == []  # no study in the tiny preset until the study packages land


def test_table_files_have_no_spaces_or_colons(tmp_path: Path) -> None:
    from pythia_suite.suite.report import table_file

    name = "facts: top-10 minus bottom-10 accuracy x100"
    assert table_file("term_frequency", name) == (
        "tables/term_frequency__facts_top-10_minus_bottom-10_accuracy_x100.csv"
    )
    report = StudyReport(study="s", tables={name: pd.DataFrame({"a": [1, 2]})})
    save_study_report(report, tmp_path)
    assert [p.name for p in (tmp_path / "tables").iterdir()] == [
        "facts_top-10_minus_bottom-10_accuracy_x100.csv"
    ]
    back = load_study_report(tmp_path)
    pd.testing.assert_frame_equal(back.tables[name], report.tables[name])
