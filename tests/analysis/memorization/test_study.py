"""`run_study` on a standard and a deduped tiny run, and the notebook executed end to end."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from analysis.ledger import build_ledger
from analysis.memorization import run_study
from analysis.study import RunSpec

NOTEBOOK = Path(__file__).parents[3] / "notebooks" / "memorization.ipynb"


def test_run_study_report(
    mem_run: Path, mem_run_deduped: Path, truth: dict, tmp_path: Path
) -> None:
    runs = [
        RunSpec(
            name="nano-standard", path=mem_run, model="pythia-nano", n_params=1, variant="standard"
        ),
        RunSpec(
            name="nano-deduped",
            path=mem_run_deduped,
            model="pythia-nano",
            n_params=1,
            variant="deduped",
        ),
    ]
    report = run_study(runs, truth=truth, out_dir=tmp_path, rows=64)
    assert report.study == "memorization"
    names = {p.name for p in report.figures}
    assert {
        "memorization_fraction.png",
        "memorization_thresholds.png",
        "memorization_distribution.png",
        "memorization_canaries.png",
        "memorization_dups.png",
        "memorization_profiles.png",
        "memorization_natural_dup.png",
    } == names
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in report.figures)
    checks = {c.name: c for c in report.checks}
    assert set(checks) == {
        "canaries: more repetitions, more memorized",
        "canaries: memorization rises with ledger exposures",
        "near-duplicates: standard above deduped on duplicated text",
    }
    # exposures come from the run's ledger (what the model saw), not the planted copy count
    ledger = build_ledger(mem_run, truth)
    expo = report.tables["canary_exposures"]
    ids = [f"canaries/{c}" for c in expo["canary"]]
    assert expo["exposures"].tolist() == ledger.exposures(ids, ledger.steps).tolist()
    assert (expo["exposures"] <= expo["count"]).all()  # the model saw a part of the corpus
    natural = report.tables["natural_duplication"]
    assert len(natural) == 64 and set(natural["run"]) == {"nano-standard"}
    assert report.tables["natural_duplication_test"]["label"].str.startswith("descriptive").all()
    canaries = report.tables["canaries"]
    # the tiny runs train on ~3% of the corpus: one canary occurrence fits a window
    assert set(canaries["count"]) <= {1, 2, 4, 8, 16, 32, 64} and len(canaries) >= 1
    assert (canaries["row"] < 384).all() and canaries.groupby("canary").size().max() <= 64
    canary = checks["canaries: more repetitions, more memorized"]
    n_canaries = canaries["canary"].nunique()
    assert n_canaries < 3 and canary.status == "not testable"
    assert canary.reason == f"repetitions: {n_canaries} canaries, at least 3 needed"
    dups = report.tables["near_duplicates"]
    assert set(dups["variant"]) == {"standard", "deduped"}
    gap = checks["near-duplicates: standard above deduped on duplicated text"]
    # paired by cluster: the effect is the mean of the per-cluster differences
    wide = dups.pivot_table(index="cluster", columns="variant", values="target_loglik")
    assert gap.effect == pytest.approx((wide["standard"] - wide["deduped"]).mean(), abs=1e-6)
    assert (gap.n, gap.unit) == (dups["cluster"].nunique(), "clusters") and gap.n == 40
    assert gap.test == "mean difference, cluster sign-flip permutation (10,000)"
    # 40 steps of 8 rows: the duplicated text is not yet better predicted by the standard run
    assert gap.status == "not recovered" and gap.ci_low < 0 < gap.ci_high and gap.p_value > 0.1
    assert len(report.results) >= 2 and all(p.exists() for p in report.results)
    frac = report.tables["memorized_fraction"]
    assert set(frac["run"]) == {"nano-standard", "nano-deduped"}
    assert set(frac["label"]) == {"exact", "score>=0.75", "score>=0.5"}
    dist = report.tables["score_distribution"]
    bins = ["[0,0.25)", "[0.25,0.5)", "[0.5,0.75)", "[0.75,1)", "=1"]
    assert (dist[bins].sum(axis=1) == dist["seen_rows"]).all()
    assert (
        dist["seen_rows"].tolist()
        == frac.loc[frac["label"] == "exact"]
        .groupby("run", sort=False)["seen_rows"]
        .apply(list)["nano-standard"]
    )
    # nothing reaches score 0.5 after 40 steps: no predictability, no spread; each says why
    assert dist["max"].max() < 0.5
    assert "predictability" not in report.tables and "poisson_spread" not in report.tables
    for label in ("exact", "score>=0.75", "score>=0.5"):
        assert report.omitted[f"predictability ({label})"].startswith(
            f"No scored row of nano-standard is memorized ({label})"
        )
        assert "fewer than 5; more training steps" in report.omitted[f"poisson_spread ({label})"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_notebook_runs_end_to_end(mem_run: Path, mem_root: Path, tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = (
        f"RUN = {str(mem_run)!r}\n"
        f"TRUTH = {str(mem_root / 'corpus' / 'truth.json')!r}\n"
        f"ROWS = 48\nOUT = {str(tmp_path / 'nb')!r}"
    )
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    text = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert "canaries: more repetitions" in text and "image/png" in text
    assert "memorized_seen" in text
