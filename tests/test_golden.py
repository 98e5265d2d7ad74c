"""Golden outputs: labels and tables of ``run()``, frozen before the code is restructured.

Each case runs both methods (presets) over 3D, 4D and 2D stacks in several chunkings, whole
planes and planes split into y/x blocks, and compares labels exactly and tables to rounding
with the files in ``tests/golden/``. A change of results is then a decision, never an accident
of refactoring: regenerate with ``BIGSEG_WRITE_GOLDEN=1 pytest tests/test_golden.py`` and say
why in the commit.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from bigseg import Params, as_stack, run
from bigseg.synth import make_truth, render

from .conftest import synthetic

GOLDEN = Path(__file__).parent / "golden"
WRITE = os.environ.get("BIGSEG_WRITE_GOLDEN") == "1"

# Small sizes so that small stacks split into several blocks wider than the halo.
SMALL = {"smooth_radius": 1.42, "min_radius": 2.84, "max_radius": 9.0}


def _3d():
    return synthetic(shape=(10, 128, 120), nuclei=14, seed=21, radius_um=(3.0, 5.0))[0]


def _4d():
    return synthetic(shape=(6, 72, 96), nuclei=7, t=3, seed=22, radius_um=(3.0, 5.0))[0]


def _2d():
    """A (t, y, x) time-lapse of touching nuclei on a 16-bit camera offset."""
    scale = (1.0, 0.5, 0.5)
    truth = make_truth(
        (1, 160, 160), 30, scale=scale, t=2, seed=23, radius_um=(4.0, 6.5), touching=0.3,
        brightness=(300.0, 1500.0),
    )  # fmt: skip
    data = render(
        truth, (0, 0, 0, 0), (2, 1, 160, 160), scale=scale, background=50, offset=33000,
        max_value=65535, noise_seed=23,
    )  # fmt: skip
    return as_stack(data[:, 0], dims=("t", "y", "x"), scale=(0.5, 0.5))


STACKS = {"3d": _3d, "4d": _4d, "2d": _2d}

# (stack, preset, chunks as a dims -> size mapping)
CASES = [
    ("3d", "default", {"z": 10}),
    ("3d", "default", {"z": 3}),
    ("3d", "default", {"z": 4, "y": 64, "x": 60}),
    ("3d", "seed", {"z": 10}),
    ("3d", "seed", {"z": 1}),
    ("3d", "seed", {"z": 5, "y": 64, "x": 40}),
    ("4d", "default", {"t": 1}),
    ("4d", "default", {"t": 2, "z": 3, "y": 36}),
    ("4d", "seed", {"t": 3, "z": 2}),
    ("4d", "seed", {"t": 1, "x": 48}),
    ("2d", "default", {"t": 1}),
    ("2d", "default", {"t": 2, "y": 80, "x": 80}),
    ("2d", "seed", {"t": 2}),
    ("2d", "seed", {"t": 1, "y": 80}),
]


def _name(stack: str, preset: str, chunks: dict) -> str:
    return f"{stack}-{preset}-" + "-".join(f"{k}{v}" for k, v in chunks.items())


@pytest.fixture(scope="module")
def stacks():
    return {name: make() for name, make in STACKS.items()}


# Dense clusters not proven exact are warned about (tested in test_stitch.py); the results
# are recorded all the same.
@pytest.mark.filterwarnings("ignore:.*not proven identical to whole-plane segmentation:UserWarning")
@pytest.mark.parametrize(("stack", "preset", "chunks"), CASES, ids=[_name(*c) for c in CASES])
def test_outputs_match_the_golden_files(stacks, stack, preset, chunks, tmp_path):
    image = stacks[stack].chunk(chunks)
    params = Params(preset=preset, **SMALL)
    result = run(image, tmp_path / "out", params=params)
    labels = zarr.open_array(tmp_path / "out" / "labels.zarr" / "0", mode="r")[...]
    nuclei = pd.read_parquet(tmp_path / "out" / "nuclei.parquet")
    detections = pd.read_parquet(tmp_path / "out" / "detections.parquet")
    assert len(result.nuclei) > 0
    if "y" in chunks or "x" in chunks:  # planes really split and stitched, not merged back
        assert "stitching" in result.record
    base = GOLDEN / _name(stack, preset, chunks)
    if WRITE:
        GOLDEN.mkdir(exist_ok=True)
        np.savez_compressed(f"{base}.labels.npz", labels=labels)
        nuclei.to_parquet(f"{base}.nuclei.parquet", index=False)
        detections.to_parquet(f"{base}.detections.parquet", index=False)
    with np.load(f"{base}.labels.npz") as golden:
        np.testing.assert_array_equal(labels, golden["labels"])
    for name, table in (("nuclei", nuclei), ("detections", detections)):
        pd.testing.assert_frame_equal(
            table, pd.read_parquet(f"{base}.{name}.parquet"), check_exact=False, rtol=1e-9
        )


def test_every_golden_file_has_a_case():
    """No stale golden files: each belongs to one of the cases above."""
    names = {_name(*case) for case in CASES}
    found = {p.name.split(".")[0] for p in GOLDEN.glob("*.npz")}
    assert found == names
