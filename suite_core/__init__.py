"""The bottom of the house, the nouns every package shares; here: the one exception family,
errors a user can act on (bad file, line, field, flag).

```
SuiteError(ValueError)          base; the CLI prints `pythia-suite: error: MSG` and exits 2
├── DataError                   a corpus, tokenizer, prepared data directory or replay request
├── CheckpointError             a checkpoint folder, its hashes, the catalog, a schedule rule
└── ConfigError                 an argument or config field out of range or inconsistent
```

Every class subclasses `ValueError`, so code that catches `ValueError` keeps working, and the
message starts with the file (and `:line` or field) it is about. Missing or existing outputs
stay `FileNotFoundError` / `FileExistsError` (`OSError`), which the CLI maps to exit 2 too.

Placement: a leaf package of its own, importing nothing but the standard library. The two
libraries (`dataloader_replay`, `checkpoints_index`) must import neither each other nor
`pythia_suite`, yet both raise these errors and the CLI catches one base: the only home both
may import is a package below them all. `pythia_suite` and `analysis` import it the same way.
"""

from __future__ import annotations

__all__ = ["USER_ERRORS", "CheckpointError", "ConfigError", "DataError", "SuiteError"]


class SuiteError(ValueError):
    """Base of the suite's user errors (a ValueError: existing `except ValueError` still works)."""


class DataError(SuiteError):
    """Bad corpus, tokenizer, prepared data directory, or a request outside the data."""


class CheckpointError(SuiteError):
    """Bad checkpoint folder, hash, catalog or checkpoint schedule."""


class ConfigError(SuiteError):
    """An argument or config field that is out of range or inconsistent with another."""


# What the CLI turns into one line on stderr and exit status 2: the suite's own errors, and a
# file missing, existing or unreadable. Anything else (a third-party ValueError included) is
# an internal error: exit status 1, the traceback in a log.
USER_ERRORS: tuple[type[BaseException], ...] = (
    SuiteError,
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)
