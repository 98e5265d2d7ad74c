"""Shared fixtures: real test stacks (when present), synthetic stacks, laziness guard."""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

import dask
import numpy as np
import pytest

from bigseg.stack import as_stack
from bigseg.synth import make_truth, render

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: Real images fetched from the package registry by ``make real-2d`` (bench/fetch_real.py).
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "real"

#: What a run prints about dask's dashboard: its link, or, without bokeh, what it needs.
DASHBOARD = (
    "dashboard http://127.0.0.1:"
    if importlib.util.find_spec("bokeh")
    else "dask's dashboard needs bokeh (pip install 'bokeh>=3.1')"
)


def data_file(relative: str) -> Path:
    """Path of a real stack in ../shared/data, or skip the test with the reason."""
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"real test data {relative} not found under {DATA} (see shared/data/README.md)")
    return path


def cached_file(relative: str) -> Path:
    """Path of a real image fetched by ``make real-2d``, or skip the test with the reason."""
    path = CACHE / relative
    if not path.exists():
        pytest.skip(f"real test image {relative} not found under {CACHE} (`make real-2d`)")
    return path


class CountingScheduler:
    """A dask scheduler that fails the test when anything is computed (xarray's habit)."""

    def __init__(self, max_computes: int = 0):
        self.max_computes = max_computes
        self.total = 0

    def __call__(self, dsk, keys, **kwargs):
        self.total += 1
        if self.total > self.max_computes:
            raise RuntimeError(f"Too many computes: {self.total} > {self.max_computes}")
        return dask.get(dsk, keys, **kwargs)


@contextlib.contextmanager
def raise_if_dask_computes(max_computes: int = 0):
    """Fail if the block computes anything with dask."""
    with dask.config.set(scheduler=CountingScheduler(max_computes)):
        yield


SCALE = (1.5, 0.71, 0.71)


def synthetic(shape=(10, 96, 96), nuclei=6, *, t=1, seed=1, scale=SCALE, **options):
    """A small synthetic stack in memory: (stack DataArray, truth DataFrame)."""
    truth = make_truth(shape, nuclei, scale=scale, t=t, seed=seed, **options)
    data = render(truth, (0, 0, 0, 0), (t, *shape), scale=scale, noise_seed=seed)
    if t == 1:
        return as_stack(data[0], scale=scale), truth
    return as_stack(data, scale=scale), truth


@pytest.fixture(scope="session")
def small_stack():
    return synthetic()


@pytest.fixture(scope="session")
def seed_stack():
    import tifffile

    return tifffile.imread(data_file("seed/test_nuclei_stack.tif"))


def assert_same_labels(a: np.ndarray, b: np.ndarray) -> None:
    """Labels are equal up to renumbering (a one-to-one map between ids)."""
    assert a.shape == b.shape
    assert np.array_equal(a == 0, b == 0)
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    assert len(np.unique(pairs[0])) == pairs.shape[1]
    assert len(np.unique(pairs[1])) == pairs.shape[1]
