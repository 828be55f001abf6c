"""The suite presets: `tiny` (tests, seconds), `default` (`make demo`: minutes), `full` (an hour).

A preset is plain config data; a suite file is merged over it (`config.merge`). Sizes follow the
measured stage times in docs/readme/suite.md.
"""

from __future__ import annotations

import copy
from typing import Any

# Wiring left for the merge of the study and branch work (each is a one-line change):
# the study packages analysis/memorization, analysis/term_frequency and analysis/bias, and the
# trainer's `branch_from` / `branch_step` / `intervention` fields, live on other branches.
STUDIES: dict[str, dict[str, Any]] = {"memorization": {}, "term_frequency": {}, "bias": {}}
BRANCH_ENABLED = True
PRECISION = "bf16"  # the fastest on CPU (AMX); bench/bench_train.py

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "name": "tiny",
        "corpus": {"synth": "tiny", "seed": 1234},
        "dedup": {"threshold": 0.87, "num_perm": 128, "seed": 1},
        "tokenizer": {"vocab_size": 512},
        "data": {"seq_length": 32, "batch_size": 8, "steps": 24, "held_out_rows": 32,
                 "seed": 1234},
        "train": {"models": ["pythia-nano"], "variants": ["standard", "deduped"], "seed": 1234,
                  "checkpoints": "log+every:8", "precision": PRECISION},
        "branch": {"enabled": BRANCH_ENABLED, "variant": "standard", "step": 16,
                   "intervention": "pronoun-swap"},
        "studies": STUDIES,
    },
    "default": {
        "name": "default",
        "corpus": {"synth": "tiny", "seed": 1234},
        "dedup": {"threshold": 0.87, "num_perm": 128, "seed": 1},
        "tokenizer": {"vocab_size": 2048},
        "data": {"seq_length": 128, "batch_size": 16, "steps": 256, "held_out_rows": 512,
                 "seed": 1234},
        "train": {"models": ["pythia-nano", "pythia-micro"], "variants": ["standard", "deduped"],
                  "seed": 1234, "checkpoints": "log+every:32", "precision": PRECISION},
        "branch": {"enabled": BRANCH_ENABLED, "variant": "standard", "step": 192,
                   "intervention": "pronoun-swap"},
        "studies": STUDIES,
    },
    "full": {
        "name": "full",
        "corpus": {"synth": "small", "seed": 1234},
        "dedup": {"threshold": 0.87, "num_perm": 128, "seed": 1},
        "tokenizer": {"vocab_size": 4096},
        "data": {"seq_length": 256, "batch_size": 32, "steps": 2000, "held_out_rows": 2048,
                 "seed": 1234},
        "train": {"models": ["pythia-nano", "pythia-micro", "pythia-mini"],
                  "variants": ["standard", "deduped"], "seed": 1234,
                  "checkpoints": "log+every:125", "precision": PRECISION},
        "branch": {"enabled": BRANCH_ENABLED, "variant": "standard", "step": 1500,
                   "intervention": "pronoun-swap"},
        "studies": STUDIES,
    },
}


def preset_data(name: str) -> dict[str, Any]:
    """A fresh copy of the preset's config data."""
    if name not in PRESETS:
        raise ValueError(f"--preset: unknown preset {name!r} (choose from {', '.join(PRESETS)})")
    return copy.deepcopy(PRESETS[name])
