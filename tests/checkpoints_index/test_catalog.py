"""The SQLite catalog: runs, records, select, sync after crashes, verify."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path

import pytest

from checkpoints_index.catalog import Catalog
from checkpoints_index.store import checkpoint_dir

RUN = {
    "model": "pythia-nano",
    "variant": "deduped",
    "data_seed": 1234,
    "weight_seed": 7,
    "config": {"lr": 1e-3, "optimizer": {"betas": [0.9, 0.95]}, "steps": 64},
}


def test_register_run_is_idempotent_and_checks_fields(tmp_path: Path) -> None:
    with Catalog.open(tmp_path) as catalog:
        assert catalog.run() is None
        first = catalog.register_run(**RUN)
        assert catalog.register_run(**RUN) == first
        with pytest.raises(ValueError, match=r"config\.optimizer\.betas"):
            catalog.register_run(
                **{**RUN, "config": {**RUN["config"], "optimizer": {"betas": [0.9, 0.99]}}}
            )
        with pytest.raises(ValueError, match="weight_seed"):
            catalog.register_run(**{**RUN, "weight_seed": 8})
        with pytest.raises(ValueError, match=r"config\.extra"):
            catalog.register_run(**{**RUN, "config": {**RUN["config"], "extra": 1}})
    with Catalog.open(tmp_path) as catalog:  # persisted
        run = catalog.run()
    assert (run.model, run.variant, run.data_seed, run.weight_seed) == (
        "pythia-nano",
        "deduped",
        1234,
        7,
    )
    assert run.config == RUN["config"]


def test_records_and_select(tmp_path: Path, save) -> None:
    records = [save(tmp_path, s) for s in (0, 1, 2, 4, 8, 16, 24)]
    with Catalog.open(tmp_path) as catalog:
        assert catalog.checkpoints() == records
        assert catalog.get(4) == records[3]
        assert [r.step for r in catalog.select(every=8)] == [0, 8, 16, 24]
        assert [r.step for r in catalog.select(steps=[16, 2])] == [2, 16]
        assert [r.step for r in catalog.select(min_step=4, max_step=16)] == [4, 8, 16]
        assert [r.step for r in catalog.select(every=4, min_step=1)] == [4, 8, 16, 24]
        with pytest.raises(ValueError, match="step 3"):
            catalog.select(steps=[3])
        with pytest.raises(ValueError, match="every"):
            catalog.select(every=0)
        assert catalog.latest_complete() == records[-1]
    row = (
        sqlite3.connect(tmp_path / "catalog.sqlite")
        .execute(
            "SELECT step, tokens_seen, path, sha256, has_optimizer FROM checkpoints WHERE step = 8"
        )
        .fetchone()
    )
    assert row == (8, 8000, "checkpoints/step8", records[4].sha256, 1)


def test_sync_after_crash_between_rename_and_insert(tmp_path: Path, save, caplog) -> None:
    saved = [save(tmp_path, s) for s in (0, 1, 2)]
    with sqlite3.connect(tmp_path / "catalog.sqlite") as db:  # as if the insert never ran
        db.execute("DELETE FROM checkpoints WHERE step = 2")
    with Catalog.open(tmp_path) as catalog:
        assert [r.step for r in catalog.checkpoints()] == [0, 1]
        with caplog.at_level(logging.WARNING):
            assert catalog.sync() == ([2], [])
        assert "step2" in caplog.text
        synced = catalog.get(2)
        assert (synced.sha256, synced.sums_sha256, synced.tokens_seen, synced.has_optimizer) == (
            saved[2].sha256,
            saved[2].sums_sha256,
            2000,
            True,
        )
        assert catalog.sync() == ([], [])
        assert catalog.verify() == []


def test_latest_complete_syncs_first(tmp_path: Path, save) -> None:
    save(tmp_path, 0)
    save(tmp_path, 5)
    with sqlite3.connect(tmp_path / "catalog.sqlite") as db:
        db.execute("DELETE FROM checkpoints WHERE step = 5")
    with Catalog.open(tmp_path) as catalog:
        assert catalog.latest_complete().step == 5


def test_sync_forgets_vanished_and_incomplete_folders(tmp_path: Path, save, caplog) -> None:
    for step in (0, 1, 2):
        save(tmp_path, step)
    shutil.rmtree(checkpoint_dir(tmp_path, 2))
    (checkpoint_dir(tmp_path, 1) / "SHA256SUMS").unlink()
    with Catalog.open(tmp_path) as catalog:
        with caplog.at_level(logging.WARNING):
            assert catalog.sync() == ([], [1, 2])
        assert "step2" in caplog.text and "forgetting" in caplog.text
        assert [r.step for r in catalog.checkpoints()] == [0]
        assert catalog.latest_complete().step == 0


def test_verify_reports_each_problem(tmp_path: Path, save) -> None:
    for step in (0, 1, 2):
        save(tmp_path, step)
    (checkpoint_dir(tmp_path, 1) / "rng.pt").write_bytes(b"changed")
    (checkpoint_dir(tmp_path, 2) / "notes.txt").write_text("unlisted")
    with Catalog.open(tmp_path) as catalog:
        problems = catalog.verify()
        assert len(problems) == 2
        assert "step1" in problems[0] and "rng.pt: sha256 mismatch" in problems[0]
        assert "step2" in problems[1] and "notes.txt: not listed" in problems[1]
        assert catalog.verify(steps=[0]) == []
        missing = f"{tmp_path / 'catalog.sqlite'}: step 7: no such checkpoint"
        assert catalog.verify(steps=[7]) == [missing]


def test_open_requires_the_run_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing"):
        Catalog.open(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no catalog"):
        Catalog.open(tmp_path, create=False)
    (tmp_path / "catalog.sqlite").write_bytes(b"not a database at all" * 10)
    with pytest.raises(ValueError, match="catalog.sqlite"):
        Catalog.open(tmp_path)
