"""The table of EleutherAI's published Pythia checkpoints and the reported bad revisions."""

from __future__ import annotations

import logging

import pytest

from checkpoints_index import hub
from checkpoints_index.hub_reports import REPORTS
from checkpoints_index.schedule import checkpoint_steps


def test_full_table() -> None:
    table = hub.list_revisions()
    assert len(table) == 10 * 2 * 154
    repos = sorted({r.repo_id for r in table})
    assert repos[:2] == ["EleutherAI/pythia-1.4b", "EleutherAI/pythia-1.4b-deduped"]
    assert "EleutherAI/pythia-14m" in repos and "EleutherAI/pythia-12b-deduped" in repos
    assert len(repos) == 20
    steps = checkpoint_steps("pythia", 143000)
    for repo in repos:
        assert [r.revision for r in table if r.repo_id == repo] == [f"step{s}" for s in steps]


def test_from_pretrained_args() -> None:
    assert hub.hf_from_pretrained_args("pythia-70m-deduped", 143000) == (
        "EleutherAI/pythia-70m-deduped",
        "step143000",
    )
    assert hub.hf_from_pretrained_args("EleutherAI/pythia-1.4b", 512) == (
        "EleutherAI/pythia-1.4b",
        "step512",
    )
    assert hub.hf_from_pretrained_args("pythia-350m-deduped", 1000) == (
        "EleutherAI/pythia-410m-deduped",
        "step1000",
    )
    assert hub.hf_from_pretrained_args("pythia-19m-v0", 3000) == (
        "EleutherAI/pythia-70m-v0",
        "step3000",
    )


@pytest.mark.parametrize(
    "model, step",
    [
        ("pythia-12b", 50000),
        ("pythia-12b", 58000),
        ("pythia-2.8b", 0),
        ("pythia-2.8b", 53000),
        ("pythia-2.8b", 140000),
        ("pythia-2.8b", 54000),
        ("pythia-12b-deduped", 32000),
        ("pythia-12b", 4000),
        ("pythia-6.9b", 26000),
        ("pythia-160m", 1),
        ("pythia-14m-deduped", 2),
    ],
)
def test_reported_revisions_warn(model: str, step: int, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="checkpoints_index.hub"):
        messages = hub.warnings_for(model, step)
    assert messages and all(m in caplog.text for m in messages)
    assert all("https://github.com/" in m for m in messages)
    assert f"@step{step}" in messages[0]


@pytest.mark.parametrize(
    "model, step",
    [
        ("pythia-12b", 49000),
        ("pythia-2.8b", 66000),
        ("pythia-2.8b-deduped", 0),
        ("pythia-70m", 143000),
        ("pythia-12b", 33000),
        ("pythia-6.9b-deduped", 26000),
    ],
)
def test_clean_revisions_do_not_warn(model: str, step: int, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        assert hub.warnings_for(model, step) == []
    assert caplog.text == ""


def test_pythia_2p8b_report_counts() -> None:
    """Issue #205: 76 branches serve main's file, 10 another one, 68 are unique."""
    flagged = {r.step: r.reports for r in hub.list_revisions("pythia-2.8b")}
    by_url = [s for s, reps in flagged.items() if any("issues/205" in r.url for r in reps)]
    assert len(by_url) == 86
    assert len(flagged) - len(by_url) == 68
    assert all(66000 <= s <= 142000 for s in flagged if s not in by_url)


def test_renamed_and_v0_names_warn(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        notes = hub.warnings_for("pythia-6.7b-deduped", 143000)
    assert "pythia-6.9b" in notes[0] and "issues/60" in notes[0]
    notes = hub.warnings_for("pythia-160m-v0", 143000)
    assert len(notes) == 1 and "retrained" in notes[0]
    assert hub.revision("pythia-160m-v0", 1).reports == ()  # reports concern current repos


@pytest.mark.parametrize("model", ["gpt2", "pythia-99m", "pythia-14m-v0", "pythia-70m-dedup"])
def test_unknown_models(model: str) -> None:
    with pytest.raises(ValueError, match="model"):
        hub.parse_model(model)


def test_unpublished_step() -> None:
    with pytest.raises(ValueError, match="step 1500"):
        hub.revision("pythia-70m", 1500)


def test_every_report_is_sourced_and_on_the_schedule() -> None:
    steps = set(checkpoint_steps("pythia", 143000))
    for report in REPORTS:
        assert report.url.startswith("https://github.com/")
        assert set(report.steps) <= steps and report.kind in {
            "identical",
            "wrong-weights",
            "missing",
        }
