"""Memorization across checkpoints (issue 8): exact scores, predictability, causal profiles.

Every study package has the same shape: pure cores; `across` (one run: its checkpoints scored
into a results file); `results` (the file as pandas); `figures`; `study` (`run_study` for
`pythia-suite run`). Here: pure cores `score` (the two-path score), `sample`, `metrics`,
`profiles`; I/O edges `across` (checkpoints x rows -> HDF5), `results`, `planted` (truth.json
windows), `figures`, `study`.
"""

from analysis.memorization.across import MemConfig, score_memorization
from analysis.memorization.metrics import (
    memorized_fraction,
    poisson_spread,
    predictability,
    predictability_over_steps,
)
from analysis.memorization.profiles import profiles
from analysis.memorization.results import load_scores, read_results
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
