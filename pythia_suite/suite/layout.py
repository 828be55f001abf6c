"""Where everything of a suite lives under `runs/<name>/`, and how its runs are named."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pythia_suite.suite.config import SuiteConfig

SUITE_YAML = "suite.yaml"
SUITE_LOG = "suite.log"
REPORT = "report.html"
MARKER = ".pythia-suite"  # the file that makes a folder a suite folder


@dataclass(frozen=True, kw_only=True)
class Layout:
    root: Path  # runs/<name>

    @property
    def suite_yaml(self) -> Path:
        return self.root / SUITE_YAML

    @property
    def log(self) -> Path:
        return self.root / SUITE_LOG

    @property
    def report(self) -> Path:
        return self.root / REPORT

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    @property
    def state(self) -> Path:
        return self.root / ".state"

    @property
    def corpus_dir(self) -> Path:
        return self.root / "corpus"

    @property
    def deduped(self) -> Path:
        return self.root / "deduped.jsonl"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer.json"

    def data(self, variant: str) -> Path:
        return self.root / "data" / variant

    def run(self, name: str) -> Path:
        return self.root / "runs" / name

    def study(self, name: str) -> Path:
        return self.root / "studies" / name


def corpus_file(config: SuiteConfig, layout: Layout) -> Path:
    """The standard corpus: the synthesized one or the named file."""
    if config.corpus.path is not None:
        return Path(config.corpus.path).absolute()
    return layout.corpus_dir / "corpus.jsonl"


def truth_file(config: SuiteConfig, layout: Layout) -> Path | None:
    if config.corpus.path is not None:
        return None if config.corpus.truth is None else Path(config.corpus.truth).absolute()
    return layout.corpus_dir / "truth.json"


def variant_input(config: SuiteConfig, layout: Layout, variant: str) -> Path:
    return corpus_file(config, layout) if variant == "standard" else layout.deduped


def run_name(model: str, variant: str, intervention: str | None = None) -> str:
    """`pythia-nano-standard`, `pythia-nano-deduped`, `pythia-nano-standard-pronoun-swap`."""
    return f"{model}-{variant}" + (f"-{intervention}" if intervention else "")
