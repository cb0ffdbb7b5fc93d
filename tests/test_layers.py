"""The layers hold: the import-linter contract in pyproject.toml, no import circle (type-only imports counted), and a
config loader that imports no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_import_layers_in_pyproject_hold_with_no_exceptions():
    assert "ignore_imports" not in (ROOT / "pyproject.toml").read_text()  # no exception listed
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
         "sys.exit(lint_imports(no_cache=True, no_logo=True))"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_the_config_loader_imports_neither_torch_nor_transformers():
    code = ("import sys, harness.config, harness.registry; "
            "print(sorted(m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def _module_graph(packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Each module of ``packages`` -> the project modules it imports anywhere: at the top, inside functions, and
    under ``if TYPE_CHECKING:`` (which the import-linter contract counts too)."""
    files = {}
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def module_of(name: str) -> str | None:  # the project module a dotted name is, or lies in
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(module_of(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from .x import y
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets.update(module_of(f"{base}.{alias.name}") if f"{base}.{alias.name}" in files
                               else module_of(base) for alias in node.names)
        graph[module] = targets - {None, module}
    return graph


def _a_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (``a -> b -> a``), or None: a depth-first search for a back edge."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(graph[module]):
            cycle = visit(target)
            if cycle:
                return cycle
        path.pop()
        done.add(module)
        return None

    return next((cycle for module in sorted(graph) if (cycle := visit(module))), None)


def test_no_module_imports_itself_through_others_even_counting_type_only_imports():
    graph = _module_graph(("harness", "methods", "benchmarks"))
    assert {"harness.registry", "methods.base", "harness.trainers.dpo"} <= set(graph)  # the walk found the packages
    assert "harness.config" in graph["methods.base"]  # a TYPE_CHECKING import counts
    assert _a_cycle(graph) is None, " -> ".join(_a_cycle(graph))


def test_the_cycle_finder_finds_a_type_only_circle():
    assert _a_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _a_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
