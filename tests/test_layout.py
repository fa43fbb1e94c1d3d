"""The layout is a contract: subpackages that show the pipeline, few top-level modules,
no import cycles (function-level imports included), layers checked by import-linter."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ("spec", "engine", "results", "planning", "report", "cli")


def _cycle(graph, modules) -> list[str] | None:
    """One import cycle among `modules` (depth-first search), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m], _ = 1, stack.append(m)
        for n in sorted(graph.find_modules_directly_imported_by(m)):
            if n not in modules:
                continue
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m], _ = 2, stack.pop()
        return None

    for m in sorted(modules):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycle_anywhere():
    graph = grimp.build_graph("archer_sweep", "trainable", exclude_type_checking_imports=True)
    cycle = _cycle(graph, graph.modules)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_finder_finds_a_planted_cycle():
    graph = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a")):
        graph.add_import(importer=a, imported=b)
    assert _cycle(graph, graph.modules) == ["p.a", "p.b", "p.c", "p.a"]


def test_the_package_shows_the_pipeline():
    pkg = ROOT / "archer_sweep"
    subpackages = {p.name for p in pkg.iterdir() if (p / "__init__.py").exists()}
    top_modules = sorted(p.name for p in pkg.glob("*.py"))
    assert set(PIPELINE) <= subpackages
    assert len(top_modules) <= 6, top_modules


@pytest.mark.skipif(
    shutil.which("lint-imports", path=str(Path(sys.executable).parent)) is None,
    reason="import-linter is not installed (pip install -e '.[test]')",
)
def test_layer_contracts_hold():
    exe = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]


def test_the_suites_slowest_first_order_names_files_that_exist_and_sorts_them_first():
    from tests.conftest import SLOWEST_FIRST, file_rank

    missing = [p for p in SLOWEST_FIRST if not (ROOT / p).is_file()]
    assert not missing, f"tests/conftest.py SLOWEST_FIRST names files that are gone: {missing}"
    assert len(set(SLOWEST_FIRST)) == len(SLOWEST_FIRST)
    assert file_rank(SLOWEST_FIRST[0]) == 0 < file_rank(SLOWEST_FIRST[1])
    assert file_rank("tests/test_spec.py") == len(SLOWEST_FIRST)


def test_the_readme_gives_the_exact_test_commands_of_ci():
    """README's test command (the block after "Tests (the exact command CI runs") runs the same
    pytest lines as `.ci/run`, in the same order."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("Tests (the exact command CI runs", 1)[1].split("```", 2)[1]
    readme_lines = [c.strip() for c in block.replace("\n", " ").split("&&") if "-m pytest" in c]
    ci_lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines() if "-m pytest" in line]
    assert readme_lines and readme_lines == ci_lines
