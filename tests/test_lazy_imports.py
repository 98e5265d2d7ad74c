"""``import bigseg`` and the command's ``--help`` / ``--version`` load no heavy library."""

import ast
import subprocess
import sys

import pytest

HEAVY = (
    "dask",
    "distributed",
    "matplotlib",
    "numba",
    "pandas",
    "scipy",
    "skimage",
    "tifffile",
    "xarray",
    "zarr",
)


def _loaded(code: str) -> list[str]:
    report = f"\nprint(sorted({{m for m in sys.modules if m.split('.')[0] in {HEAVY!r}}}))"
    proc = subprocess.run(
        [sys.executable, "-c", "import sys\n" + code + report],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1])


def test_import_bigseg_loads_no_heavy_library():
    assert _loaded("import bigseg") == []


def test_import_bigseg_cli_loads_no_heavy_library():
    assert _loaded("import bigseg.cli") == []


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["segment", "--help"]])
def test_the_command_with_help_or_version_loads_no_heavy_library(argv):
    code = (
        "from bigseg.cli import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit as stop:\n"
        "        assert stop.code in (0, None), stop.code\n"
    )
    assert _loaded(code) == []


def test_the_kernels_load_numba_only_when_a_compiled_loop_runs():
    code = (
        "import numpy as np\n"
        "from bigseg.kernels import filters, lut, regions\n"
        "import bigseg.methods.seed\n"
        "filters.smoothed_above(np.arange(64, dtype=np.uint16).reshape(8, 8), 30, 2)\n"
        "regions.region_sums(np.ones((4, 4), np.int32), np.ones((4, 4), np.uint16))\n"
        "from bigseg.kernels import watershed\n"
        "watershed.filter_sizes(np.ones((4, 4), np.int32), min_radius=0.5, max_radius=9.0)\n"
        "watershed.filled_plane(np.ones((4, 4), bool), max_radius=2.0)\n"
        "assert 'numba' not in sys.modules\n"
        "filters.box_extreme(np.zeros((3, 3), np.float32), (3, 3), maximum=True)\n"
        "assert 'numba' in sys.modules\n"
    )
    assert "numba" in _loaded(code)  # and, before box_extreme ran, it was not (asserted there)


def test_building_the_default_floor_loads_no_numba():
    # The graph is built on the client: numba's kernels load on the workers, as they run
    # (it took 0.35 s of the client's, before the first task, to smooth the gain's impulse).
    code = (
        "import numpy as np, dask.array as da, xarray as xr\n"
        "from bigseg import Params\n"
        "from bigseg.methods import default as dm\n"
        "data = da.zeros((1, 6, 64, 64), np.uint16, chunks=(1, 3, 64, 64))\n"
        "stack = xr.DataArray(data, dims=('t', 'z', 'y', 'x'),\n"
        "                     attrs={'scale': {'z': 1.5, 'y': 0.71, 'x': 0.71}})\n"
        "dm.floor(stack, Params())\n"
        "assert 'numba' not in sys.modules\n"
    )
    assert "numba" not in _loaded(code)
