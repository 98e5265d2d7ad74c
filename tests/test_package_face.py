"""The package face: public names listed once, in ``bigseg/__init__.pyi``."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import bigseg

STUB = Path(bigseg.__file__).with_suffix(".pyi")


def _stub():
    tree = ast.parse(STUB.read_text())
    imports = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                imports[alias.name] = node.module
        if isinstance(node, ast.Assign) and node.targets[0].id == "__all__":
            names = ast.literal_eval(node.value)
    return imports, names


def test_stub_all_is_the_package_all_and_every_name_is_imported_there():
    imports, names = _stub()
    assert names == sorted(names)
    assert names == bigseg.__all__
    assert set(names) == set(imports)


def test_every_stub_line_names_the_module_that_holds_the_object():
    imports, _ = _stub()
    for name, module in imports.items():
        held = getattr(importlib.import_module(f"bigseg.{module}"), name)
        assert getattr(bigseg, name) is held, (name, module)


def test_import_bigseg_imports_no_scientific_library():
    check = "import sys, bigseg; print(sorted({'numpy', 'dask', 'xarray'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert loaded.stdout.strip() == "[]", loaded.stderr
