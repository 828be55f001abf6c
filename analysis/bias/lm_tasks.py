"""Any lm-eval task by name (built-in, cached datasets, or the user's YAMLs) across checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from analysis.bias.evaluate import Row, offline
from suite_core import DataError


def task_manager(include_path: Path | None = None, tasks: list[str] | None = None) -> Any:
    """lm-eval's TaskManager over the YAMLs of `include_path` alone when they hold every task
    of `tasks` (indexing lm-eval's own thousands of tasks takes seconds), else over both."""
    from lm_eval.tasks import TaskManager

    if include_path is not None and not Path(include_path).is_dir():
        raise FileNotFoundError(f"{include_path}: no such directory (--include-path)")
    with offline():
        if include_path is not None:
            own = TaskManager(include_path=str(include_path), include_defaults=False)
            if tasks and set(tasks) <= set(own.all_tasks):
                return own
        return TaskManager(include_path=None if include_path is None else str(include_path))


def check_tasks(tasks: list[str], manager: Any) -> None:
    """ValueError naming the first task lm-eval does not know."""
    if not tasks:
        raise DataError("--tasks: no task names given")
    known = set(manager.all_tasks)
    for name in tasks:
        if name not in known:
            raise DataError(
                f"--tasks: unknown lm-eval task {name!r} (see `lm-eval ls tasks`; "
                "your own YAMLs go in --include-path)"
            )


def named_task_scorer(
    tasks: list[str],
    *,
    include_path: Path | None = None,
    limit: int | None = None,
    batch_size: int = 32,
    max_length: int = 2048,
) -> Callable[[Any, Any], list[Row]]:
    """A scorer for `across_checkpoints`: one row per (task, metric) of lm-eval's results."""
    manager = task_manager(include_path, tasks)
    check_tasks(tasks, manager)

    def score(model: Any, tokenizer: Any) -> list[Row]:
        from lm_eval.evaluator import simple_evaluate

        from analysis.bias.lm import lm_for

        lm = lm_for(model, tokenizer, batch_size=batch_size, max_length=max_length)
        out = simple_evaluate(
            model=lm,
            tasks=list(tasks),
            task_manager=manager,
            limit=limit,
            log_samples=False,
            bootstrap_iters=0,
            verbosity="ERROR",
        )
        assert out is not None
        rows: list[Row] = []
        for task, metrics in out["results"].items():
            for key, value in metrics.items():
                metric, _, _filter = key.partition(",")
                if metric == "alias" or "_stderr" in metric or not isinstance(value, int | float):
                    continue
                rows.append(
                    {
                        "benchmark": task,
                        "subset": _filter or "none",
                        "metric": metric,
                        "value": float(value),
                        "n": None,
                    }
                )
        return rows

    return score
