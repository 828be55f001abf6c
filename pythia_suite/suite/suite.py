"""`run_suite`: one suite config -> `runs/<name>/` (suite.yaml, suite.log, stages, report.html).

Everything is checked before anything is written or removed: the config and the stage graph
(`build_stages`), that ROOT/NAME is a suite folder (its marker file `.pythia-suite`, or new, or
empty), that nothing the suite writes inside it is a symlink, and which completed runs the
config would retrain (refused unless `replace`). `train.threads` left unset is pinned on the
first run (suite.yaml records it) and kept on every re-run, on any machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import yaml

from pythia_suite.suite.config import SuiteConfig, dump_config
from pythia_suite.suite.layout import MARKER, Layout
from pythia_suite.suite.runner import (
    REPORT,
    Stage,
    SuiteResult,
    forget,
    run_stages,
    would_replace,
)
from pythia_suite.suite.stages import build_stages
from suite_core import USER_ERRORS, ConfigError, SuiteError
from suite_core.atomic import atomic_path

log = logging.getLogger(__name__)
errors = logging.getLogger("pythia_suite.suite.errors")  # INFO: the log file, not the console

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MARKER_TEXT = "pythia-suite suite folder (written by `pythia-suite run`; do not remove)\n"
YAML_HEADER = "# the resolved suite config (pythia-suite run"


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One `pythia-suite run` per suite directory at a time (never through a symlink)."""
    path = root / ".lock"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SuiteError(f"{path}: is a symlink; refusing to write through it") from None
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SuiteError(f"{root}: another `pythia-suite run` is using this suite") from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _full_log(path: Path) -> Iterator[None]:
    """Every record (all packages, INFO and up) appended to `path` while the suite runs; an
    unexpected error's traceback too (the CLI names this file)."""
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
    except KeyboardInterrupt:
        raise
    except USER_ERRORS as exc:
        errors.info("error: %s", exc)  # the one line the user sees, in the log too
        raise
    except Exception as exc:
        errors.info("internal error", exc_info=True)  # the console shows the CLI's one line
        exc.log_path = path  # type: ignore[attr-defined]
        raise
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


def check_folder(layout: Layout) -> None:
    """ROOT/NAME must be new, empty, or a suite folder (its marker; a suite made before the
    marker existed is recognised by its suite.yaml and .state/)."""
    root = layout.root
    if root.is_symlink():
        raise SuiteError(f"{root}: is a symlink; a suite folder must be a real directory")
    if not root.exists():
        return
    if not root.is_dir():
        raise SuiteError(f"{root}: exists and is not a directory")
    if (root / MARKER).is_file() and not (root / MARKER).is_symlink():
        return
    if not any(root.iterdir()):
        return
    if _legacy_suite(layout):
        return
    raise SuiteError(
        f"{root}: exists and is not a pythia-suite folder (no {MARKER}); "
        "choose another --name or --root, or empty it"
    )


def _legacy_suite(layout: Layout) -> bool:
    yaml_path = layout.suite_yaml
    if yaml_path.is_symlink() or not yaml_path.is_file() or not layout.state.is_dir():
        return False
    with open(yaml_path, encoding="utf-8", errors="replace") as fh:
        return fh.readline().startswith(YAML_HEADER)


def check_no_symlinks(layout: Layout, stages: list[Stage]) -> None:
    """Nothing the suite writes or removes inside ROOT/NAME may be (or lie under) a symlink."""
    paths = [layout.suite_yaml, layout.log, layout.state, layout.root / ".lock"]
    paths += [p for s in stages for p in s.outputs]
    for path in paths:
        try:
            rel = path.relative_to(layout.root)
        except ValueError:
            continue  # a named input outside the suite, never written
        current = layout.root
        for part in rel.parts:
            current = current / part
            if current.is_symlink():
                raise SuiteError(
                    f"{current}: is a symlink inside the suite folder; refusing to write "
                    "or remove through it (replace it by a real file or directory)"
                )


