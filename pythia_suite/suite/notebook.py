"""What the notebooks open by default: the suite `make demo` writes (`runs/default`).

Jupyter starts a notebook's kernel in the notebook's folder (`notebooks/`), a script or a
console in the repository root; `resolve` finds a relative path from either. `DemoSuite` names
the runs of a suite directory (the largest standard run, the intervention branch and its
parent, the corpus's truth.json), so the notebooks' defaults need no run name of one preset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from suite_core import ConfigError
from suite_core.records import RunJson

DEFAULT_SUITE = "runs/default"  # `make demo` = `pythia-suite run --preset default`
NOTEBOOKS = "notebooks"


def resolve(path: str | Path) -> Path:
    """`path` itself when absolute or present from here; from `notebooks/`, the same path
    relative to the repository root (its parent); else `path` unchanged (errors name it)."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    here = Path.cwd()
    if here.name == NOTEBOOKS and (here.parent / p).exists():
        return here.parent / p
    return p


@dataclass(frozen=True, kw_only=True)
class DemoSuite:
    """A suite directory laid out by `pythia-suite run` (runs/, corpus/, studies/, ...)."""

    root: Path

    @classmethod
    def open(cls, path: str | Path = DEFAULT_SUITE) -> DemoSuite:
        root = resolve(path)
        if not (root / "runs").is_dir():
            raise FileNotFoundError(
                f"{root}: no suite here (no runs/ folder; `make demo` writes {DEFAULT_SUITE}, "
                "or set the notebook's SUITE parameter)"
            )
        return cls(root=root.absolute())

    def _configs(self) -> dict[str, RunJson]:
        return {
            p.parent.name: RunJson.read(p.parent) for p in sorted(self.root.glob("runs/*/run.json"))
        }

    def run(self, variant: str = "standard") -> Path:
        """The run of the largest model on `variant` (not a branch)."""
        runs = [
            (c.model.size if c.model else 0, name)
            for name, c in self._configs().items()
            if c.branch is None and name.endswith(f"-{variant}")
        ]
        if not runs:
            raise ConfigError(f"{self.root / 'runs'}: no {variant} run in this suite")
        return self.root / "runs" / max(runs)[1]

    def branch(self) -> tuple[Path, Path]:
        """(parent, branch) of the suite's intervention branch."""
        for name, c in self._configs().items():
            if c.branch is not None:
                return self.root / "runs" / c.branch.parent.name, self.root / "runs" / name
        raise ConfigError(f"{self.root / 'runs'}: no intervention branch in this suite")

    @property
    def truth(self) -> Path | None:
        """The synthetic corpus's truth.json (None for a user's corpus without one)."""
        path = self.root / "corpus" / "truth.json"
        return path if path.is_file() else None

    def out(self, name: str) -> Path:
        """Where a notebook writes: `<suite>/notebooks/<name>`."""
        return self.root / NOTEBOOKS / name
