"""Gender bias across checkpoints: CrowS-Pairs and WinoBias through lm-eval, the suite's probes
built from truth.json, and the pronoun-swap intervention's effect (see `study.run_study`)."""

from analysis.bias.study import run_study

__all__ = ["run_study"]