def pin_threads(config: SuiteConfig, layout: Layout) -> SuiteConfig:
    """`train.threads` unset: the value the suite's saved suite.yaml pinned, else this
    machine's default (then pinned by the suite.yaml this run writes)."""
    if config.train.threads is not None:
        return config
    threads = _saved_threads(layout)
    if threads is None:
        from pythia_suite.training.distributed import DistEnv
        from pythia_suite.training.trainer import default_threads

        threads = default_threads(DistEnv())
    return dataclasses.replace(config, train=dataclasses.replace(config.train, threads=threads))


def _saved_threads(layout: Layout) -> int | None:
    path = layout.suite_yaml
    if path.is_symlink() or not path.is_file():
        return None
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8"))
        threads = saved["train"]["threads"]
    except (yaml.YAMLError, KeyError, TypeError, OSError, UnicodeDecodeError):
        return None
    return threads if isinstance(threads, int) and not isinstance(threads, bool) else None


def check_replacements(stages: list[Stage], layout: Layout, source: str) -> None:
    """Completed runs this config would retrain: refuse, naming them and --replace."""
    replaced = would_replace(stages, layout.state)
    if replaced:
        names = ", ".join(s.slug.removeprefix("train-") for s in replaced)
        raise ConfigError(
            f"{source}: this config would retrain and replace the existing runs {names} in "
            f"{layout.root / 'runs'}; pass --replace to replace them, or restore the config "
            f"(the saved one: {layout.suite_yaml})"
        )


def run_suite(
    config: SuiteConfig, *, root: Path, source: str, replace: bool = False
) -> SuiteResult:
    """Run (or finish, or re-check) the suite `config` in `root/<config.name>`.

    `source` names the config in error messages (the YAML file or the preset); `replace`
    lets a changed config retrain (replace) completed runs.
    """
    layout = Layout(root=Path(root) / config.name)
    check_folder(layout)
    config = pin_threads(config, layout)
    stages = build_stages(config, layout, source=source)  # every check before any write
    check_no_symlinks(layout, stages)
    if not replace:
        check_replacements(stages, layout, source)
    layout.root.mkdir(parents=True, exist_ok=True)
    if not (layout.root / MARKER).is_file():
        with atomic_path(layout.root / MARKER, overwrite=True) as tmp:
            tmp.write_text(MARKER_TEXT)
    with _locked(layout.root), _full_log(layout.log):
        _save_config(config, layout)
        log.info(
            "suite %s: %d stages in %s (full log: %s)",
            config.name,
            len(stages),
            layout.root,
            layout.log,
        )
        try:
            result = run_stages(stages, layout.state, replace=replace)
        except BaseException as exc:
            try:
                _report_not_current(layout, stages, exc)
            except OSError as also:  # the first error is the one to report
                log.warning("%s: could not be marked not current (%s)", layout.report, also)
            raise
        log.info("report: %s", layout.report)
    return result


def _report_not_current(layout: Layout, stages: list[Stage], exc: BaseException) -> None:
    """After a failed invocation the page left from an earlier one says so in a banner (which
    stage failed, and why), and the report stage's record goes: the next complete invocation
    draws the page again even when nothing else changed."""
    from pythia_suite.suite.report import mark_not_current

    failed = [s.title for s in stages if (layout.state / f"{s.slug}.started").is_file()]
    why = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc).split("\n")[0]
    where = f"{failed[0]}: " if failed else ""
    if mark_not_current(layout.report, f"{where}{why or type(exc).__name__}"):
        forget(layout.state, REPORT)
        log.info("%s: marked not current (this invocation failed)", layout.report)


def _save_config(config: SuiteConfig, layout: Layout) -> None:
    text = dump_config(config)
    if layout.suite_yaml.is_file() and layout.suite_yaml.read_text() != text:
        log.info(
            "%s: the config changed; stages that depend on the change run again",
            layout.suite_yaml,
        )
    with atomic_path(layout.suite_yaml, overwrite=True) as tmp:
        tmp.write_text(text)
