"""The names inside a run directory and a prepared data directory, declared once.

```
RUN/                       (RunLayout)
  run.json                 the resolved config (suite_core.records.RunJson)
  metrics.jsonl            one JSON object per optimizer update
  catalog.sqlite           the checkpoint catalog (checkpoints_index.catalog)
  checkpoints/stepN/       one folder per checkpoint (checkpoints_index.layout)
DATA/
  manifest.json            what the directory holds (suite_core.records.Manifest)
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
CATALOG = "catalog.sqlite"
CHECKPOINTS = "checkpoints"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run directory (nothing is read or created here)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def run_json(self) -> Path:
        return self.root / RUN_JSON

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def catalog(self) -> Path:
        return self.root / CATALOG

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    def is_run(self) -> bool:
        """True if the directory holds a run.json (a run of this suite)."""
        return self.run_json.is_file()
