"""`pythia-suite run` over external runs: checkpoints fetched from a fake hub on loopback (tiny
GPT-NeoX models at step0..step2), rows read from the hub's dataset repo by `open_source`, the
CrowS-Pairs CSV downloaded; the three studies and the report, nothing trained."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from dataloader_replay.indexed import IndexedWriter
from pythia_suite.corpus.tokenizer import train_tokenizer
from tests.fake_hub import FakeHub, Server
from tests.shared import online_env

SHIPPED = Path(__file__).parents[3] / "suites" / "pythia-70m-deduped.yaml"
MODEL, DATA = "EleutherAI/pythia-70m-deduped", "EleutherAI/pile-deduped-pythia-preshuffled"
STEPS = (0, 128, 512, 1000, 2000)  # the shipped config's
SEQ, BATCH, ROWS = 32, 1, 2048  # tiny rows: one per step here (1024 of 2049 tokens for Pythia)
CROWS = (
    "sent_more,sent_less,stereo_antistereo,bias_type\n"
    '"He is a good engineer.","She is a good engineer.",stereo,gender\n'
    '"She cooks every day.","He cooks every day.",stereo,gender\n'
    '"The old man forgot it.","The young man forgot it.",stereo,age\n'
    '"He cried at the film.","She cried at the film.",antistereo,gender\n'
)


def tiny_tokenizer(root: Path) -> tuple[Path, int]:
    corpus = root / "corpus.jsonl"
    lines = [f"{a} plus {b} is {a + b}. He said she said {a}." for a in range(60) for b in (1, 2)]
    corpus.write_text("".join(json.dumps({"text": t, "meta": {}}) + "\n" for t in lines))
    tokenizer = root / "tokenizer.json"
    return tokenizer, train_tokenizer(corpus, tokenizer, vocab_size=320).get_vocab_size()


def tiny_hub(root: Path) -> FakeHub:
    """Tiny GPT-NeoX checkpoints (with a BPE tokenizer) at the shipped config's steps under
    pythia-70m-deduped's repo id, rows in EleutherAI's one-shard layout, the CrowS-Pairs CSV."""
    root.mkdir(parents=True)
    tokenizer, vocab = tiny_tokenizer(root)
    hub = FakeHub()
    for step in STEPS:
        torch.manual_seed(step)
        config = GPTNeoXConfig(
            vocab_size=384,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
            rotary_pct=0.25,
            tie_word_embeddings=False,
            eos_token_id=0,
            bos_token_id=0,
        )
        folder = root / f"step{step}"
        GPTNeoXForCausalLM(config).save_pretrained(folder)
        (folder / "tokenizer.json").write_bytes(tokenizer.read_bytes())
        hub.add_folder("models", MODEL, f"step{step}", folder)
    rows = np.random.default_rng(0).integers(0, vocab, size=(ROWS, SEQ + 1), dtype=np.uint16)
    shards = root / "shards"
    shards.mkdir()
    writer = IndexedWriter(shards / "document", np.dtype(np.uint16))
    for row in rows:
        writer.add(row)
    writer.finalize()
    (shards / "document.bin").rename(shards / "document-00000-of-00000.bin")
    hub.add_folder("datasets", DATA, "main", shards)
    hub.static["crows.csv"] = CROWS.encode()
    return hub


def shipped_at_test_scale(url: str, out: Path) -> Path:
    """The shipped config with its model, steps and rows as they are; only the CSV's URL, the
    rows per step and the studies' sizes made tiny."""
    data = yaml.safe_load(SHIPPED.read_text())
    data["external"]["crows"] = f"{url}/static/crows.csv"
    data["external"]["runs"]["pythia-70m-deduped"]["batch_size"] = BATCH
    data["studies"] = {
        "memorization": {"rows": 6, "batch_size": 8},
        "term_frequency": {"checkpoints": 2, "shots": [0], "x2": [1]},
        "bias": {"batch_size": 8, "max_length": 64, "steps": [0, 2000]},
    }
    out.write_text(yaml.safe_dump(data))
    return out


def test_shipped_suite_end_to_end(tmp_path: Path) -> None:
    hub = tiny_hub(tmp_path / "hub")
    with Server(hub) as url:
        env = online_env() | {
            "HF_ENDPOINT": url,
            "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "TOKENIZERS_PARALLELISM": "false",
        }
        suite = shipped_at_test_scale(url, tmp_path / "suite.yaml")
        argv = [sys.executable, "-m", "pythia_suite", "run", str(suite), "--preset", "tiny"]
        done = subprocess.run(
            [*argv, "--root", str(tmp_path / "runs")],
            capture_output=True,
            text=True,
            timeout=900,
            env=env,
            cwd=tmp_path,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    root = tmp_path / "runs" / "pythia-70m-deduped"
    run = root / "runs" / "pythia-70m-deduped"
    repo = hub.repos[("models", MODEL)]
    assert sorted(int(p.name[4:]) for p in run.glob("step*")) == list(STEPS)
    for step in STEPS:
        for name, data in repo[f"step{step}"].files.items():
            assert (run / f"step{step}" / name).read_bytes() == data
    assert json.loads((run / "rows.json").read_text()) == {
        "source": f"hf://datasets/{DATA}",
        "batch_size": BATCH,
    }
    state = json.loads((root / ".state" / "verify-pythia-70m-deduped.json").read_text())["digest"]
    assert state == {"checkpoints_verified": len(STEPS), "rows": ROWS}
    for study in ("memorization", "term_frequency", "bias"):
        assert (root / "studies" / study / "report.json").is_file(), study
    page = (root / "report.html").read_text()
    assert (
        "1 external runs, fetched: pythia-70m-deduped (pythia-70m-deduped, steps:0,128,512,1000,2000"
        in page
    )
    assert hub.gets[(DATA, "main", "document-00000-of-00000.bin")] >= 1  # rows came from the hub
    assert hub.static_gets == 1  # the CSV, once


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("runs: {}", "field 'external.runs': must be a non-empty mapping"),
        (
            "runs: {a: {model: x/y, steps: 'every:2', rows: r}}",
            "field 'external.runs.a': checkpoint rule 'every:2'",
        ),
        (
            "runs: {a: {model: pythia-nano, steps: pythia, rows: r}}",
            "field 'external.runs.a': model 'pythia-nano'",
        ),
        (
            "runs: {a: {model: x/y, steps: pythia}}",
            "field 'external.runs.a.rows': must be a non-empty string",
        ),
        (
            "runs: {a: {model: x/y, steps: pythia, rows: r, batch_size: 0}}",
            "field 'external.runs.a.batch_size'",
        ),
        ("mirror: x", "field 'external.mirror': unknown key"),
    ],
)
def test_external_config_errors(tmp_path: Path, body: str, message: str) -> None:
    from pythia_suite.suite.config import load_config

    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: bad\nexternal:\n  {body}\n")
    with pytest.raises(ValueError, match=re.escape(f"{suite}:3: {message}")):
        load_config(suite, preset="tiny")
