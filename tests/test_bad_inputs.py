"""Every bad input of issue 7 (and its family) ends clean: one line on stderr starting with
`pythia-suite: error:`, exit 2, no traceback, nothing new left behind in the working folder."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

CLI = str(Path(sys.executable).parent / "pythia-suite")
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
}


def _tokenizer(path: Path, size: int) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {"<|endoftext|>": 0, "<|padding|>": 1} | {f"t{k}": k + 2 for k in range(size - 2)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|padding|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.save(str(path))


def _hf_folders(root: Path) -> None:
    """`hffifo/step0`: config.json is a FIFO; `hfbig/step0`: a sparse safetensors file that
    declares 100000 x 50000 embeddings (40 GB as float32, more than this machine's memory; the
    file is sparse, no disk used)."""
    (root / "hffifo" / "step0").mkdir(parents=True)
    os.mkfifo(root / "hffifo" / "step0" / "config.json")
    folder = root / "hfbig" / "step0"
    folder.mkdir(parents=True)
    config = {"model_type": "gpt_neox", "vocab_size": 100000, "hidden_size": 50000}
    (folder / "config.json").write_text(json.dumps(config))
    size = 100000 * 50000 * 2
    header = {
        name: {
            "dtype": "BF16",
            "shape": [100000, 50000],
            "data_offsets": [i * size, (i + 1) * size],
        }
        for i, name in enumerate(("gpt_neox.embed_in.weight", "embed_out.weight"))
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(folder / "model.safetensors", "wb") as fh:
        fh.write(len(raw).to_bytes(8, "little") + raw)
        fh.truncate(8 + len(raw) + 2 * size)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dataloader_replay.prepare import prepare
    from pythia_suite.training.trainer import TrainConfig, train

    root = tmp_path_factory.mktemp("bad")
    lines = [
        json.dumps(
            {
                "text": " ".join(f"t{(d * 7 + i) % 200}" for i in range(400)),
                "meta": {"pile_set_name": "set"},
            }
        )
        for d in range(40)
    ]
    raw = ("\n".join(lines) + "\n").encode()
    (root / "corpus.jsonl").write_bytes(raw)
    whole = zstandard.ZstdCompressor().compress(raw)
    (root / "truncated.jsonl.zst").write_bytes(whole[: len(whole) // 2])
    (root / "garbage.jsonl.zst").write_bytes(b"not zstd at all\n")
    obj = zstandard.ZstdCompressor().compressobj()  # a frame cut on a line boundary
    cut = obj.compress(b"\n".join(raw.split(b"\n")[:10]) + b"\n")
    (root / "line_cut.jsonl.zst").write_bytes(cut + obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
    _tokenizer(root / "tok.json", 256)
    _tokenizer(root / "small.json", 3)
    prepare(
        root / "corpus.jsonl",
        root / "tok.json",
        root / "data",
        seq_length=16,
        batch_size=2,
        steps=4,
    )
    prepare(
        root / "corpus.jsonl",
        root / "tok.json",
        root / "data3000",
        seq_length=3000,
        batch_size=1,
        steps=2,
    )
    train(
        TrainConfig(
            model="pythia-nano",
            data=root / "data",
            out=root / "run",
            steps=2,
            checkpoints="log+every:1",
        )
    )
    (root / "dirdb").mkdir()
    (root / "dirdb" / "checkpoints").mkdir()
    (root / "dirdb" / "catalog.sqlite").mkdir()
    _hf_folders(root)
    (root / "list_truth.json").write_text("[1, 2, 3]\n")
    (root / "notdb").mkdir()
    (root / "notdb" / "checkpoints").mkdir()
    (root / "notdb" / "catalog.sqlite").write_text("hello\n")
    return root


PREP = ["--tokenizer", "tok.json", "--seq-length", "16", "--batch-size", "2", "--steps", "2"]
CASES = {
    # corrupt or truncated .zst, for every reader of a corpus
    **{
        f"{cmd}-{name}": [*argv, f"{name}.jsonl.zst", *rest]
        for name in ("truncated", "garbage", "line_cut")
        for cmd, argv, rest in (
            ("dedup", ["dedup"], ["--out", "o.jsonl"]),
            ("tokenizer", ["tokenizer", "train"], ["--vocab-size", "300", "--out", "o.json"]),
            ("prepare", ["prepare"], [*PREP, "--out", "o"]),
        )
    },
    "vocab-2^32": ["tokenizer", "train", "corpus.jsonl", "--vocab-size", str(2**32), "--out", "o"],
    "vocab-1e11": ["tokenizer", "train", "corpus.jsonl", "--vocab-size", str(10**11), "--out", "o"],
    "vocab-small": ["tokenizer", "train", "corpus.jsonl", "--vocab-size", "10", "--out", "o"],
    "prepare-1e9-steps": [
        "prepare",
        "corpus.jsonl",
        "--tokenizer",
        "tok.json",
        "--out",
        "o",
        "--seq-length",
        "16",
        "--batch-size",
        "1024",
        "--steps",
        str(10**9),
    ],
    "prepare-seq-2e9": [
        "prepare",
        "corpus.jsonl",
        "--tokenizer",
        "tok.json",
        "--out",
        "o",
        "--seq-length",
        str(2 * 10**9),
        "--batch-size",
        "1",
        "--steps",
        "1",
    ],
    "prepare-seed": ["prepare", "corpus.jsonl", *PREP, "--out", "o", "--seed", "-1"],
    "prepare-exists": ["prepare", "corpus.jsonl", *PREP, "--out", "data"],
    "find-past-vocab": ["find", "data", "--tokens", "99999"],
    "find-20-digits": ["find", "data", "--tokens", "12345678901234567890"],
    "replay-small-tokenizer": [
        "replay",
        "data",
        "--step",
        "0",
        "--text",
        "--tokenizer",
        "small.json",
    ],
    "schedule-1e9": ["checkpoints", "schedule", "log+every:1", "--steps", str(10**9)],
    "schedule-pythia-huge": ["checkpoints", "schedule", "pythia", "--steps", str(10**21)],
    "list-catalog-dir": ["checkpoints", "list", "dirdb"],
    "verify-catalog-dir": ["checkpoints", "verify", "dirdb"],
    "list-not-db": ["checkpoints", "list", "notdb"],
    "14m-past-positions": ["train", "--model", "pythia-14m", "--data", "data3000", "--out", "o"],
    "family-vocab": ["family", "--vocab", str(10**14)],
    "fewshot-list-truth": [
        "analyze",
        "fewshot",
        "run",
        "--truth",
        "list_truth.json",
        "--out",
        "f.h5",
    ],
    "index-config-fifo": ["checkpoints", "index", "hffifo"],
    "index-100000x50000": ["checkpoints", "index", "hfbig"],
    "verify-with-step": ["replay", "run", "--verify", "--step", "0"],
    "verify-with-out": ["replay", "run", "--verify", "--out", "x.npy"],
}


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_clean_line(world: Path, name: str) -> None:
    before = _snapshot(world)
    done = subprocess.run(
        [CLI, *CASES[name]],
        cwd=world,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (name, done.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("pythia-suite: error: "), (name, lines)
    assert "Traceback" not in done.stderr and "--overwrite" not in done.stderr
    words = lines[0].split()
    assert not any(a == b for a, b in itertools.pairwise(words)), lines[0]
    assert _snapshot(world) == before, name


def test_error_family_is_value_error() -> None:
    from suite_core import CheckpointError, ConfigError, DataError, SuiteError

    for cls in (CheckpointError, ConfigError, DataError):
        assert issubclass(cls, SuiteError) and issubclass(cls, ValueError)


def test_torchrun_other_ranks_stay_silent(world: Path) -> None:
    outs = []
    for rank in ("0", "1"):
        done = subprocess.run(
            [CLI, "family", "--vocab", "0"],
            env={**ENV, "RANK": rank},
            capture_output=True,
            text=True,
            check=False,
        )
        outs.append((done.returncode, done.stderr.strip()))
    assert outs[0][0] == outs[1][0] == 2
    assert outs[0][1].startswith("pythia-suite: error: --vocab") and outs[1][1] == ""
