"""Intervention branches: a run that continues another run's checkpoint with changed data.

`pythia-suite train --branch-from RUN --branch-step STEP --intervention pronoun-swap --out RUN2`
continues RUN from its checkpoint at STEP (weights, optimizer state, RNG state, and the same data
order and learning-rate schedule, since RUN2 resolves to RUN's config) and from update STEP+1 on
feeds every batch through a one-directional token map (masculine -> feminine pronouns: he -> she,
him/his -> her, himself -> herself, in the bare, leading-space and capitalized forms that are
single tokens of the run's tokenizer), as Pythia's `intervention` branch of GPT-NeoX did.

RUN2 records the map (ids and strings), the forms that are not single tokens, and the branch point
(parent run, step, checkpoint sha256) in run.json. Its catalog lists RUN's checkpoints up to STEP
by a path into RUN's folder (same hashes, nothing copied), and its metrics.jsonl starts with RUN's
lines up to STEP, so replay, `--verify` and the studies cover the whole of training.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checkpoints_index.catalog import Catalog
from dataloader_replay.tokenizer import read_tokenizer
from suite_core import ConfigError
from suite_core.atomic import atomic_path
from suite_core.layout import METRICS, RUN_JSON
from suite_core.records import RunJson

log = logging.getLogger(__name__)

INTERVENTIONS = ("pronoun-swap",)
#: masculine -> feminine, as Pythia's intervention (one-directional: his and him both -> her)
PRONOUN_MAP = (("he", "she"), ("him", "her"), ("his", "her"), ("himself", "herself"))


@dataclass(frozen=True, kw_only=True)
class BranchPoint:
    """Where a branch run leaves its parent."""

    parent: Path  # the parent RUN directory (absolute)
    step: int  # the parent's checkpoint the branch continues from
    checkpoint_sha256: str  # sha256 of that checkpoint's model.safetensors (the parent's catalog)


def surface_forms(word: str) -> list[str]:
    """The forms of a pronoun that a token map covers: bare, leading-space, capitalized."""
    cap = word[0].upper() + word[1:]
    return [word, f" {word}", cap, f" {cap}"]


def single_token(tokenizer: Any, text: str) -> int | None:
    """The id if `text` is exactly one token of `tokenizer` (a `tokenizers.Tokenizer`)."""
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    if len(ids) != 1 or tokenizer.decode(ids) != text:
        return None
    return int(ids[0])


def pronoun_map(tokenizer: Any, where: str) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(map entries {from, to, from_id, to_id}, forms left out {from, to, reason}).

    A form pair is mapped when both sides are single tokens; `ValueError` naming `where` (the
    tokenizer file) when no pair is."""
    entries: list[dict[str, Any]] = []
    missing: list[dict[str, str]] = []
    for male, female in PRONOUN_MAP:
        for src, dst in zip(surface_forms(male), surface_forms(female), strict=True):
            a, b = single_token(tokenizer, src), single_token(tokenizer, dst)
            if a is None or b is None:
                which = [s for s, i in ((src, a), (dst, b)) if i is None]
                missing.append(
                    {
                        "from": src,
                        "to": dst,
                        "reason": "not a single token: " + ", ".join(map(repr, which)),
                    }
                )
                continue
            entries.append({"from": src, "to": dst, "from_id": a, "to_id": b})
    if not entries:
        raise ConfigError(
            f"{where}: none of the pronoun forms is a single token of this tokenizer "
            "(the pronoun-swap intervention maps single tokens)"
        )
    return entries, missing


def read_parent(parent: Path) -> RunJson:
    """The parent's run.json; FileNotFoundError naming it when --branch-from is not a run."""
    try:
        return RunJson.read(parent)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{Path(parent) / RUN_JSON}: no such file (--branch-from needs a run directory)"
        ) from None


def parent_defaults(parent: Path) -> dict[str, Any]:
    """The TrainConfig fields a branch inherits from its parent's run.json (model, data, ...)."""
    config = read_parent(Path(parent))
    fields = config.fields
    try:
        return {
            "model": fields["model"]["name"],
            "data": config.data.path,
            "steps": fields["steps"],
            "seed": fields["seed"],
            "checkpoints": fields["checkpoints"]["rule"],
        }
    except (KeyError, TypeError) as exc:
        raise ConfigError(
            f"{config.path}: field {exc} missing (not a run.json of this suite)"
        ) from None


# data fields a branch may differ from its parent by: its transform; a legacy manifest hash
_BRANCH_DATA_FIELDS = ("transform", "manifest_sha256")


