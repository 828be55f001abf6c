"""The suite presets: `tiny` (tests, seconds), `default` (`make demo`: minutes), `full` (an hour).

A preset is plain config data; a suite file is merged over it (`config.merge`). Sizes follow the
measured stage times in docs/readme/suite.md.
"""

from __future__ import annotations

import copy
from typing import Any

from suite_core import ConfigError

# The studies every full preset runs, the pronoun-swap branch, and the training precision.
# (`tiny` keeps to the machinery: a 512-token vocabulary has no single-token pronouns.)
STUDIES: dict[str, dict[str, Any]] = {"memorization": {}, "term_frequency": {}, "bias": {}}
BRANCH_ENABLED = True
PRECISION = "fp32"  # bf16 is only ~1.2x here (no AMX on this CPU; bench/bench_train.py) and the studies were validated in fp32

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "name": "tiny",
        "corpus": {"synth": "tiny", "seed": 1234},
        "dedup": {"threshold": 0.87, "num_perm": 128, "seed": 1},
        "tokenizer": {"vocab_size": 512},
        "data": {"seq_length": 32, "batch_size": 8, "steps": 24, "held_out_rows": 32, "seed": 1234},
        "train": {
            "models": ["pythia-nano"],
            "variants": ["standard", "deduped"],
            "seed": 1234,
            "checkpoints": "log+every:8",
            "precision": PRECISION,
        },
        "branch": {
            "enabled": False,
            "variant": "standard",
            "step": 16,
            "intervention": "pronoun-swap",
        },
        "studies": {},  # the machinery only: tests/pythia_suite/suite/test_suite_studies.py adds them
    },
    "default": {
        "name": "default",
        "corpus": {"synth": "default", "seed": 1234},
        "dedup": {"threshold": 0.87, "num_perm": 128, "seed": 1},
        "tokenizer": {"vocab_size": 2048},
        "data": {
            "seq_length": 128,
            "batch_size": 16,
            "steps": 512,
            "held_out_rows": 512,
            "seed": 1234,
        },
        "train": {
            "models": ["pythia-nano", "pythia-micro"],
            "variants": ["standard", "deduped"],
            "seed": 1234,
            "checkpoints": "log+every:64",
            "precision": PRECISION,
        },
        "branch": {
            "enabled": BRANCH_ENABLED,
            "model": "pythia-micro",
            "variant": "standard",
            "step": 384,
            "intervention": "pronoun-swap",
        },
        "studies": {**STUDIES, "memorization": {"rows": 256}},
    },
    "full": {
        "name": "full",
        "corpus": {"synth": "small", "seed": 1234},
        "dedup": {"threshold": 0.87, "num_perm": 128, "seed": 1},
        "tokenizer": {"vocab_size": 4096},
        "data": {
            "seq_length": 256,
            "batch_size": 32,
            "steps": 2000,
            "held_out_rows": 2048,
            "seed": 1234,
        },
        "train": {
            "models": ["pythia-nano", "pythia-micro", "pythia-mini"],
            "variants": ["standard", "deduped"],
            "seed": 1234,
            "checkpoints": "log+every:125",
            "precision": PRECISION,
        },
        "branch": {
            "enabled": BRANCH_ENABLED,
            "variant": "standard",
            "step": 1500,
            "intervention": "pronoun-swap",
        },
        "studies": STUDIES,
    },
}


def preset_data(name: str) -> dict[str, Any]:
    """A fresh copy of the preset's config data."""
    if name not in PRESETS:
        raise ConfigError(f"--preset: unknown preset {name!r} (choose from {', '.join(PRESETS)})")
    return copy.deepcopy(PRESETS[name])
