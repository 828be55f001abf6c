"""`pythia-suite analyze memorization`: the results file, both kinds of input, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from analysis.memorization.results import load_scores, read_results
from analysis.sources import open_checkpoints
from pythia_suite.cli import main

from .conftest import TARGET, K

ARGS = ["--rows", "40", "--k", str(K), "--target", str(TARGET), "--batch-size", "16"]


@pytest.fixture(scope="module")
def run_file(mem_run: Path, cli_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "mem.h5"
    proc = subprocess.run(
        [
            str(cli_bin),
            "analyze",
            "memorization",
            str(mem_run),
            *ARGS,
            "--steps",
            "0,20,40",
            "--out",
            str(out),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    return out


def test_hdf5_layout_and_attributes(run_file: Path, mem_run: Path) -> None:
    with h5py.File(run_file) as f:
        assert f["steps"][()].tolist() == [0, 20, 40] and f["steps"].dtype == np.int64
        rows = f["rows"][()]
        assert rows.dtype == np.int64 and rows.shape == (40,)
        for name, dtype in (
            ("scores", np.float32),
            ("loglik", np.float32),
            ("token_acc", np.float32),
            ("seen", np.bool_),
        ):
            assert f[name].shape == (3, 40) and f[name].dtype == dtype, name
        np.testing.assert_array_equal(
            f["seen"][()], rows[None, :] < np.array([0, 160, 320])[:, None]
        )
        assert (f.attrs["k"], f.attrs["target"], f.attrs["dtype"]) == (K, TARGET, "float32")
        ck = open_checkpoints(mem_run)
        assert json.loads(f.attrs["sha256"]) == [ck.sha256(s) for s in (0, 20, 40)]
        run_json = json.loads((mem_run / "run.json").read_text())  # joins run.json's data
        manifest = json.loads((Path(run_json["data"]["path"]) / "manifest.json").read_text())
        assert f.attrs["data_fingerprint"] == run_json["data"]["fingerprint"]
        assert f.attrs["data_fingerprint"] == manifest["fingerprint"]
        assert json.loads(f.attrs["config"])["rows"] == 40
    # rows: stratified over all 384 rows (320 trained + 64 held out), one per block
    assert (np.diff(rows) > 0).all() and rows.max() >= 320


def test_pandas_api(run_file: Path) -> None:
    df = load_scores(run_file)
    res = read_results(run_file)
    assert len(df) == 120 and list(df.columns) == [
        "step",
        "row",
        "score",
        "memorized",
        "seen",
        "loglik",
        "token_acc",
    ]
    assert np.array_equal(df["score"].to_numpy().reshape(3, 40), res.scores)
    assert (df.loc[df["step"] == 0, "score"] == 0).mean() > 0.9  # an untrained model
    last = df[df["step"] == 40]
    assert last["loglik"].mean() > df[df["step"] == 0]["loglik"].mean() + 1


def test_hf_folder_and_bare_prefix_give_the_same_scores(
    run_file: Path, mem_run: Path, mem_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "hf.h5"
    folder = mem_run / "checkpoints" / "step40"
    assert (
        main(
            [
                "analyze",
                "memorization",
                "--model",
                str(folder),
                "--step",
                "40",
                "--data",
                str(mem_data / "train"),
                "--data-batch-size",
                "8",
                *ARGS,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    a, b = read_results(run_file), read_results(out)
    assert b.steps.tolist() == [40]
    np.testing.assert_array_equal(a.rows, b.rows)
    np.testing.assert_array_equal(a.scores[2], b.scores[0])
    np.testing.assert_array_equal(a.loglik[2], b.loglik[0])
    np.testing.assert_array_equal(a.seen[2], b.seen[0])


def _bad_inputs(mem_run: Path, mem_data: Path, tmp: Path) -> list[tuple[list[str], str]]:
    step40 = mem_run / "checkpoints" / "step40"
    bert = tmp / "bert"
    shutil.copytree(step40, bert)
    cfg = json.loads((bert / "config.json").read_text())
    (bert / "config.json").write_text(json.dumps({**cfg, "model_type": "bert"}))
    small = tmp / "small_vocab"
    shutil.copytree(step40, small)
    (small / "config.json").write_text(json.dumps({**cfg, "vocab_size": 8}))
    for edited in (bert, small):  # plain HF folders (no SHA256SUMS): the config itself is refused
        (edited / "SHA256SUMS").unlink()
    other = tmp / "other_data"
    shutil.copytree(mem_data, other)
    manifest = json.loads((other / "manifest.json").read_text())  # other data: another seed
    (other / "manifest.json").write_text(json.dumps({**manifest, "seed": manifest["seed"] + 1}))
    exists = tmp / "exists.h5"
    exists.write_bytes(b"")
    hf = ["--data", str(mem_data / "train"), "--data-batch-size", "8"]
    return [
        (["--model", str(bert), "--step", "40", *hf], "model_type"),
        (["--model", str(small), "--step", "40", *hf], "vocab_size"),
        ([str(mem_run), "--k", "20", "--target", "20"], "seq_length"),
        ([str(mem_run), "--steps", "7"], "no checkpoint at step 7"),
        (["--model", str(step40), "--step", "100", *hf], "past the end of the data"),
        ([str(mem_run), "--rows", "0"], "--rows"),
        ([str(mem_run), "--data", str(other)], "field 'data.fingerprint'"),
        ([str(mem_run), "--out", str(exists)], "already exists"),
    ]


def test_bad_input_one_line_exit_2(
    mem_run: Path, mem_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.h5"
    for args, message in _bad_inputs(mem_run, mem_data, tmp_path):
        if "--out" not in args:
            args = [*args, "--out", str(out)]
        args = ["--k", str(K), "--target", str(TARGET), "--rows", "8", *args]  # args win
        assert main(["analyze", "memorization", *args]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (args, err)
        assert not out.exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.h5")]
