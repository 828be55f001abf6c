"""The house's import graph, built from the source with `ast`: no cycle between modules, and
imports flow one way (DESIGN.md): pythia_suite -> analysis -> {dataloader_replay,
checkpoints_index} -> suite_core; nothing imports the CLI. Imports inside functions and under
`TYPE_CHECKING` count too: a cycle broken only by a deferred import is still a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("suite_core", "dataloader_replay", "checkpoints_index", "analysis", "pythia_suite")
# package -> the first-party packages it may import (besides itself)
ALLOWED = {
    "suite_core": set(),
    "dataloader_replay": {"suite_core"},
    "checkpoints_index": {"suite_core"},
    "analysis": {"dataloader_replay", "checkpoints_index", "suite_core"},
    "pythia_suite": {"analysis", "dataloader_replay", "checkpoints_index", "suite_core"},
}
CLI = "pythia_suite.cli"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """First-party modules `name` imports (a `from P import X` of a submodule X names P.X)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            subs = {f"{base}.{alias.name}" for alias in node.names} & set(known)
            out.update(subs)
            if len(subs) < len(node.names):  # a name from the module itself, not a submodule
                out.add(base)
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_cycle_finder_finds_a_planted_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(edges) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_deferred_imports() -> None:
    edges = graph()
    assert "dataloader_replay.sources" in edges["pythia_suite.cli.data"]  # inside a function
    assert "analysis.bias.tasks" in edges["analysis.bias.evaluate"]  # `from P import module`
    assert "analysis.bias" not in edges["analysis.bias.evaluate"]
    assert "dataloader_replay.replay" not in edges["dataloader_replay.batch_hashes"]


def test_no_import_cycle() -> None:
    found = cycles(graph())
    assert found == [], f"import cycles: {[sorted(c) for c in found]}"


def test_imports_flow_one_way() -> None:
    wrong = []
    for name, targets in graph().items():
        top = name.split(".")[0]
        for target in targets:
            other = target.split(".")[0]
            if other != top and other not in ALLOWED[top]:
                wrong.append(f"{name} imports {target}")
            is_cli = target == CLI or target.startswith(CLI + ".")
            if is_cli and not (name.startswith(CLI) or name == "pythia_suite.__main__"):
                wrong.append(f"{name} imports the CLI ({target})")
    assert wrong == []
