"""`run_suite`: one suite config -> `runs/<name>/` (suite.yaml, suite.log, stages, report.html)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path

from pythia_suite.suite.config import SuiteConfig, dump_config
from pythia_suite.suite.layout import Layout
from pythia_suite.suite.runner import SuiteResult, run_stages
from pythia_suite.suite.stages import build_stages
from suite_core.atomic import atomic_path

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One `pythia-suite run` per suite directory at a time."""
    with open(root / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"{root}: another `pythia-suite run` is using this suite") from None
        yield


@contextlib.contextmanager
def _full_log(path: Path) -> Iterator[None]:
    """Every record (all packages, INFO and up) appended to `path` while the suite runs."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


def run_suite(config: SuiteConfig, *, root: Path, source: str) -> SuiteResult:
    """Run (or finish, or re-check) the suite `config` in `root/<config.name>`.

    `source` names the config in error messages (the YAML file or the preset).
    """
    layout = Layout(root=Path(root) / config.name)
    stages = build_stages(config, layout, source=source)  # every check before any write
    layout.root.mkdir(parents=True, exist_ok=True)
    with _locked(layout.root), _full_log(layout.log):
        text = dump_config(config)
        if layout.suite_yaml.is_file() and layout.suite_yaml.read_text() != text:
            log.info(
                "%s: the config changed; stages that depend on the change run again",
                layout.suite_yaml,
            )
        with atomic_path(layout.suite_yaml, overwrite=True) as tmp:
            tmp.write_text(text)
        log.info(
            "suite %s: %d stages in %s (full log: %s)",
            config.name,
            len(stages),
            layout.root,
            layout.log,
        )
        result = run_stages(stages, layout.state)
        log.info("report: %s", layout.report)
    return result
