"""Memorization across checkpoints (issue 8): exact scores, predictability, causal profiles.

Pure cores: `score` (the two-path score), `sample`, `metrics`, `profiles`; I/O edges:
`runner` (checkpoints x rows -> HDF5), `results` (HDF5 <-> pandas), `planted` (truth.json
windows), `figures`, `study` (`run_study` for `pythia-suite run`).
"""

from analysis.memorization.metrics import (
    memorized_fraction,
    poisson_spread,
    predictability,
    predictability_over_steps,
)
from analysis.memorization.profiles import profiles
from analysis.memorization.results import load_scores, read_results
from analysis.memorization.runner import MemConfig, score_memorization
from analysis.memorization.score import ScoreConfig, score_rows
from analysis.memorization.study import run_study

__all__ = [
    "MemConfig",
    "ScoreConfig",
    "load_scores",
    "memorized_fraction",
    "poisson_spread",
    "predictability",
    "predictability_over_steps",
    "profiles",
    "read_results",
    "run_study",
    "score_memorization",
    "score_rows",
]
