"""EleutherAI's published Pythia models on Hugging Face: (model, step) -> (repo id, revision).

Every current model (14m ... 12b, standard and deduped) publishes the 154 revisions
``step0`` ... ``step143000`` of the Pythia schedule as branches of
``EleutherAI/pythia-SIZE[-deduped]``.
Old names (``pythia-19m`` ... ``pythia-13b``) are resolved to the current ones, ``-v0`` names to
the early release; both with a warning. Revisions that users reported as identical to a
neighbour, missing or carrying wrong weights are flagged (`warnings_for` logs them). Nothing
here downloads anything.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable
from typing import Any

from checkpoints_index.hub_reports import (
    RENAME_URL,
    RENAMED,
    V0_NOTE,
    V0_URL,
    Report,
    reports_for,
)
from checkpoints_index.schedule import PYTHIA_RULE, PYTHIA_STEPS, checkpoint_steps
from suite_core import CheckpointError

log = logging.getLogger(__name__)

ORG = "EleutherAI"
SIZES = ("14m", "31m", "70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b")
V0_SIZES = SIZES[2:]  # the early release had no 14m / 31m
VARIANTS = ("standard", "deduped")
STEPS: tuple[int, ...] = tuple(checkpoint_steps(PYTHIA_RULE, PYTHIA_STEPS))
NAME = re.compile(r"^(?:EleutherAI/)?pythia-([0-9.]+[mb])(-deduped)?(-v0)?$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True, kw_only=True)
class HubRevision:
    """One published checkpoint."""

    model: str  # current repo name, e.g. "pythia-70m-deduped" (or "...-v0")
    size: str
    variant: str
    step: int
    repo_id: str
    revision: str
    reports: tuple[Report, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["reports"] = [dataclasses.asdict(r) for r in self.reports]
        return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelName:
    """A parsed model name: current size, variant, release, and the notes on the name."""

    size: str
    variant: str
    v0: bool
    notes: tuple[str, ...]

    @property
    def repo_name(self) -> str:
        return (
            f"pythia-{self.size}"
            + ("-deduped" if self.variant == "deduped" else "")
            + ("-v0" if self.v0 else "")
        )


def parse_model(model: str) -> ModelName:
    """Parse 'pythia-70m', 'EleutherAI/pythia-70m-deduped', old 'pythia-19m', 'pythia-70m-v0'."""
    match = NAME.match(model.strip())
    if not match:
        raise CheckpointError(
            f"model {model!r}: expected pythia-SIZE[-deduped][-v0] with SIZE one of "
            f"{', '.join(SIZES)}"
        )
    size, deduped, v0 = match.group(1).lower(), bool(match.group(2)), bool(match.group(3))
    notes = []
    if size in RENAMED:
        notes.append(
            f"model {model!r}: renamed in January 2023 to pythia-{RENAMED[size]} ({RENAME_URL})"
        )
        size = RENAMED[size]
    if size not in SIZES:
        raise CheckpointError(f"model {model!r}: unknown size {size!r}; known: {', '.join(SIZES)}")
    if v0:
        if size not in V0_SIZES:
            raise CheckpointError(f"model {model!r}: no -v0 release of pythia-{size}")
        notes.append(f"model {model!r}: {V0_NOTE} ({V0_URL})")
    return ModelName(
        size=size, variant="deduped" if deduped else "standard", v0=v0, notes=tuple(notes)
    )


def revision(model: str, step: int) -> HubRevision:
    """The published revision of `model` at `step` (ValueError if it is not a published step)."""
    name = parse_model(model)
    if step not in STEPS:
        raise CheckpointError(
            f"step {step}: not a published Pythia checkpoint (step0, step1, step2, "
            f"..., step512, then every 1000 to step{PYTHIA_STEPS})"
        )
    reports = () if name.v0 else tuple(reports_for(name.repo_name, step))
    return HubRevision(
        model=name.repo_name,
        size=name.size,
        variant=name.variant,
        step=step,
        repo_id=f"{ORG}/{name.repo_name}",
        revision=f"step{step}",
        reports=reports,
    )


def list_revisions(
    model: str | None = None, *, steps: Iterable[int] | None = None
) -> list[HubRevision]:
    """Every published revision of `model` (all current models if None), by step."""
    if model is None:
        models = [
            f"pythia-{s}" + ("-deduped" if v == "deduped" else "") for s in SIZES for v in VARIANTS
        ]
    else:
        models = [model]
    wanted = STEPS if steps is None else sorted(set(steps))
    return [revision(m, s) for m in models for s in wanted]


def hf_from_pretrained_args(model: str, step: int) -> tuple[str, str]:
    """(repo_id, revision) for `GPTNeoXForCausalLM.from_pretrained(repo_id, revision=...)`.

    Logs the warnings of `warnings_for` first.
    """
    warnings_for(model, step)
    found = revision(model, step)
    return found.repo_id, found.revision


def warnings_for(model: str, step: int) -> list[str]:
    """Warnings about this name and revision (renamed, v0, user reports); each is logged."""
    name = parse_model(model)
    messages = list(name.notes)
    for report in revision(model, step).reports:
        messages.append(
            f"{ORG}/{name.repo_name}@step{step}: reported {report.kind}: "
            f"{report.summary} [{report.status}] ({report.url})"
        )
    for message in messages:
        log.warning("%s", message)
    return messages
