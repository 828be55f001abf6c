"""Gender bias across checkpoints: CrowS-Pairs and WinoBias through lm-eval, the suite's probes
built from truth.json, and the pronoun-swap intervention's effect.

Every study package has the same shape: pure cores; `across` (one run: its checkpoints scored
into a results file); `results` or the `read_*` functions (the file as pandas); `figures`;
`study` (`run_study` for `pythia-suite run`). Here: `evaluate` / `tasks` / `lm` / `lm_tasks`
(scoring through lm-eval), `data` and `probes` (the benchmarks), `across`, `figures`, `study`.
"""

from analysis.bias.across import across_checkpoints, read_h5, run_info, write_h5
from analysis.bias.study import run_study

__all__ = ["across_checkpoints", "read_h5", "run_info", "run_study", "write_h5"]
