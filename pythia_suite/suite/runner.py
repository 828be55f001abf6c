"""Running stages with skip-if-done: a stage's key is its config section plus its inputs' hashes.

Each stage records, when it completes, `runs/<name>/.state/<slug>.json` with its key (sha256 of
its name, its config section and the output digests of the stages it reads) and the digest of
its own outputs (content hashes). On the next run a stage whose key is unchanged and whose
outputs are on disk is skipped; a changed config section or a changed input re-runs it, and so
every stage downstream whose inputs' digests then change. A stage is marked started (its key)
before it runs: a killed resumable stage (training) continues from where it was if its key is
unchanged; any other interrupted stage starts over from nothing. A stage marked `always`
(verification) runs on every invocation, so that nothing skipped is taken on trust: its digest
is what it found now. A stage's `run` gets the digests its dependencies have in this
invocation (`Inputs`): the report states what this invocation's verify stages found.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suite_core import ConfigError
from suite_core.atomic import atomic_path

log = logging.getLogger(__name__)

Inputs = dict[str, dict[str, Any]]  # dependency slug -> its digest in this invocation
BAR_WIDTH = 20
PRIOR = 60.0


@dataclass(kw_only=True)
class Stage:
    """One unit of work of the suite."""

    slug: str  # file-safe id, e.g. "train-pythia-nano-standard"
    title: str  # what the progress line says
    kind: str  # "corpus", "train", "verify", "study", "report", ...
    config: Any  # the plain config data this stage depends on
    deps: tuple[str, ...]  # slugs of the stages whose outputs it reads
    outputs: tuple[Path, ...]  # removed before a fresh start; must exist to skip
    run: Callable[[bool, Inputs], None]  # run(resume, digests of its deps)
    digest: Callable[[], dict[str, Any]]  # content hashes of the outputs (after run)
    estimate: float = 1.0  # seconds, for the progress bar before anything is measured
    resumable: bool = False
    always: bool = False  # run on every invocation (never skipped): checks, not work
    protected: bool = False  # its outputs (trained runs) are replaced only with `replace=True`


@dataclass(kw_only=True)
class Outcome:
    slug: str
    kind: str
    skipped: bool
    seconds: float
    digest: dict[str, Any]
    check: bool = False  # an `always` stage: it re-checked, it made nothing


@dataclass(kw_only=True)
class SuiteResult:
    outcomes: list[Outcome] = field(default_factory=list)

    def ran(self, kind: str | None = None) -> list[str]:
        """Slugs of the stages that did work (of one kind if given); checks are not work."""
        return [
            o.slug
            for o in self.outcomes
            if not o.skipped and not o.check and kind in (None, o.kind)
        ]

    def checked(self) -> list[str]:
        """Slugs of the `always` stages (verification), which ran in this invocation."""
        return [o.slug for o in self.outcomes if o.check]

    def digests(self) -> dict[str, dict[str, Any]]:
        return {o.slug: o.digest for o in self.outcomes}


def stable_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def write_json(path: Path, value: Any) -> None:
    """Replace `path` atomically with `value` as JSON."""
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


REPORT = "report"  # the report stage's slug (the last stage of every suite)


def forget(state_dir: Path, slug: str) -> None:
    """Drop stage `slug`'s completion record: its next invocation runs it again."""
    (state_dir / f"{slug}.json").unlink(missing_ok=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _remove_output(path: Path) -> None:
    """The output and any temporary sibling a killed atomic write left (`.NAME.*.tmp`)."""
    _remove(path)
    if path.parent.is_dir():
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            _remove(tmp)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


class Progress:
    """One line per stage: position, an overall bar weighted by estimated cost, time left."""

    def __init__(self, stages: list[Stage], skips: set[str]) -> None:
        self.skips = skips  # predicted: their estimates do not count
        self.total = sum(s.estimate for s in stages if s.slug not in skips)
        self.count = len(stages)
        self.done_estimate = 0.0  # estimated seconds of the stages finished
        self.worked_estimate = 0.0  # of those that did work (not skipped)
        self.worked_seconds = 0.0
        self.index = 0

    def line(self, stage: Stage, status: str, seconds: float, skipped: bool) -> str:
        self.index += 1
        if stage.slug not in self.skips:
            self.done_estimate += stage.estimate
        if not skipped:
            self.worked_estimate += stage.estimate
            self.worked_seconds += seconds
        fraction = (
            min(1.0, self.done_estimate / self.total) if self.total > 0 else self.index / self.count
        )
        filled = round(fraction * BAR_WIDTH)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        # measured seconds per estimated second, damped by a prior of PRIOR estimated seconds
        # at rate 1, so that one short stage off its estimate does not swing the time left
        rate = (self.worked_seconds + PRIOR) / (self.worked_estimate + PRIOR)
        left = (self.total - self.done_estimate) * rate
        width = len(str(self.count))
        tail = "done" if self.index == self.count else f"about {_duration(left)} left"
        return (
            f"[{self.index:>{width}}/{self.count}] |{bar}| {fraction:4.0%}  "
            f"{stage.title}: {status} ({tail})"
        )


def _key(stage: Stage, digests: dict[str, dict[str, Any]]) -> str:
    return stable_hash(
        {"stage": stage.slug, "config": stage.config, "inputs": {d: digests[d] for d in stage.deps}}
    )


def _done(stage: Stage, key: str, state_dir: Path) -> dict[str, Any] | None:
    """The stage's record if it is complete with this key and its outputs are on disk."""
    if stage.always:
        return None
    done = read_json(state_dir / f"{stage.slug}.json")
    if isinstance(done, dict) and done.get("key") == key and all(p.exists() for p in stage.outputs):
        return done
    return None


def predicted_skips(stages: list[Stage], state_dir: Path) -> set[str]:
    """The stages that will be skipped: complete with the key they will have (a stage whose
    inputs will change is predicted to run; an `always` stage is predicted to give the digest
    it recorded)."""
    digests: dict[str, dict[str, Any]] = {}
    skips = set()
    for stage in stages:
        if any(d not in digests for d in stage.deps):
            continue
        key = _key(stage, digests)
        if stage.always:
            done = read_json(state_dir / f"{stage.slug}.json")
            if isinstance(done, dict) and done.get("key") == key:
                digests[stage.slug] = done.get("digest") or {}
            continue
        done = _done(stage, key, state_dir)
        if done is not None:
            skips.add(stage.slug)
            digests[stage.slug] = done["digest"]
    return skips


def would_replace(stages: list[Stage], state_dir: Path) -> list[Stage]:
    """The protected stages whose existing outputs this invocation would remove: their key
    will differ from the completed one (or cannot be known before their inputs are remade) and
    they would not resume. Inputs that will be remade are expected to give their recorded
    digest (re-making is deterministic); `run_stages` checks again when it gets there."""
    digests: dict[str, dict[str, Any] | None] = {}
    out = []
    for stage in stages:
        known = all(digests.get(d) is not None for d in stage.deps)
        key = _key(stage, digests) if known else None  # type: ignore[arg-type]
        done = read_json(state_dir / f"{stage.slug}.json")
        same = isinstance(done, dict) and key is not None and done.get("key") == key
        digests[stage.slug] = done.get("digest") if same else None  # type: ignore[union-attr]
        existing = any(p.exists() or p.is_symlink() for p in stage.outputs)
        if stage.protected and existing and not same and not _resumes(stage, key, state_dir):
            out.append(stage)
    return out


def _resumes(stage: Stage, key: str | None, state_dir: Path) -> bool:
    started_file = state_dir / f"{stage.slug}.started"
    return (
        stage.resumable
        and key is not None
        and started_file.is_file()
        and started_file.read_text().strip() == key
    )


def _start(stage: Stage, key: str, state_dir: Path, replace: bool) -> bool:
    """Mark `stage` started under `key`, its outputs removed unless it resumes; resume?"""
    done_file = state_dir / f"{stage.slug}.json"
    started_file = state_dir / f"{stage.slug}.started"
    resume = _resumes(stage, key, state_dir)
    existing = [p for p in stage.outputs if p.exists() or p.is_symlink()]
    if stage.protected and not resume and existing and not replace:
        raise ConfigError(
            f"{existing[0]}: {stage.title} would start over and replace it (its inputs "
            "changed); pass --replace to replace it"
        )
    if done_file.exists():
        done_file.unlink()
    if not resume:
        for path in stage.outputs:
            _remove_output(path)
    with atomic_path(started_file, overwrite=True) as tmp:
        tmp.write_text(key + "\n")
    log.debug("stage %s: %s (key %s)", stage.slug, "resuming" if resume else "starting", key)
    return resume


def _status(stage: Stage, resume: bool, seconds: float) -> str:
    if stage.always:
        return f"checked in {_duration(seconds)}"
    return f"{'resumed, ' if resume else ''}done in {_duration(seconds)}"


def run_stages(stages: list[Stage], state_dir: Path, *, replace: bool = False) -> SuiteResult:
    """Run `stages` in order (dependencies first), skipping those complete and unchanged;
    a protected stage's existing outputs are replaced only with `replace`."""
    state_dir.mkdir(parents=True, exist_ok=True)
    digests: dict[str, dict[str, Any]] = {}
    result = SuiteResult()
    progress = Progress(stages, predicted_skips(stages, state_dir))
    for stage in stages:
        missing = [d for d in stage.deps if d not in digests]
        assert not missing, f"stage {stage.slug} runs before {missing}"
        key = _key(stage, digests)
        done = _done(stage, key, state_dir)
        if done is not None:
            digests[stage.slug] = done["digest"]
            result.outcomes.append(
                Outcome(
                    slug=stage.slug,
                    kind=stage.kind,
                    skipped=True,
                    seconds=0.0,
                    digest=done["digest"],
                )
            )
            log.info("%s", progress.line(stage, "unchanged, skipped", 0.0, True))
            continue
        start = time.monotonic()
        resume = _start(stage, key, state_dir, replace)
        stage.run(resume, {d: digests[d] for d in stage.deps})
        digest = stage.digest()
        seconds = time.monotonic() - start
        write_json(
            state_dir / f"{stage.slug}.json",
            {"key": key, "digest": digest, "seconds": round(seconds, 3)},
        )
        (state_dir / f"{stage.slug}.started").unlink()
        digests[stage.slug] = digest
        result.outcomes.append(
            Outcome(
                slug=stage.slug,
                kind=stage.kind,
                skipped=False,
                seconds=seconds,
                digest=digest,
                check=stage.always,
            )
        )
        log.info("%s", progress.line(stage, _status(stage, resume, seconds), seconds, False))
    return result
