"""Issue 18 as a table: each bad or hostile input against a finished tiny suite (or the suite
machinery) ends in one line on stderr, the right exit status, and nothing lost: a snapshot of
the folder before and after (file contents hashed, symlinks followed to what they reach outside
the folder) is unchanged. The data-loss cases come first. Refusals happen before any stage
runs, so the cases call the CLI in-process on copies of the session's tiny suite.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pythia_suite.cli import main
from tests.pythia_suite.suite.conftest import SuiteRun

RUN = "runs/pythia-nano-standard"
RECORDS = ("tiny/suite.log", "tiny/.state/")  # the log and the stage records, nothing else
# a run that fails in a stage (a damaged run found by verify, the branch's pronoun check) also
# marks the page it leaves not current: the same page with a banner at the top
FAILED = (*RECORDS, "tiny/report.html")


def snapshot(root: Path) -> dict[str, str]:
    """relative path -> content sha256 / 'dir' / 'link->TARGET', following symlinks (once)."""
    out: dict[str, str] = {}
    seen: set[Path] = set()

    def walk(folder: Path, rel: str) -> None:
        real = folder.resolve()
        if real in seen:
            return
        seen.add(real)
        for child in sorted(folder.iterdir()):
            name = f"{rel}{child.name}"
            if child.is_symlink():
                out[name + "@"] = f"link->{os.readlink(child)}"
            if child.is_dir():
                out[name] = "dir"
                walk(child, name + "/")
            elif child.is_file():
                out[name] = hashlib.sha256(child.read_bytes()).hexdigest()

    walk(root, "")
    return out


@dataclass(frozen=True, kw_only=True)
class Case:
    name: str
    yaml: str | None = None  # the suite config given to `run` (merged over the tiny preset)
    prepare: Callable[[Path, Path], None] | None = None  # (suite dir, outside dir) -> None
    argv: tuple[str, ...] | None = None  # instead of `run`: {suite} and {outside} substituted
    code: int = 2
    message: str = ""  # a substring of the one stderr line
    may_change: tuple[str, ...] = ()  # what a refused re-run may touch: its log, its records


def _symlink_data(suite: Path, outside: Path) -> None:
    shutil.move(suite / "data", outside / "data")
    (suite / "data").symlink_to(outside / "data")


def _symlink_file(name: str) -> Callable[[Path, Path], None]:
    def make(suite: Path, outside: Path) -> None:
        (outside / "victim.txt").write_text("not the suite's\n")
        target = suite / name
        if target.exists():
            target.unlink()
        target.symlink_to(outside / "victim.txt")

    return make


def _user_folder(suite: Path, outside: Path) -> None:
    shutil.rmtree(suite)
    for rel in ("corpus/notes.txt", "data/standard/important.bin", "tables/t.csv"):
        (suite / rel).parent.mkdir(parents=True, exist_ok=True)
        (suite / rel).write_text("mine\n")


def _flip_byte(suite: Path, outside: Path) -> None:
    path = suite / RUN / "checkpoints" / "step8" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _drop_checkpoint(suite: Path, outside: Path) -> None:
    shutil.rmtree(suite / RUN / "checkpoints" / "step8")


def _alias_bomb(suite: Path, outside: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 30)]
    (outside / "bomb.yaml").write_text("\n".join(lines) + "\n")


def _deep_list(suite: Path, outside: Path) -> None:
    (outside / "deep.yaml").write_text("studies: " + "[" * 20000 + "]" * 20000 + "\n")


def _list_truth(suite: Path, outside: Path) -> None:
    shutil.copy(suite / "corpus" / "corpus.jsonl", outside / "c.jsonl")
    (outside / "t.json").write_text("[1, 2, 3]\n")


def _fifo(suite: Path, outside: Path) -> None:
    os.mkfifo(outside / "fifo.jsonl")


CASES = [
    # 1. never delete or replace what the user did not ask to replace
    Case(name="fp16", yaml="train: {precision: fp16}\n", message="train.precision"),
    Case(name="threads-1e5", yaml="train: {threads: 100000}\n", message="train.threads"),
    Case(
        name="corpus-is-own-output",
        yaml="corpus: {synth: null, path: {suite}/deduped.jsonl}\n",
        message="inside the suite folder",
    ),
    Case(name="seed-changed", yaml="train: {seed: 7}\n", message="pass --replace"),
    Case(
        name="rule-changed",
        yaml="train: {checkpoints: 'log+every:12'}\n",
        message="pythia-nano-standard, pythia-nano-deduped",
    ),
    Case(name="duplicate-section", yaml="train: {seed: 7}\ntrain: {seed: 7}\n", message="twice"),
    Case(name="user-folder", prepare=_user_folder, message="not a pythia-suite folder"),
    Case(name="data-symlink", prepare=_symlink_data, message="is a symlink"),
    Case(name="lock-symlink", prepare=_symlink_file(".lock"), message="is a symlink"),
    Case(name="log-symlink", prepare=_symlink_file("suite.log"), message="is a symlink"),
    # 2. damage is noticed (the re-run re-verifies what it skips)
    Case(name="flipped-byte", prepare=_flip_byte, message="step8", may_change=FAILED),
    Case(name="deleted-checkpoint", prepare=_drop_checkpoint, message="step8", may_change=FAILED),
    Case(
        name="resume-past-damage",
        prepare=_flip_byte,
        argv=(
            "train",
            "--resume",
            "--model",
            "pythia-nano",
            "--data",
            "{suite}/data/standard",
            "--out",
            "{suite}/" + RUN,
            "--steps",
            "24",
            "--checkpoints",
            "log+every:8",
        ),  # fmt: skip
        message="refusing to resume past a damaged checkpoint",
    ),
    # 3. everything checked before the first stage runs
    Case(
        name="bool-as-string",
        yaml="studies: {bias: {generation: 'no'}}\n",
        message="studies.bias.generation",
    ),
    Case(name="option-typo", yaml="studies: {term_frequency: {shotz: [0]}}\n", message="shotz"),
    Case(
        name="processes-1e5",
        yaml="studies: {term_frequency: {processes: 100000}}\n",
        message="studies.term_frequency.processes",
    ),
    Case(name="seed-negative", yaml="data: {seed: -1}\n", message="data.seed"),
    Case(name="vocab-10", yaml="tokenizer: {vocab_size: 10}\n", message="tokenizer.vocab_size"),
    Case(name="seq-1e8", yaml="data: {seq_length: 100000000}\n", message="GiB of"),
    Case(name="rows-1e12", yaml="data: {held_out_rows: 1000000000000}\n", message="GiB of disk"),
    Case(name="num-perm-1e8", yaml="dedup: {num_perm: 100000000}\n", message="dedup.num_perm"),
    Case(name="pythia-12b", yaml="train: {models: [pythia-12b]}\n", message="GiB of memory"),
    Case(
        name="branch-without-pronouns",  # the tiny vocabulary: checked before any training
        yaml="branch: {enabled: true}\n",
        message="branch.enabled",
        may_change=(*FAILED, "tiny/suite.yaml"),
    ),
    Case(
        name="alias-bomb",
        prepare=_alias_bomb,
        argv=("run", "{outside}/bomb.yaml"),
        message="anchors and aliases",
    ),  # fmt: skip
    Case(
        name="deep-list",
        prepare=_deep_list,
        argv=("run", "{outside}/deep.yaml"),
        message="nested deeper",
    ),  # fmt: skip
    Case(
        name="truth-is-a-list",
        prepare=_list_truth,
        yaml="corpus: {synth: null, path: {outside}/c.jsonl, truth: {outside}/t.json}\n",
        message="must be a JSON object",
    ),
    Case(
        name="corpus-fifo",
        prepare=_fifo,
        yaml="corpus: {synth: null, path: {outside}/fifo.jsonl}\n",
        message="not a regular file",
    ),
]


@pytest.fixture
def copy(tiny_suite: SuiteRun, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the finished tiny suite (root/tiny) and a folder outside it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    shutil.copytree(tiny_suite.dir, root / "tiny", symlinks=True)
    return root, outside


def _argv(case: Case, root: Path, outside: Path) -> list[str]:
    suite = root / "tiny"
    if case.argv is not None:
        args = [
            a.replace("{suite}", str(suite)).replace("{outside}", str(outside)) for a in case.argv
        ]
        return [*args, "--preset", "tiny", "--root", str(root)] if args[0] == "run" else args
    yaml_path = outside / "s.yaml"
    text = (case.yaml or "").replace("{suite}", str(suite)).replace("{outside}", str(outside))
    yaml_path.write_text(text)
    return ["run", str(yaml_path), "--preset", "tiny", "--root", str(root)]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_refused_in_one_line_and_nothing_lost(
    case: Case, copy: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, outside = copy
    if case.prepare is not None:
        case.prepare(root / "tiny", outside)
    argv = _argv(case, root, outside)
    before = snapshot(root), snapshot(outside)
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == case.code, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("pythia-suite: error: "), lines
    assert case.message in lines[0], lines[0]
    assert "Traceback" not in err

    def kept(snap: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in snap.items() if not k.startswith(case.may_change or ("\0",))}

    assert (kept(snapshot(root)), snapshot(outside)) == (kept(before[0]), before[1])
    if "tiny/report.html" in (case.may_change or ()):  # a stage failed: the page says so
        assert '<div id="not-current"' in (root / "tiny" / "report.html").read_text()


def test_a_running_train_is_not_resumed_twice(
    copy: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The run's lock, held (as a running `train` holds it): `train --resume` is refused."""
    from checkpoints_index.lock import run_lock

    root, _ = copy
    suite = root / "tiny"
    before = snapshot(suite)
    with run_lock(suite / RUN):
        code = main(
            [
                "train",
                "--resume",
                "--model",
                "pythia-nano",
                "--data",
                str(suite / "data/standard"),
                "--out",
                str(suite / RUN),
                "--steps",
                "24",
            ]  # fmt: skip
        )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "another process is writing this run" in err and "\n" not in err
    assert snapshot(suite) == before


