"""Checks of a suite config that need more than its types, all made before any stage runs:
the studies' options (named `studies.X.Y`, typed from their `run_study` signatures), seeds,
the vocabulary, the named corpus and truth files, and the resources the config asks for (disk
for the prepared data, memory for training and MinHash), each refusal with the size needed.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from pythia_suite.suite.config import SuiteConfig, check_value, where_error
from pythia_suite.suite.layout import Layout, corpus_file
from pythia_suite.suite.study_table import STUDY_TABLE, StudyFunction
from suite_core import ConfigError
from suite_core.hashing import sha256_file

MAX_SEED = 2**32 - 1  # numpy and torch seeds
MAX_NUM_PERM = 4096  # MinHash permutations (datasketch's default is 128)
HEADROOM = 0.8  # of the available memory or free disk a config may plan to use
RESERVED = ("runs", "truth", "out_dir")
# study options that count something: >= 1, and at most this (None: no upper bound)
COUNTS: dict[str, int | None] = {
    "rows": 10**7,
    "k": 10**5,
    "target": 10**5,
    "batch_size": 2**16,
    "checkpoints": 10**4,
    "max_length": 2**20,
}


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def check_study_options(study: str, fn: Any, options: dict[str, Any], source: str) -> None:
    """Every option a known parameter of `fn`, of its annotated type, in range."""
    params = inspect.signature(fn).parameters
    hints = typing.get_type_hints(fn)
    for key, value in options.items():
        dotted = f"studies.{study}.{key}"
        p = params.get(key)
        if key in RESERVED or p is None or p.kind is p.VAR_KEYWORD:
            known = [n for n, q in params.items() if n not in RESERVED and q.kind is q.KEYWORD_ONLY]
            raise where_error(source, dotted, f"unknown option (known: {', '.join(known)})")
        value = check_value(value, hints.get(key, Any), dotted, source)
        _check_range(dotted, key, value, source)


def _check_range(dotted: str, key: str, value: Any, source: str) -> None:
    if key == "processes" and value is not None:
        most = 4 * (os.cpu_count() or 1)
        if not 1 <= value <= most:
            raise where_error(source, dotted, f"must be in 1..{most} on this machine, got {value}")
    elif key in COUNTS and value is not None:
        cap = COUNTS[key]
        if value < 1 or (cap is not None and value > cap):
            raise where_error(source, dotted, f"must be in 1..{cap:,}, got {value}")
    elif key in ("crows", "winobias") and value is not None and not Path(value).is_file():
        raise where_error(source, dotted, f"{value}: no such file")
    elif isinstance(value, (list, tuple)) and any(isinstance(v, int) and v < 0 for v in value):
        raise where_error(source, dotted, f"must not hold negative numbers, got {list(value)}")


def check_seeds(config: SuiteConfig, source: str) -> None:
    for dotted, seed in (
        ("corpus.seed", config.corpus.seed),
        ("dedup.seed", config.dedup.seed),
        ("data.seed", config.data.seed),
        ("train.seed", config.train.seed),
    ):
        if not 0 <= seed <= MAX_SEED:
            raise where_error(source, dotted, f"must be in 0..{MAX_SEED}, got {seed}")


def check_vocab(config: SuiteConfig, source: str) -> None:
    from pythia_suite.corpus.tokenizer import MAX_VOCAB_SIZE, SPECIAL_TOKENS

    low, v = len(SPECIAL_TOKENS) + 256, config.tokenizer.vocab_size
    if not low <= v <= MAX_VOCAB_SIZE:
        raise where_error(
            source,
            "tokenizer.vocab_size",
            f"must be in {low}..{MAX_VOCAB_SIZE:,} (specials + 256 bytes at least), got {v:,}",
        )


def check_named_files(config: SuiteConfig, layout: Layout, source: str) -> None:
    """`corpus.path`: a regular file outside the suite folder whose first line is a Pile-schema
    document; `corpus.truth`: a JSON object."""
    c = config.corpus
    if c.path is not None:
        path = corpus_file(config, layout)
        _regular(path, "corpus.path", source)
        inside = layout.root.absolute()
        if path.resolve().is_relative_to(inside.resolve()) if inside.exists() else False:
            raise where_error(
                source, "corpus.path", f"{path} is inside the suite folder {inside} (its outputs)"
            )
        _first_document(path, source)
    if c.truth is not None:
        truth = Path(c.truth).absolute()
        _regular(truth, "corpus.truth", source)
        try:
            data = json.loads(truth.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{truth}: field 'corpus.truth': not JSON ({exc})") from None
        except RecursionError:
            raise ConfigError(f"{truth}: field 'corpus.truth': nested too deeply") from None
        if not isinstance(data, dict):
            raise ConfigError(
                f"{truth}: field 'corpus.truth': must be a JSON object (truth.json), "
                f"got a {type(data).__name__}"
            )
        _truth_belongs(truth, data, corpus_file(config, layout))


def _truth_belongs(truth: Path, data: dict, corpus: Path) -> None:
    """A truth.json that names its corpus (`corpus_sha256`) must name this one."""
    expected = data.get("corpus_sha256")
    if isinstance(expected, str) and corpus.is_file() and sha256_file(corpus) != expected:
        raise ConfigError(
            f"{truth}: field 'corpus_sha256': {expected[:12]}... is not the sha256 of "
            f"corpus.path {corpus}: this truth.json belongs to another corpus"
        )


def _regular(path: Path, dotted: str, source: str) -> None:
    if not path.exists():
        raise where_error(source, dotted, f"{path}: no such file")
    if not path.is_file():
        raise where_error(source, dotted, f"{path}: not a regular file")


def _first_document(path: Path, source: str) -> None:
    from dataloader_replay.jsonl import iter_documents

    try:
        first = next(iter(iter_documents(path)), None)
    except (ValueError, OSError) as exc:
        raise where_error(source, "corpus.path", str(exc)) from None
    if first is None:
        raise where_error(source, "corpus.path", f"{path}: holds no document")


def check_resources(config: SuiteConfig, layout: Layout, source: str) -> None:
    """Each model's context, disk for the prepared data, MinHash's size, memory for training."""
    from pythia_suite.training.family import get_row

    d = config.data
    for model in config.train.models:
        try:
            get_row(model).with_seq_length(d.seq_length)
        except ValueError as exc:
            raise where_error(source, "data.seq_length", str(exc)) from None
    tokens = d.num_samples * (d.seq_length + 1)
    data_bytes = 3 * 4 * tokens * len(config.train.variants)  # rows as tokens + the indexes
    free = shutil.disk_usage(_existing(layout.root)).free
    if data_bytes > HEADROOM * free:
        raise where_error(
            source,
            "data",
            f"{d.num_samples:,} rows (steps x batch_size + held_out_rows) x "
            f"{d.seq_length + 1:,} tokens (seq_length + 1) need about "
            f"{_gib(data_bytes)} of disk for the prepared data, {_gib(free)} is free",
        )
    if config.dedup.num_perm > MAX_NUM_PERM:
        raise where_error(
            source,
            "dedup.num_perm",
            f"{config.dedup.num_perm:,} permutations (at most {MAX_NUM_PERM:,}; each costs "
            "8 bytes per shingle per document and as much time)",
        )
    for model in config.train.models:
        _check_model_memory(config, model, source)


def _check_model_memory(config: SuiteConfig, model: str, source: str) -> None:
    from pythia_suite.training.family import get_row
    from pythia_suite.training.memory import memory_plan

    d = config.data
    row = get_row(model).with_vocab(config.tokenizer.vocab_size).with_seq_length(d.seq_length)
    row = _with_batch(row, d.batch_size)
    need = memory_plan(row, world_size=1, parallel="ddp", precision=config.train.precision).total
    available = psutil.virtual_memory().available
    if need > HEADROOM * available:
        raise where_error(
            source,
            "train.models",
            f"{model} needs about {_gib(need)} of memory to train at batch {d.batch_size} x "
            f"{d.seq_length} tokens, {_gib(available)} is available on this machine",
        )


def _with_batch(row: Any, batch_size: int) -> Any:
    import dataclasses

    return dataclasses.replace(row, batch_size=batch_size, micro_batch_size=batch_size)


def _existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def check_all(config: SuiteConfig, layout: Layout, source: str) -> None:
    check_seeds(config, source)
    check_vocab(config, source)
    check_named_files(config, layout, source)
    check_precision(config, source)
    check_resources(config, layout, source)


def check_precision(config: SuiteConfig, source: str) -> None:
    from pythia_suite.training.precision import check_precision as trainer_check

    try:
        trainer_check(config.train.precision)
    except ValueError as exc:
        raise where_error(
            source, "train.precision", str(exc).removeprefix("--precision: ")
        ) from None


__all__: Sequence[str] = ["check_all", "check_study_options"]


def study_function(study: str, options: dict[str, Any], source: str) -> StudyFunction:
    """The study's `run_study` (from the table), after checking `options` against it."""
    loader = STUDY_TABLE.get(study)
    if loader is None:
        raise ConfigError(
            f"{source}: field 'studies.{study}': unknown study "
            f"(choose from {', '.join(STUDY_TABLE)})"
        )
    run_study = loader()
    check_study_options(study, run_study, options, source)
    return run_study
