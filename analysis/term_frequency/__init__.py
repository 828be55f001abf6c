"""Term frequency across checkpoints (issue 9): exact counts of terms in the rows each
checkpoint trained on, and few-shot accuracy against those counts.

Pure cores: `terms`, `counting`, `prompts`, `metrics`; I/O edges: `scan` (rows, processes),
`decode` / `fewshot` (transformers models), `results` (HDF5 / CSV), `figures`, `pipeline`,
`study` (`run_study` for `pythia-suite run`).
"""

from analysis.term_frequency.study import run_study

__all__ = ["run_study"]
