"""Term frequency across checkpoints (issue 9): exact counts of terms in the rows each
checkpoint trained on, and few-shot accuracy against those counts.

Every study package has the same shape: pure cores; `across` (one run: its checkpoints scored
into a results file); `results` (the files as pandas); `figures`; `study` (`run_study` for
`pythia-suite run`). Here: pure cores `terms`, `counting`, `prompts`, `metrics`; I/O edges
`scan` (counts over the rows, processes), `decode` / `fewshot` (transformers models),
`across` (one run: few-shot at each checkpoint joined with counts), `results`, `figures`.
"""

from analysis.term_frequency.across import ItemsConfig, run_fewshot
from analysis.term_frequency.results import read_counts, read_fewshot
from analysis.term_frequency.scan import CountConfig, count_terms
from analysis.term_frequency.study import run_study

__all__ = [
    "CountConfig",
    "ItemsConfig",
    "count_terms",
    "read_counts",
    "read_fewshot",
    "run_fewshot",
    "run_study",
]