def test_threads_are_pinned_across_machines(
    copy: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another core count (a different default) on a re-run: nothing retrains, nothing changes."""
    from pythia_suite.training import trainer

    root, _ = copy
    pinned = json.dumps(snapshot(root / "tiny" / "runs"))
    saved = (root / "tiny" / "suite.yaml").read_text()
    monkeypatch.setattr(trainer, "default_threads", lambda env: 97)
    assert main(["run", "--preset", "tiny", "--root", str(root)]) == 0, capsys.readouterr().err
    assert json.dumps(snapshot(root / "tiny" / "runs")) == pinned
    assert (root / "tiny" / "suite.yaml").read_text() == saved  # the pinned threads kept


def test_the_report_states_what_this_invocation_verified(
    copy: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A forged verify record in .state is not printed: the verify stages redo the work."""
    import pandas as pd

    root, _ = copy
    state = root / "tiny" / ".state" / "verify-pythia-nano-standard.json"
    record = json.loads(state.read_text())
    record["digest"] = {"batches_verified": 999, "checkpoints_verified": 999}
    state.write_text(json.dumps(record))
    assert main(["run", "--preset", "tiny", "--root", str(root)]) == 0, capsys.readouterr().err
    runs = pd.read_csv(root / "tiny" / "tables" / "runs.csv")
    assert list(runs["batches verified"]) == [24, 24]
    assert 999 not in list(runs["checkpoints verified"])


def test_an_internal_error_is_exit_1_with_the_traceback_in_the_log(
    copy: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pythia_suite.suite import actions

    root, _ = copy

    def broken(*args: object) -> dict[str, object]:
        return {}["no such key"]  # a bug, as far as the CLI can tell

    monkeypatch.setattr(actions, "verify_run_dir", broken)
    code = main(["run", "--preset", "tiny", "--root", str(root)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    log = root / "tiny" / "suite.log"
    assert code == 1 and "internal error: KeyError" in err and str(log) in err
    assert "Traceback" in log.read_text() and "no such key" in log.read_text()


def test_disk_full_while_saving_a_checkpoint_leaves_nothing_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import torch

    from checkpoints_index import store
    from suite_core import CheckpointError

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "save_file", full)
    weights = {"w": torch.zeros(256, 256)}
    with pytest.raises(CheckpointError) as info:
        store.save_checkpoint(
            tmp_path, 3, weights=weights, hf_config={}, optimizer_state=None, trainer_state={}
        )
    message = str(info.value)
    assert "\n" not in message and "step3" in message and "0.2 MiB" in message  # 256*256*4 B
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_a_pickled_optimizer_state_is_refused_in_one_line(tmp_path: Path) -> None:
    import pickle

    import torch

    from checkpoints_index.store import _torch_load
    from suite_core import CheckpointError

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    path = tmp_path / "optimizer.pt"
    torch.save({"state": Payload()}, path, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="refused") as info:
        _torch_load(path, "cpu")
    assert "\n" not in str(info.value)


def test_term_frequency_on_the_tiny_preset_runs(
    copy: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A valid config that used to be an internal error (no facts at the tiny vocabulary:
    `index must be a MultiIndex to unstack`); the trained runs are reused, not retrained."""
    root, outside = copy
    runs = snapshot(root / "tiny" / "runs")
    (outside / "tf.yaml").write_text("studies: {term_frequency: {}}\n")
    code = main(["run", str(outside / "tf.yaml"), "--preset", "tiny", "--root", str(root)])
    assert code == 0, capsys.readouterr().err[-2000:]
    assert (root / "tiny" / "studies" / "term_frequency" / "report.json").is_file()
    assert snapshot(root / "tiny" / "runs") == runs


def test_without_a_catalog_checkpoints_are_checked_by_their_sums(copy: tuple[Path, Path]) -> None:
    """analyze's reader: no catalog.sqlite, so SHA256SUMS decides; a run with neither: refused."""
    from analysis.sources import open_checkpoints
    from suite_core import DataError

    root, outside = copy
    run = root / "tiny" / RUN
    (run / "catalog.sqlite").unlink()
    open_checkpoints(run).verify(8)  # intact: accepted
    _flip_byte(root / "tiny", outside)
    with pytest.raises(DataError, match="step8"):
        open_checkpoints(run).verify(8)
    (run / "checkpoints" / "step16" / "SHA256SUMS").unlink()
    with pytest.raises(DataError, match="no SHA256SUMS and the run has no catalog"):
        open_checkpoints(run).verify(16)
