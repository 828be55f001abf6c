"""`torchrun --nproc_per_node 2` (gloo) writes the same file as one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

from .conftest import TARGET, K


def test_two_processes_write_the_single_process_file(
    mem_run: Path, cli_bin: Path, tmp_path: Path
) -> None:
    args = [
        "analyze",
        "memorization",
        str(mem_run),
        "--rows",
        "36",
        "--k",
        str(K),
        "--target",
        str(TARGET),
        "--batch-size",
        "8",
        "--steps",
        "10,40",
        "--threads",
        "1",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    one, two = tmp_path / "one.h5", tmp_path / "two.h5"
    torchrun = Path(sys.executable).parent / "torchrun"
    launch = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node",
        "2",
        "--no-python",
        str(cli_bin),
        *args,
        "--out",
        str(two),
    ]
    proc = subprocess.run(launch, check=False, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = subprocess.run(
        [str(cli_bin), *args, "--out", str(one)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not list(tmp_path.glob(".*.tmp"))
    with h5py.File(one) as a, h5py.File(two) as b:
        assert set(a) == set(b) == {"steps", "rows", "scores", "seen", "loglik", "token_acc"}
        for name in a:
            np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=name)
        assert dict(a.attrs) == dict(b.attrs)
        assert a["scores"].shape == (2, 36)