def _check_same_run(parent: RunJson, run_config: dict[str, Any]) -> None:
    """ValueError naming the parent's first field that differs from the branch's config."""
    for key, value in run_config.items():
        mine, theirs = value, parent.fields.get(key)
        if key == "data":
            mine = {k: v for k, v in value.items() if k not in _BRANCH_DATA_FIELDS}
            theirs = {k: v for k, v in (theirs or {}).items() if k not in _BRANCH_DATA_FIELDS}
        if mine != theirs:
            raise ConfigError(
                f"{parent.path}: field '{key}' differs from this command's "
                f"({theirs!r} vs {mine!r}); a branch continues its parent's run "
                "unchanged"
            )


def plan_branch(
    *,
    parent: Path,
    step: int | None,
    intervention: str | None,
    run_config: dict[str, Any],
    transform: dict[str, Any] | None,
) -> tuple[BranchPoint, dict[str, Any], dict[str, Any]]:
    """Check the branch request against the parent; returns (point, transform, run.json fields).

    `run_config` is the branch's resolved config (without its transform): it must equal the
    parent's, so that both runs share data order, schedule and model."""
    parent = Path(parent).absolute()
    pconfig = read_parent(parent)
    if intervention not in INTERVENTIONS:
        raise ConfigError(
            f"--intervention: unknown {intervention!r} (choose from {', '.join(INTERVENTIONS)})"
        )
    if step is None:
        raise ConfigError("--branch-step: required with --branch-from")
    if transform is not None:
        raise ConfigError("--intervention: a branch's transform is its intervention; give no other")
    if pconfig.data.transform is not None:
        raise ConfigError(
            f"{pconfig.path}: field 'data.transform': the parent is itself an intervention "
            "run; branch from a run without a transform"
        )
    _check_same_run(pconfig, run_config)
    steps = int(run_config["steps"])
    if not 0 <= step < steps:
        raise ConfigError(
            f"--branch-step: {step} is outside the parent's training "
            f"(steps 0..{steps - 1} of {steps})"
        )
    with Catalog.open(parent, create=False) as catalog:
        records = {r.step: r for r in catalog.checkpoints()}
    if step not in records:
        near = ", ".join(str(s) for s in sorted(records)[:12])
        raise ConfigError(
            f"{parent}: field 'step': no checkpoint at step {step} (checkpoints: {near})"
        )
    point = BranchPoint(parent=parent, step=step, checkpoint_sha256=records[step].sha256)
    spec, fields = _intervention(point, intervention, Path(run_config["data"]["path"]))
    return point, spec, fields


def _intervention(
    point: BranchPoint, intervention: str, data_dir: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pronoun-swap transform spec from the data's tokenizer, and the run.json fields."""
    tok_path = data_dir / "tokenizer.json"
    entries, missing = pronoun_map(read_tokenizer(tok_path), str(tok_path))
    for m in missing:
        log.warning("pronoun-swap: %r -> %r left out (%s)", m["from"], m["to"], m["reason"])
    spec = {
        "name": "token_map",
        "map": [[e["from_id"], e["to_id"]] for e in entries],
        "start_step": point.step,
    }
    fields = {
        "branch": {
            "parent": str(point.parent),
            "step": point.step,
            "checkpoint_sha256": point.checkpoint_sha256,
        },
        "intervention": {
            "name": intervention,
            "map": entries,
            "not_single_tokens": missing,
            "tokenizer": str(tok_path),
        },
    }
    return spec, fields


def link_parent(run_dir: Path, point: BranchPoint) -> None:
    """List the parent's checkpoints up to the branch step in RUN2's catalog (by a relative
    path into the parent's folder), and start RUN2's metrics with the parent's lines up to it."""
    with Catalog.open(point.parent, create=False) as parent:
        records = [r for r in parent.checkpoints() if r.step <= point.step]
    with Catalog.open(run_dir) as catalog:
        known = {r.step for r in catalog.checkpoints()}
        for record in records:
            if record.step in known:
                continue
            path = os.path.relpath(record.folder(point.parent), run_dir)
            catalog.add_checkpoint(dataclasses.replace(record, path=path))
    metrics = run_dir / METRICS
    if metrics.exists():
        return
    lines = []
    source = point.parent / METRICS
    with open(source, encoding="utf-8") as fh:
        for line in fh:
            if json.loads(line)["step"] > point.step:
                break
            lines.append(line)
    if len(lines) != point.step:
        raise ConfigError(
            f"{source}: has {len(lines)} lines up to step {point.step}, expected {point.step}"
        )
    with atomic_path(metrics) as tmp:
        tmp.write_text("".join(lines), encoding="utf-8")
