"""The house rules: no import cycles, and NumPy-only kernels.

The layered contract itself (cli > pipeline > stages > methods > chunked > kernels > the data
model) and the kernels' independence from dask, xarray and pandas are checked by import-linter
from ``pyproject.toml`` (``lint-imports``, run by ``make test``); here: no cycles at all, inside
packages too, and kernels that really import without those libraries
(``tests/test_methods.py::test_kernels_import_no_dask_xarray_or_pandas``).
"""

from __future__ import annotations

import sys

import grimp
import pytest


@pytest.fixture(scope="module")
def graph():
    # grimp reads every import statement, function-local ones included.
    return grimp.build_graph("bigseg")


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles(graph):
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    """A graph with a loop is reported (so the test above can fail)."""
    g = grimp.ImportGraph()
    for name in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        g.add_module(name)
    g.add_import(importer="pkg.a", imported="pkg.b")
    g.add_import(importer="pkg.b", imported="pkg.a")
    g.add_import(importer="pkg.c", imported="pkg.a")
    assert _cycles(g) == [["pkg.a", "pkg.b"]]
