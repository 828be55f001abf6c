"""The stage runner on a graph of small stages: keys, skips, content-addressed inputs, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pythia_suite.suite.runner import Stage, run_stages


def _stages(
    tmp: Path, config: dict[str, object], calls: list[str], fail: str | None = None
) -> list[Stage]:
    """a -> b -> c, each writing a file from its config and its input's content."""

    def make(slug: str, dep: str | None) -> Stage:
        out = tmp / f"{slug}.txt"

        def run(resume: bool, inputs: dict[str, dict[str, str]]) -> None:
            assert list(inputs) == ([dep] if dep else [])
            calls.append(slug + (" (resume)" if resume else ""))
            if slug == fail:
                out.write_text("half")
                raise KeyboardInterrupt  # a kill, as far as the runner can tell
            source = (tmp / f"{dep}.txt").read_text() if dep else ""
            assert not dep or inputs[dep] == {"text": source}  # this invocation's digest
            out.write_text(f"{source}|{config[slug] if slug != 'a' else str(config['a'])[:1]}")

        return Stage(
            slug=slug,
            title=slug,
            kind="x",
            config=config[slug],
            deps=(dep,) if dep else (),
            outputs=(out,),
            run=run,
            digest=lambda: {"text": out.read_text()},
            resumable=slug == "b",
        )

    return [make("a", None), make("b", "a"), make("c", "b")]


def test_runner_skips_reruns_and_resumes(tmp_path: Path) -> None:
    state = tmp_path / ".state"
    calls: list[str] = []
    config = {"a": "x1", "b": 1, "c": 1}
    assert run_stages(_stages(tmp_path, config, calls), state).ran() == ["a", "b", "c"]
    assert run_stages(_stages(tmp_path, config, calls), state).ran() == []
    # a's config changes but its output does not: only a runs again
    config["a"] = "x2"
    assert run_stages(_stages(tmp_path, config, calls), state).ran() == ["a"]
    # b's config changes: b and what reads b
    config["b"] = 2
    result = run_stages(_stages(tmp_path, config, calls), state)
    assert result.ran() == ["b", "c"] and result.digests()["c"] == {"text": "|x|2|1"}
    # a missing output makes its stage run again; its digest is unchanged, so c is skipped
    (tmp_path / "b.txt").unlink()
    assert run_stages(_stages(tmp_path, config, calls), state).ran() == ["b"]
    # interrupted: a resumable stage resumes under the same key, restarts under another
    config["b"] = 3
    with pytest.raises(KeyboardInterrupt):
        run_stages(_stages(tmp_path, config, calls, fail="b"), state)
    assert (state / "b.started").is_file() and not (state / "b.json").exists()
    calls.clear()
    assert run_stages(_stages(tmp_path, config, calls), state).ran() == ["b", "c"]
    assert calls == ["b (resume)", "c"]
    config["b"] = 4
    with pytest.raises(KeyboardInterrupt):
        run_stages(_stages(tmp_path, config, calls, fail="b"), state)
    config["b"] = 5
    calls.clear()
    run_stages(_stages(tmp_path, config, calls), state)
    assert calls == ["b", "c"]  # a different key: started over, outputs removed first
    assert json.loads((state / "c.json").read_text())["digest"] == {"text": "|x|5|1"}


def test_an_always_stage_runs_every_time_and_hands_its_digest_on(tmp_path: Path) -> None:
    """A check (verification) is never skipped; what reads it gets this invocation's digest."""
    found: list[dict[str, dict[str, str]]] = []
    state = tmp_path / ".state"
    value = {"v": "ok"}

    def stages() -> list[Stage]:
        return [
            Stage(
                slug="check",
                title="check",
                kind="verify",
                config={},
                deps=(),
                outputs=(),
                always=True,
                run=lambda resume, inputs: None,
                digest=lambda: dict(value),
            ),
            Stage(
                slug="page",
                title="page",
                kind="report",
                config={},
                deps=("check",),
                outputs=(tmp_path / "page",),
                run=lambda resume, inputs: (found.append(inputs), (tmp_path / "page").touch()),
                digest=dict,
            ),
        ]

    first = run_stages(stages(), state)
    assert (first.ran(), first.checked(), found) == (["page"], ["check"], [{"check": value}])
    again = run_stages(stages(), state)
    assert (again.ran(), again.checked(), len(found)) == ([], ["check"], 1)
    value["v"] = "changed"  # the check finds something else: what reads it runs again
    third = run_stages(stages(), state)
    assert (third.ran(), found[-1]) == (["page"], {"check": {"v": "changed"}})


def test_a_protected_output_is_replaced_only_when_asked(tmp_path: Path) -> None:
    """A completed protected stage (training) whose key changes: named by `would_replace`,
    refused by `run_stages` before anything is removed, replaced with `replace=True`."""
    from pythia_suite.suite.runner import would_replace
    from suite_core import ConfigError

    state, out = tmp_path / ".state", tmp_path / "run"

    def stages(seed: int) -> list[Stage]:
        def run(resume: bool, inputs: dict[str, dict[str, str]]) -> None:
            out.mkdir()
            (out / "weights").write_text(str(seed))

        return [
            Stage(
                slug="train",
                title="train",
                kind="train",
                config={"seed": seed},
                deps=(),
                outputs=(out,),
                run=run,
                digest=lambda: {"w": (out / "weights").read_text()},
                resumable=True,
                protected=True,
            )
        ]

    run_stages(stages(1), state)
    assert would_replace(stages(1), state) == []
    assert [s.slug for s in would_replace(stages(2), state)] == ["train"]
    with pytest.raises(ConfigError, match="pass --replace"):
        run_stages(stages(2), state)
    assert (out / "weights").read_text() == "1"  # untouched
    assert run_stages(stages(2), state, replace=True).ran() == ["train"]
    assert (out / "weights").read_text() == "2"
