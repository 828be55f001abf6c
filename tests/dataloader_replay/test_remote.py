"""Rows by HTTP range request, against the loopback hub server (tests/hub_server.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dataloader_replay import remote
from dataloader_replay.replay import TrainData
from dataloader_replay.sources import open_source
from pythia_suite.cli import main
from suite_core import DataError
from tests.dataloader_replay.shard_data import random_rows, write_merged, write_shards
from tests.hub_server import HubServer, publish
from tests.shared import online_hub

WIDTH, ROWS, B = 7, 96, 8
CUTS = [13, 17, 21, 501, 1000, 1300]
COMMIT = "c" * 40
HF = "hf://datasets/o/n"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(merged prefix, hub root holding its shards as datasets/o/n at COMMIT = main)."""
    root = tmp_path_factory.mktemp("hub")
    merged = write_merged(root / "train", random_rows(ROWS, WIDTH, seed=5))
    write_shards(merged, root / "shards", CUTS)
    files = {p.name: p for p in (root / "shards").iterdir()}
    publish(root / "hub", "datasets", "o/n", files, commit=COMMIT)
    return merged, root / "hub"


@pytest.fixture
def hub(
    published: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[HubServer]:
    monkeypatch.setattr(remote, "RETRY", remote.RetryPolicy(backoff=0.01, read_timeout=20))
    online_hub(monkeypatch)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))  # the default cache
    with HubServer(published[1]) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def mirror(hub: HubServer) -> str:
    return f"{hub.url}/datasets/o/n/resolve/{COMMIT}/"


