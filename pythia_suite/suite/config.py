"""The suite config: YAML validated into keyword-only dataclasses, one per section.

A suite file is merged over a preset (`presets.PRESETS`, default `default`), section by section;
every key is checked against the dataclass fields and every value against the field's type and
range. Errors are one `ConfigError` naming the file, its line when known, and the dotted field:
`suite.yaml:7: field 'train.models': unknown model 'pythia-huge' (...)`. `dump_config` writes
the resolved config (what `runs/<name>/suite.yaml` holds); reading it back gives the same config.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pythia_suite.suite.study_table import STUDY_TABLE
from suite_core import ConfigError

VARIANTS = ("standard", "deduped")
PRECISIONS = ("fp32", "bf16", "fp16")
INTERVENTIONS = ("pronoun-swap",)
STUDIES = tuple(STUDY_TABLE)  # the studies a config may name
MAX_THREADS_PER_CORE = 4
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True, kw_only=True)
class CorpusSection:
    """The corpus: the embedded mini-Pile (`synth`: a preset) or a named jsonl(.zst) file."""

    synth: str | None = "tiny"  # `corpus synth --preset`; null with `path`
    seed: int = 1234  # `corpus synth --seed`
    path: Path | None = None  # a Pile-schema corpus instead of the synthetic one
    truth: Path | None = None  # its truth.json, if it has one (None: studies get truth=None)


@dataclass(frozen=True, kw_only=True)
class DedupSection:
    threshold: float = 0.87
    num_perm: int = 128
    seed: int = 1


@dataclass(frozen=True, kw_only=True)
class TokenizerSection:
    vocab_size: int = 2048  # trained on the deduplicated corpus, shared by both variants


@dataclass(frozen=True, kw_only=True)
class DataSection:
    """Both variants are prepared with these settings and the same order seed."""

    seq_length: int = 128
    batch_size: int = 8
    steps: int = 256
    held_out_rows: int = 256  # rows past steps * batch_size: never trained (control group)
    seed: int = 1234  # data-order seed

    @property
    def num_samples(self) -> int:
        return self.steps * self.batch_size + self.held_out_rows


@dataclass(frozen=True, kw_only=True)
class TrainSection:
    """Every model is trained on every variant, with the same weight seed."""

    models: tuple[str, ...] = ("pythia-nano",)
    variants: tuple[str, ...] = VARIANTS
    seed: int = 1234  # weight-initialization seed
    checkpoints: str | None = None  # rule; None: the trainer's default for the row
    precision: str = "fp32"
    threads: int | None = None  # torch threads; None: this machine's cores, pinned on first run


@dataclass(frozen=True, kw_only=True)
class BranchSection:
    """An intervention branch of one baseline run, from `step` to the last step."""

    enabled: bool = False
    model: str | None = None  # default: the first of train.models
    variant: str = "standard"
    step: int | None = None  # default: steps * 3 // 4 (rounded to a checkpoint of the parent)
    intervention: str = "pronoun-swap"


@dataclass(frozen=True, kw_only=True)
class SuiteConfig:
    name: str = "default"
    corpus: CorpusSection = field(default_factory=CorpusSection)
    dedup: DedupSection = field(default_factory=DedupSection)
    tokenizer: TokenizerSection = field(default_factory=TokenizerSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    branch: BranchSection = field(default_factory=BranchSection)
    studies: dict[str, dict[str, Any]] = field(default_factory=dict)  # study -> run_study options
    external: dict[str, Any] = field(default_factory=dict)  # fetched runs (suite/external.py)

    def section(self, name: str) -> Any:
        """A section as plain JSON-able data (what stage keys hash)."""
        return to_plain(getattr(self, name))


class _Where:
    """Names the file and, when known, the line of a dotted field."""

    def __init__(self, source: str, lines: dict[str, int]) -> None:
        self.source, self.lines = source, lines

    def error(self, dotted: str, message: str) -> ConfigError:
        parts = dotted.split(".")  # a missing key: the line of its nearest parent
        keys = (".".join(parts[:n]) for n in range(len(parts), 0, -1))
        line = next((self.lines[k] for k in keys if k in self.lines), None)
        where = f"{self.source}:{line}" if line else self.source
        return ConfigError(f"{where}: field '{dotted}': {message}")


def where_error(source: str, dotted: str, message: str) -> ConfigError:
    """`SOURCE: field 'DOTTED': MESSAGE` (checks made after the config was resolved)."""
    return _Where(source, {}).error(dotted, message)


def check_value(value: Any, hint: Any, dotted: str, source: str) -> Any:
    """`value` checked against the type `hint` (as the config's own fields are)."""
    return _check_value(value, hint, dotted, _Where(source, {}))


def _key_lines(node: yaml.Node | None, prefix: str = "", path: str = "") -> dict[str, int]:
    """dotted key -> 1-based line, from a composed YAML node tree; a key given twice in one
    mapping is refused (the second would silently win)."""
    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            dotted = f"{prefix}.{key.value}" if prefix else str(key.value)
            if dotted in out:
                raise ConfigError(
                    f"{path}:{key.start_mark.line + 1}: field '{dotted}': given twice "
                    f"(first on line {out[dotted]})"
                )
            out[dotted] = key.start_mark.line + 1
            out.update(_key_lines(value, dotted, path))
    return out


MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 32
_OPEN = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSE = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _check_shape(path: Path, text: str) -> None:
    """Refuse, before parsing, what would hang or overflow the parser: anchors and aliases
    (an alias bomb), nesting deeper than a config has."""
    depth = 0
    for token in yaml.scan(text):
        if isinstance(token, (yaml.AliasToken, yaml.AnchorToken)):
            raise ConfigError(
                f"{path}:{token.start_mark.line + 1}: YAML anchors and aliases (&name, *name) "
                "are not supported in a suite config; write the values out"
            )
        depth += isinstance(token, _OPEN) - isinstance(token, _CLOSE)
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(
                f"{path}:{token.start_mark.line + 1}: nested deeper than {MAX_YAML_DEPTH} "
                "levels; a suite config has sections of options"
            )


def read_yaml(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The mapping in `path` and the line of every key."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (the suite config)")
    if path.stat().st_size > MAX_YAML_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size:,} bytes; a suite config is under 1 MiB")
    try:
        text = path.read_text(encoding="utf-8")
        _check_shape(path, text)
        data = yaml.safe_load(text)
        lines = _key_lines(yaml.compose(text), path=str(path))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"{path}{line}: malformed YAML ({problem})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the suite config must be a mapping of sections")
    return data, lines


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into `base`: sections (mappings) key by key, other values replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "studies":
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _check_value(value: Any, hint: Any, dotted: str, where: _Where) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (list, collections.abc.Sequence):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise where.error(dotted, f"must be a list, got {value!r}")
        return [_check_value(v, args[0] if args else Any, dotted, where) for v in value]
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check_value(value, inner, dotted, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise where.error(dotted, f"must be true or false, got {value!r}")
        return value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise where.error(dotted, f"must be an integer, got {value!r}")
        return value
    if hint is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise where.error(dotted, f"must be a number, got {value!r}")
        return float(value)
    if hint is str or hint is Path:
        if not isinstance(value, str) or not value:
            raise where.error(dotted, f"must be a non-empty string, got {value!r}")
        return Path(value) if hint is Path else value
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
            raise where.error(dotted, f"must be a non-empty list, got {value!r}")
        items = [_check_value(v, args[0], dotted, where) for v in value]
        if len(set(items)) != len(items):
            raise where.error(dotted, f"lists an entry twice: {value!r}")
        return tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise where.error(dotted, f"must be a mapping, got {value!r}")
        return value
    raise AssertionError(f"unhandled type {hint!r}")  # pragma: no cover


def build_section(cls: type, data: Any, prefix: str, where: _Where) -> Any:
    """An instance of the dataclass `cls` from a mapping, every key and value checked."""
    if not isinstance(data, dict):
        raise where.error(prefix, f"must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise where.error(dotted, f"unknown key (known: {', '.join(names)})")
        if dataclasses.is_dataclass(hints[key]):
            kwargs[key] = build_section(hints[key], value, dotted, where)
        else:
            kwargs[key] = _check_value(value, hints[key], dotted, where)
    return cls(**kwargs)


def _positive(where: _Where, section: Any, prefix: str, *names: str, zero: bool = False) -> None:
    for name in names:
        value = getattr(section, name)
        if value is not None and (value < 0 if zero else value < 1):
            bound = ">= 0" if zero else ">= 1"
            raise where.error(f"{prefix}.{name}", f"must be {bound}, got {value}")


def check(config: SuiteConfig, where: _Where) -> None:
    """Range and name checks that the types alone do not catch."""
    if not NAME_RE.match(config.name):
        raise where.error("name", f"must be a plain directory name, got {config.name!r}")
    _check_corpus(config, where)
    if not 0.0 < config.dedup.threshold <= 1.0:
        raise where.error("dedup.threshold", f"must be in (0, 1], got {config.dedup.threshold}")
    _positive(where, config.dedup, "dedup", "num_perm")
    _positive(where, config.tokenizer, "tokenizer", "vocab_size")
    _positive(where, config.data, "data", "seq_length", "batch_size", "steps")
    _positive(where, config.data, "data", "held_out_rows", zero=True)
    _check_train(config, where)
    _check_branch(config, where)
    if config.external:
        from pythia_suite.suite.external_config import parse_external

        parse_external(config.external, None, where.error)
    for study, options in config.studies.items():
        if study not in STUDIES:
            raise where.error(
                f"studies.{study}", f"unknown study (choose from {', '.join(STUDIES)})"
            )
        if options is not None and not isinstance(options, dict):
            raise where.error(f"studies.{study}", f"must be a mapping of options, got {options!r}")


def _check_corpus(config: SuiteConfig, where: _Where) -> None:
    from pythia_suite.corpus.synth import PRESETS as CORPUS_PRESETS

    c = config.corpus
    if (c.synth is None) == (c.path is None):
        raise where.error("corpus", "give exactly one of 'synth' (a preset) and 'path' (a file)")
    if c.synth is not None and c.synth not in CORPUS_PRESETS:
        raise where.error(
            "corpus.synth", f"unknown preset {c.synth!r} (choose from {', '.join(CORPUS_PRESETS)})"
        )
    if c.truth is not None and c.path is None:
        raise where.error("corpus.truth", "only with 'path' (synth writes its own truth.json)")


def _check_train(config: SuiteConfig, where: _Where) -> None:
    from checkpoints_index.schedule import checkpoint_steps
    from pythia_suite.training.family import get_row

    t = config.train
    for model in t.models:
        try:
            get_row(model)
        except ValueError as exc:
            raise where.error("train.models", str(exc)) from None
    for variant in t.variants:
        if variant not in VARIANTS:
            raise where.error(
                "train.variants", f"unknown variant {variant!r} (choose from {', '.join(VARIANTS)})"
            )
    if t.precision not in PRECISIONS:
        raise where.error(
            "train.precision", f"unknown {t.precision!r} (choose from {', '.join(PRECISIONS)})"
        )
    _positive(where, t, "train", "threads")
    cores = os.cpu_count() or 1
    if t.threads is not None and t.threads > MAX_THREADS_PER_CORE * cores:
        raise where.error(
            "train.threads",
            f"{t.threads} threads on {cores} cores (at most {MAX_THREADS_PER_CORE * cores}; "
            "leave it unset for this machine's default)",
        )
    if t.checkpoints is not None:
        try:
            checkpoint_steps(t.checkpoints, config.data.steps)
        except ValueError as exc:
            raise where.error("train.checkpoints", str(exc)) from None


def _check_branch(config: SuiteConfig, where: _Where) -> None:
    b, t = config.branch, config.train
    if b.model is not None and b.model not in t.models:
        raise where.error("branch.model", f"{b.model!r} is not one of train.models")
    if b.enabled and b.variant not in t.variants:
        raise where.error("branch.variant", f"{b.variant!r} is not one of train.variants")
    if b.step is not None and not 0 <= b.step < config.data.steps:
        raise where.error("branch.step", f"must be in [0, {config.data.steps}), got {b.step}")
    if b.intervention not in INTERVENTIONS:
        raise where.error(
            "branch.intervention",
            f"unknown {b.intervention!r} (choose from {', '.join(INTERVENTIONS)})",
        )


def resolve(
    data: dict[str, Any], *, source: str, lines: dict[str, int] | None = None
) -> SuiteConfig:
    """Validate merged config data (`train.threads` unset stays None: `run_suite` pins it)."""
    where = _Where(source, lines or {})
    studies = data.get("studies")
    if isinstance(studies, dict):  # `studies: {memorization: null}` means no options
        data = {
            **data,
            "studies": {
                k: dict(v or {}) if isinstance(v, dict) or v is None else v
                for k, v in studies.items()
            },
        }
    config = build_section(SuiteConfig, data, "", where)
    check(config, where)
    return config


def load_config(
    path: Path | None, *, preset: str = "default", name: str | None = None
) -> SuiteConfig:
    """The preset, with the suite file (if any) merged over it and `name` (if any) over both."""
    from pythia_suite.suite.presets import preset_data

    data = preset_data(preset)
    source, lines = f"preset {preset!r}", dict[str, int]()
    if path is not None:
        user, lines = read_yaml(Path(path))
        data, source = merge(data, user), str(path)
    if name is not None:
        if not NAME_RE.match(name):
            raise ConfigError(f"--name: must be a plain directory name, got {name!r}")
        data["name"] = name
    return resolve(data, source=source, lines=lines)


def to_plain(value: Any) -> Any:
    """Dataclasses, tuples and paths as JSON/YAML-able dicts, lists and strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def dump_config(config: SuiteConfig) -> str:
    """The resolved config as YAML (section order as in the dataclasses)."""
    header = "# the resolved suite config (pythia-suite run writes it; it can be run again)\n"
    return header + yaml.safe_dump(to_plain(config), sort_keys=False, default_flow_style=False)
