"""Fixtures of the suite's tests: one tiny suite run once per session, headless Chromium."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.shared import built_once

CHROMIUM = "chromium"


@dataclass(frozen=True, kw_only=True)
class SuiteRun:
    root: Path  # --root
    dir: Path  # root/<name>
    stdout: str
    stderr: str


def run_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).parent / "pythia-suite"
    return subprocess.run(
        [str(cli), *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=900,
    )


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _run_tiny_suite(root: Path) -> None:
    result = run_cli("run", "--preset", "tiny", "--root", root / "suites")
    assert result.returncode == 0, result.stderr
    (root / "stdout.txt").write_text(result.stdout)
    (root / "stderr.txt").write_text(result.stderr)


@pytest.fixture(scope="session")
def tiny_suite(tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    """`pythia-suite run --preset tiny`, once per test run (shared by the xdist workers)."""
    folder = built_once(tmp_path_factory, "tiny-suite", _run_tiny_suite)
    root = folder / "suites"
    return SuiteRun(
        root=root,
        dir=root / "tiny",
        stdout=(folder / "stdout.txt").read_text(),
        stderr=(folder / "stderr.txt").read_text(),
    )


@dataclass(frozen=True, kw_only=True)
class PageState:
    figures: int
    loaded: int
    widths: list[int]
    checks: list[tuple[bool, str]]  # (data-passed, text) of each planted-truth line


def render_in_chromium(page: Path) -> PageState:
    """Load `page` in headless Chromium and read back what its load handler recorded."""
    binary = shutil.which(CHROMIUM)
    assert binary is not None, "chromium is not installed (`make test` installs it)"
    result = subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.absolute().as_uri(),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None, dom[:500]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
    widths = [int(w) for w in re.findall(r'<img[^>]*data-natural-width="(\d+)"', dom)]
    checks = [
        (p == "true", html.unescape(re.sub(r"<[^>]+>", "", text)))
        for p, text in re.findall(
            r'<div class="check [^"]*" data-passed="(\w+)">(.*?)</div>', dom, flags=re.DOTALL
        )
    ]
    return PageState(
        figures=int(attrs["data-figures"]),
        loaded=int(attrs["data-figures-loaded"]),
        widths=widths,
        checks=checks,
    )


def state_digests(suite_dir: Path) -> dict[str, object]:
    """Every completed stage's output digest, from `.state/`."""
    return {
        p.stem: json.loads(p.read_text())["digest"]
        for p in sorted((suite_dir / ".state").glob("*.json"))
    }


DEMO_YAML = """\
name: default
tokenizer:
  vocab_size: 2048
train:
  variants: [standard]
  checkpoints: "steps:0,8,16,24"
branch:
  enabled: true
  step: 16
"""


@pytest.fixture(scope="session")
def demo_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository-like folder with a tiny suite where `make demo` writes its suite
    (`runs/default`) and an empty `notebooks/` to start kernels in: what every notebook's
    defaults open (a 2048-token vocabulary: the pronoun-swap branch needs single-token
    pronouns; one variant and four checkpoints keep it small)."""
    repo = tmp_path_factory.mktemp("repo")
    config = write_yaml(repo / "demo.yaml", DEMO_YAML)
    result = run_cli("run", config, "--preset", "tiny", "--root", repo / "runs")
    assert result.returncode == 0, result.stderr
    (repo / "notebooks").mkdir()
    return repo