def test_remote_replay_equals_local_byte_for_byte(
    hub: HubServer, published: tuple[Path, Path], tmp_path: Path
) -> None:
    merged = published[0]
    local = TrainData.open(merged, batch_size=B)
    for spec in (HF, f"{HF}@main", f"{HF}@{COMMIT}", mirror(hub)):
        data = open_source(spec, batch_size=B, cache=tmp_path / "cache")
        assert data.num_rows == ROWS and data.seq_length == WIDTH - 1
        assert np.array_equal(data.rows(0, ROWS), local.rows(0, ROWS)), spec
    outs = []
    for src in (HF, str(merged)):
        out = tmp_path / f"{len(outs)}.npy"
        argv = ["replay", src, "--step", "3", "--end-step", "5", "--batch-size", str(B)]
        assert main([*argv, "--out", str(out), "--cache", str(tmp_path / "c2")]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_one_step_reads_header_entries_and_batch_only(hub: HubServer, tmp_path: Path) -> None:
    data = open_source(HF, batch_size=B, cache=tmp_path)
    hub.stats.reset()
    data.batch(5)  # rows 40..47: bytes [560, 672) of the merged file, inside shard 4
    header, entries, batch = 34 + 4, 12 * B, B * WIDTH * 2
    assert hub.stats.body_bytes == entries + batch  # the header was read by open_source
    assert [r[2] for r in hub.stats.requests] == [
        f"bytes={34 + 4 * 40}-{34 + 4 * 48 - 1}",
        f"bytes={34 + 4 * ROWS + 8 * 40}-{34 + 4 * ROWS + 8 * 48 - 1}",
        "bytes=59-170",  # shard 4 starts at byte 501
    ]
    hub.stats.reset()
    fresh = open_source(HF, batch_size=B, cache=tmp_path / "fresh")
    fresh.batch(5)
    ranged = sum(
        int(r[2].split("-")[1]) - int(r[2][6:].split("-")[0]) + 1
        for r in hub.stats.requests
        if r[2]
    )
    assert ranged == header + entries + batch
    hub.stats.reset()
    data.batch(5)  # from the range cache
    assert hub.stats.requests == []


def test_dropped_connection_is_resumed_to_the_same_bytes(
    hub: HubServer, published: tuple[Path, Path], tmp_path: Path
) -> None:
    data = open_source(HF, batch_size=32, cache=tmp_path)
    hub.faults.drop_after, hub.faults.drops = 100, 2  # the bin range of step 1 is 448 bytes
    got = data.batch(1)
    assert np.array_equal(got, TrainData.open(published[0], batch_size=32).batch(1))
    assert [(r[1].rsplit("/", 1)[1], r[2]) for r in hub.stats.requests[-6:]] == [
        ("document.idx", "bytes=162-289"),  # rows 32..63's lengths: dropped after 100 bytes
        ("document.idx", "bytes=262-289"),  # resumed after the bytes received
        ("document.idx", "bytes=674-929"),  # their pointers: dropped too
        ("document.idx", "bytes=774-929"),
        ("document-00003-of-00006.bin", "bytes=427-479"),
        ("document-00004-of-00006.bin", "bytes=0-394"),
    ]
    assert not list(tmp_path.rglob("*.tmp"))


def test_server_ignoring_range_is_refused(hub: HubServer, tmp_path: Path) -> None:
    hub.faults.ignore_range = True
    with pytest.raises(DataError, match=r"document.idx: the server ignored the Range request"):
        open_source(HF, batch_size=B, cache=tmp_path)
    assert not list(tmp_path.rglob("ranges/*/*"))


def test_offline_reads_only_the_cache(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_source(f"{HF}@main", batch_size=B, cache=tmp_path).batch(2)
    before = list(hub.stats.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = open_source(f"{HF}@main", batch_size=B, cache=tmp_path)
    assert np.array_equal(data.batch(2), data.batch(2))
    assert hub.stats.requests == before  # nothing asked of the server
    with pytest.raises(DataError, match=r"document.idx: bytes 162-193 are not in the cache"):
        data.batch(4)
    with pytest.raises(DataError, match="HF_HUB_OFFLINE is set and the cache .* holds no listing"):
        open_source(f"{HF}@other", cache=tmp_path)


def run_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip().removeprefix("pythia-suite: error: ")


def test_bad_remote_inputs_one_line_exit_2(
    hub: HubServer,
    published: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "x.npy"
    replay = ["--step", "0", "--batch-size", str(B), "--out", str(out), "--cache", str(tmp_path)]
    assert run_error(capsys, "replay", f"{HF}@nope", *replay) == (
        f"{HF}@nope: revision 'nope' does not exist at {hub.url}"
    )
    assert run_error(capsys, "replay", "hf://datasets/o/absent", *replay) == (
        f"hf://datasets/o/absent: no dataset 'o/absent' at {hub.url}"
    )
    assert run_error(capsys, "replay", "http://127.0.0.1:9/data/", *replay).startswith(
        "http://127.0.0.1:9/data/: unreachable ("
    )
    data = open_source(mirror(hub), batch_size=B, cache=tmp_path / "m")
    shard = published[1] / "datasets/o/n" / COMMIT / "document-00005-of-00006.bin"
    saved = shard.read_bytes()
    shard.unlink()
    try:
        with pytest.raises(
            DataError, match=rf"^{mirror(hub)}document-00005-of-00006.bin: HTTP 404"
        ):
            data.batch(10)
        shard.write_bytes(saved[:-2])  # a shard of the wrong size
        assert run_error(capsys, "replay", HF, *replay) == (
            f"{hub.url}/datasets/o/n/resolve/{COMMIT}: field 'size': the shards hold 1342 bytes "
            "but the idx needs 1344 (shorter by 2)"
        )
    finally:
        shard.write_bytes(saved)
    assert not out.exists()


def test_incomplete_range_cache(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = open_source(HF, batch_size=B, cache=tmp_path)
    want = data.batch(6)
    ranges = sorted(tmp_path.glob("ranges/*/*"), key=lambda p: p.stat().st_size)
    damaged = ranges[-1]  # the batch's bytes
    damaged.write_bytes(damaged.read_bytes()[:-5])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = open_source(HF, batch_size=B, cache=tmp_path)
    with pytest.raises(DataError, match=r"document-00004-of-00006.bin: bytes 171-282 are not in"):
        offline.batch(6)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    hub.stats.reset()
    assert np.array_equal(open_source(HF, batch_size=B, cache=tmp_path).batch(6), want)
    assert [r[2] for r in hub.stats.requests if r[2]] == ["bytes=171-282"]  # fetched again
    assert damaged.stat().st_size == 112


def test_idx_of_another_dtype_or_shape(
    hub: HubServer, published: tuple[Path, Path], tmp_path: Path
) -> None:
    folder = published[1] / "datasets/o/n" / COMMIT
    idx = folder / "document.idx"
    saved = idx.read_bytes()
    try:
        idx.write_bytes(saved[:17] + bytes([4]) + saved[18:])  # dtype code 4: int32
        with pytest.raises(DataError) as err:
            open_source(mirror(hub), cache=tmp_path / "a")
        assert str(err.value) == (
            f"{mirror(hub)}document.idx: field 'sequence_pointers': row 95 starts at byte 1330, "
            "rows of 7 int32 tokens put it at 2660 (the idx's dtype or lengths disagree with "
            "its pointers)"
        )
    finally:
        idx.write_bytes(saved)
    # EleutherAI's dataset at its pinned revision: the published shape is enforced
    from dataloader_replay.pythia_facts import DATASETS

    pythia = DATASETS[1]
    files = {p.name: p for p in folder.iterdir()}
    publish(published[1], "datasets", pythia.repo_id, files, commit=pythia.revision)
    with pytest.raises(
        DataError,
        match=r"document.idx: field 'sequence_count': 96, published 146432000 \(EleutherAI's published shape at EleutherAI/pile-standard-pythia-preshuffled@bac79b68",
    ):
        open_source(f"hf://datasets/{pythia.repo_id}", cache=tmp_path / "b")


def test_token_and_endpoint_are_honoured(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_loopback_token")
    seen: list[str | None] = []
    original = hub.httpd.RequestHandlerClass._serve  # type: ignore[attr-defined]

    def spy(handler, *, body: bool) -> None:  # type: ignore[no-untyped-def]
        seen.append(handler.headers.get("Authorization"))
        original(handler, body=body)

    monkeypatch.setattr(hub.httpd.RequestHandlerClass, "_serve", spy)
    open_source(HF, batch_size=B, cache=tmp_path).batch(0)
    assert seen and set(seen) == {"Bearer hf_loopback_token"}
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    # huggingface_hub retries a refused connection 5 times over 23 s; the waits are skipped here
    monkeypatch.setattr("huggingface_hub.utils._http.time.sleep", lambda seconds: None)
    with pytest.raises(
        DataError, match=r"^hf://datasets/o/n: http://127.0.0.1:9 unreachable or failing"
    ):
        open_source(HF, cache=tmp_path / "x")


def test_analyze_count_reads_the_same_counts_remotely(
    hub: HubServer, published: tuple[Path, Path], tmp_path: Path
) -> None:
    from analysis.term_frequency.scan import CountConfig, count_terms
    from analysis.term_frequency.terms import Term

    local = TrainData.open(published[0], batch_size=B)
    row = local.rows(50, 51)[0]
    terms = [
        Term(name="a", tokens=(int(row[1]),)),
        Term(name="b", tokens=tuple(map(int, row[2:4]))),
    ]
    config = CountConfig(steps=(3, 7, 12), batch_size=B)
    here = count_terms(str(published[0]), terms, config)
    there = count_terms(HF, terms, config)
    assert np.array_equal(here.counts, there.counts) and here.counts[-1].min() >= 1


def test_data_plan_names_urls_and_reads_only_the_header(
    hub: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["data", "plan", HF, "--steps", "5:6", "--batch-size", str(B), "--cache", str(tmp_path)]
    assert main(argv) == 0
    base = f"{hub.url}/datasets/o/n/resolve/{COMMIT}/"
    assert capsys.readouterr().out.splitlines() == [
        f"{base}document.idx\tbytes 0-37\t38",
        f"{base}document.idx\tbytes 194-225\t32",
        f"{base}document.idx\tbytes 738-801\t64",
        f"{base}document-00004-of-00006.bin\tbytes 59-170\t112",
        "total: 246 bytes in 4 ranges of 2 files (steps 5..5, rows 40..47)",
    ]
    assert [r[2] for r in hub.stats.requests if r[2]] == ["bytes=0-37"]
