"""kill -9 at random moments of a real `pythia-suite prepare` process: nothing that looks
complete is left unless it is complete, and the re-run ends byte-identical (leftovers removed)."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from dataloader_replay.prepare import prepare
from suite_core.atomic import leftovers
from tests.dataloader_replay.conftest import PREPARED, Corpus

KILLS = 5


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_sigkill_prepare_at_random_moments(
    corpus: Corpus, small_tokenizer: Path, prepared: Path, tmp_path: Path
) -> None:
    seed = random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    cli = Path(sys.executable).parent / "pythia-suite"
    reference = files(prepared)
    for attempt in range(KILLS):
        out = tmp_path / "data"
        cmd = [
            str(cli),
            "prepare",
            str(corpus.path),
            "--tokenizer",
            str(small_tokenizer),
            "--out",
            str(out),
            *(f"--{k.replace('_', '-')}={v}" for k, v in PREPARED.items()),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while proc.poll() is None and not leftovers(out) and not out.exists():
            assert time.monotonic() < deadline, f"seed {seed}: prepare never started writing"
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, 0.25))  # a random moment of the write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        context = f"seed {seed}, attempt {attempt}, exit {proc.returncode}"
        if out.exists():  # it finished before the kill: then it is whole
            assert files(out) == reference, context
        else:
            prepare(corpus.path, small_tokenizer, out, **PREPARED)  # the re-run
            assert files(out) == reference, context
        assert leftovers(out) == [], context
        shutil.rmtree(out)
