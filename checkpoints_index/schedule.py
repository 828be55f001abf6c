"""Checkpoint schedules: which optimizer steps get a saved checkpoint.

Pythia saves step 0, the powers of two 1, 2, 4, ..., 512, then every 1000 steps up to 143000:
154 checkpoints. `log_every_steps` is that rule as one pure function whose parameters scale
it down for short runs; `checkpoint_steps` parses the rule strings the CLI accepts:

- ``pythia``          exactly ``log+every:1000``
- ``log+every:K``     step 0, the powers of two below K, then every K up to the last step
- ``steps:0,5,10``    an explicit list

Whatever the rule, steps past the run's last step are dropped and the last step is always
included, so a run always ends on a checkpoint (for Pythia's 143000 this changes nothing).
"""

from __future__ import annotations

from suite_core import CheckpointError

PYTHIA_RULE = "log+every:1000"
PYTHIA_STEPS = 143_000
# More checkpoints than any schedule keeps (Pythia: 154); a rule past it is refused before a
# list of that size is built (`log+every:1` over 10^9 steps would exhaust memory).
MAX_CHECKPOINTS = 100_000
RULE_HELP = "'pythia', 'log+every:K' (K >= 1) or 'steps:A,B,...' (integers >= 0)"


def log_every_steps(last_step: int, every: int) -> list[int]:
    """Step 0, the powers of two below `every`, then multiples of `every`, up to `last_step`.

    `last_step` itself is always included. `log_every_steps(143000, 1000)` is Pythia's
    154-step schedule.
    """
    if every < 1:
        raise CheckpointError(f"every: must be >= 1, got {every}")
    _check_last(last_step)
    steps = {0, last_step}
    power = 1
    while power < every and power <= last_step:
        steps.add(power)
        power *= 2
    steps.update(range(every, last_step + 1, every))
    return sorted(steps)


def listed_steps(listed: list[int], last_step: int) -> list[int]:
    """The listed steps up to `last_step`, sorted and de-duplicated, with `last_step` added."""
    _check_last(last_step)
    bad = [s for s in listed if s < 0]
    if bad:
        raise CheckpointError(f"steps: must be >= 0, got {bad[0]}")
    return sorted({s for s in listed if s <= last_step} | {last_step})


def checkpoint_steps(rule: str, steps: int) -> list[int]:
    """The checkpoint steps of `rule` for a run of `steps` optimizer updates (last step = `steps`).

    Raises `ValueError` naming the rule when it is malformed.
    """
    _check_last(steps)
    kind, sep, arg = rule.strip().partition(":")
    if kind == "pythia" and not sep:
        try:
            return checkpoint_steps(PYTHIA_RULE, steps)
        except CheckpointError as exc:
            named = str(exc).replace(repr(PYTHIA_RULE), f"{rule!r} ({PYTHIA_RULE})", 1)
            raise CheckpointError(named) from None
    if kind == "log+every" and sep:
        every = _parse_int(rule, arg)
        if every < 1:
            raise CheckpointError(f"checkpoint rule {rule!r}: K must be >= 1; expected {RULE_HELP}")
        count = steps // every + min(every, steps + 1).bit_length() + 2  # an upper bound
        if count > MAX_CHECKPOINTS:
            raise CheckpointError(
                f"checkpoint rule {rule!r}: gives about {steps // every:,} checkpoints over "
                f"{steps:,} steps, more than {MAX_CHECKPOINTS:,}; choose a larger K"
            )
        return log_every_steps(steps, every)
    if kind == "steps" and sep:
        listed = [_parse_int(rule, part) for part in arg.split(",")]
        if any(s < 0 for s in listed):
            raise CheckpointError(
                f"checkpoint rule {rule!r}: steps must be >= 0; expected {RULE_HELP}"
            )
        return listed_steps(listed, steps)
    raise CheckpointError(f"checkpoint rule {rule!r}: unknown rule; expected {RULE_HELP}")


def _parse_int(rule: str, text: str) -> int:
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise CheckpointError(
            f"checkpoint rule {rule!r}: {text.strip()!r} is not an integer; expected {RULE_HELP}"
        ) from None


def _check_last(last_step: int) -> None:
    if last_step < 0:
        raise CheckpointError(f"steps: the run's last step must be >= 0, got {last_step}")
