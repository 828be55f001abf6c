"""Reports by users about EleutherAI's published Pythia revisions, each with its source URL.

Only what was found in public issue threads is recorded here (searched 2026: EleutherAI/pythia,
EleutherAI/gpt-neox, TransformerLens, Hugging Face model cards). A report names the repo ids
(current names, without the ``EleutherAI/`` prefix) and the steps it concerns, and whether it
was reported fixed. Reports are warnings for analysis, not verdicts.
"""

from __future__ import annotations

import dataclasses

ALL = "*"  # every current Pythia repo


@dataclasses.dataclass(frozen=True, kw_only=True)
class Report:
    """One user report about published revisions."""

    models: tuple[str, ...]  # repo names such as "pythia-12b-deduped", or (ALL,)
    steps: tuple[int, ...]
    kind: str  # "identical", "wrong-weights", "missing"
    summary: str
    status: str  # "open" or "fixed: ..." as the thread says
    url: str

    def covers(self, model: str, step: int) -> bool:
        return (ALL in self.models or model in self.models) and step in self.steps


_2P8B_MAIN = (
    0,
    1,
    2,
    4,
    8,
    16,
    32,
    64,
    128,
    256,
    512,
    *range(1000, 54000, 1000),
    55000,
    60000,
    65000,
    70000,
    80000,
    90000,
    100000,
    103000,
    110000,
    120000,
    130000,
    140000,
)
_2P8B_SECOND = (54000, 56000, 57000, 58000, 59000, 61000, 62000, 63000, 64000, 143000)

REPORTS: tuple[Report, ...] = (
    Report(
        models=(ALL,),
        steps=(1,),
        kind="identical",
        summary="step1 weights identical to step0 (GPT-NeoX warmup gives lr 0 on the first "
        "update; see EleutherAI/gpt-neox#1373)",
        status="open (expected behaviour of the warmup schedule)",
        url="https://github.com/EleutherAI/pythia/issues/83",
    ),
    Report(
        models=(ALL,),
        steps=(2,),
        kind="identical",
        summary="step2 reported to share step0's weights across all models",
        status="open",
        url="https://github.com/EleutherAI/pythia/issues/198",
    ),
    Report(
        models=("pythia-2.8b",),
        steps=_2P8B_MAIN,
        kind="wrong-weights",
        summary="branch serves the same model.safetensors as main (final-era weights), "
        "not this step's (76 branches incl. step0; also #195)",
        status="open",
        url="https://github.com/EleutherAI/pythia/issues/205",
    ),
    Report(
        models=("pythia-2.8b",),
        steps=_2P8B_SECOND,
        kind="wrong-weights",
        summary="one of 10 branches (54000-64000 subset and 143000) serving one identical "
        "model.safetensors",
        status="open",
        url="https://github.com/EleutherAI/pythia/issues/205",
    ),
    Report(
        models=("pythia-12b",),
        steps=(50000, 58000),
        kind="wrong-weights",
        summary="first weight shard (embed_in + early layers) is the final checkpoint's",
        status="open",
        url="https://github.com/EleutherAI/pythia/issues/206",
    ),
    Report(
        models=("pythia-12b-deduped",),
        steps=(32000,),
        kind="wrong-weights",
        summary="step32000 behaved like a final checkpoint (replaced by another one)",
        status="fixed: re-uploaded 2023-06 (re-download copies cached before then)",
        url="https://github.com/EleutherAI/pythia/issues/108",
    ),
    Report(
        models=("pythia-12b",),
        steps=(4000, 32000),
        kind="missing",
        summary="branch files were missing",
        status="fixed: uploaded 2023-06-04",
        url="https://github.com/EleutherAI/pythia/issues/107",
    ),
    Report(
        models=("pythia-6.9b",),
        steps=(26000,),
        kind="missing",
        summary="step26000 branch was missing",
        status="fixed: uploaded 2023-04-24",
        url="https://github.com/EleutherAI/pythia/issues/94",
    ),
)

# January 2023 renaming: old size names -> current ones (the models count embedding params now).
RENAMED: dict[str, str] = {
    "19m": "70m",
    "125m": "160m",
    "350m": "410m",
    "800m": "1b",
    "1.3b": "1.4b",
    "2.7b": "2.8b",
    "6.7b": "6.9b",
    "13b": "12b",
}
RENAME_URL = "https://github.com/EleutherAI/pythia/issues/60"  # also pythia#138
V0_URL = "https://github.com/TransformerLensOrg/TransformerLens/pull/241"
V0_NOTE = (
    "'-v0' is the early release, later retrained to fix hyperparameter discrepancies "
    "(different weights from the current models; the current suite is suggested)"
)


def reports_for(model: str, step: int) -> list[Report]:
    """The reports covering (current repo name, step)."""
    return [r for r in REPORTS if r.covers(model, step)]
