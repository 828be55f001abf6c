"""`--steps`: one grammar for every `analyze` subcommand (and the studies' `steps` options).

```
all | checkpoints        every checkpoint of the run (the two words are synonyms)
A,B,C                    those steps
A:B                      the checkpoints from step A to step B, both included
0,100:500,1000           items mix; the result is sorted and deduplicated
```
Without a checkpoint list (counting in a bare data directory), `all`/`checkpoints` and ranges
are refused. With `checkpoints_only`, every listed step must be a checkpoint. Whether a step is
inside the data is `TrainData.check_step`'s question, not this module's.
"""

from __future__ import annotations

from collections.abc import Sequence

from suite_core import ConfigError, DataError

WORDS = ("all", "checkpoints")
GRAMMAR = "all | checkpoints | A,B,... | A:B (checkpoints from A to B)"


def parse_steps(
    text: str | None,
    available: Sequence[int] | None = None,
    *,
    checkpoints_only: bool = True,
    flag: str = "--steps",
) -> list[int]:
    """The steps `text` names (None: all checkpoints), sorted and deduplicated."""
    if names_all(text):
        return sorted(set(_needs(available, flag, text or "all")))
    assert text is not None
    steps: set[int] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            raise ConfigError(f"{flag}: empty step in {text!r} ({GRAMMAR})")
        if ":" in item:
            lo, hi = (_int(x, text, flag) for x in item.split(":", 1))
            steps.update(s for s in _needs(available, flag, item) if lo <= s <= hi)
        else:
            steps.add(_int(item, text, flag))
    if not steps:
        raise ConfigError(f"{flag}: {text!r} names no step")
    if checkpoints_only and available is not None:
        missing = sorted(steps - set(available))
        if missing:
            raise DataError(
                f"{flag}: no checkpoint at step {missing[0]} "
                f"(available: {', '.join(map(str, sorted(available)))})"
            )
    return sorted(steps)


def names_all(text: str | None) -> bool:
    """True for `all` / `checkpoints` (or no --steps at all)."""
    return text is None or text.strip() in WORDS


def needs_checkpoints(text: str | None) -> bool:
    """True if `text` can only be resolved against a checkpoint list (a word or a range)."""
    return names_all(text) or ":" in str(text)


def _needs(available: Sequence[int] | None, flag: str, what: str) -> Sequence[int]:
    if available is None:
        raise ConfigError(f"{flag}: {what!r} needs a run with checkpoints")
    return available


def _int(item: str, text: str, flag: str) -> int:
    try:
        value = int(item)
    except ValueError:
        raise ConfigError(f"{flag}: {text!r} is not {GRAMMAR}") from None
    if value < 0:
        raise ConfigError(f"{flag}: steps must be >= 0, got {text!r}")
    return value
