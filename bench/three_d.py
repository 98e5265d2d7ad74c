"""Would a 3D watershed beat the default method's planes linked in z?  (issue 14, ``method="3d"``)

Run from the repository root:  ``.venv/bin/python bench/three_d.py [--seeds 0-9] [--radii small]``

A whole-array prototype, in memory, on the 3D cells of the synthetic matrix
(:mod:`bench/grid.py <grid>`): the default method's foreground (its smoothing, background
map, floor and local half-maximum cut: :func:`bigseg.methods.default.split_signal`), each
plane's holes filled, then one 3D watershed with markers at the h-maxima of the anisotropic
distance to the background (µm) weighted by the square root of the voxel's share of its
local peak, so that touching nuclei of unequal brightness get a marker each.  Its 3D labels
are measured per plane, kept or dropped by the default's own size rule
(:func:`bigseg.cluster.drop_small`) and summarised by :func:`bigseg.nuclei_table`, so
that only the splitting differs from the default's.  Printed: F1 per cell for the default
and each ``h`` (µm), and the mean per kind of cell.

This is a measurement, not a method: a 3D method over work blocks would need halos in z
and stitching of 3D labels, built only if these numbers called for it.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import grid  # noqa: E402

import bigseg  # noqa: E402
from bigseg.cluster import drop_small  # noqa: E402
from bigseg.measure import measure  # noqa: E402
from bigseg.methods.default import split_signal  # noqa: E402
from bigseg.stack import as_stack  # noqa: E402

#: Marker depths tried, µm of weighted distance.
HEIGHTS = (0.3, 0.5)


def watershed_3d(signal: np.ndarray, scale, min_radius: float, h: float) -> np.ndarray:
    """3D labels of one time point's foreground ``signal`` (0 outside nuclei)."""
    mask = np.stack([ndi.binary_fill_holes(plane) for plane in signal > 0])
    distance = ndi.distance_transform_edt(mask, sampling=scale)
    peak = ndi.maximum_filter(signal, size=[2 * round(min_radius / s) + 1 for s in scale])
    share = np.clip(signal / np.maximum(peak, 1e-9), 0, 1)
    weighted = distance * np.sqrt(share)
    markers, _ = ndi.label(h_maxima(weighted, h))
    return watershed(-weighted, markers, mask=mask).astype(np.int32)


def nuclei_3d(image: np.ndarray, scale, h: float) -> pd.DataFrame:
    """The prototype's nuclei table of a ``(t, z, y, x)`` array (see the module's text)."""
    params = bigseg.Params()
    stack = as_stack(image, scale=scale, dims=("t", "z", "y", "x")).chunk({"t": 1, "z": 8})
    floors = bigseg.global_threshold(stack, params=params).compute()
    thresholds = da.from_array(np.atleast_1d(floors.values).astype(float))
    signal = split_signal(stack.data, thresholds, params, scale)[0].compute()
    labels = np.stack([watershed_3d(s, scale, params.min_radius, h) for s in signal])
    det = measure(stack.copy(data=da.from_array(labels, chunks=(1, 8, -1, -1))), stack).compute()
    linked = drop_small(
        det.assign(nucleus=det["label"].astype(np.int64)),
        scale=scale,
        min_radius=params.min_radius,
    )
    return bigseg.nuclei_table(linked, scale=scale)


def compare(seeds, radii) -> pd.DataFrame:
    """F1 of the default and of the prototype at each height, per 3D cell."""
    rows = []
    for size, offset, touching, seed in itertools.product(
        radii, grid.OFFSETS, grid.TOUCHING, seeds
    ):
        image, truth, scale = grid.case("3d", size, offset, touching, seed)
        row = {"radii": size, "offset": offset, "touching": touching, "seed": seed}
        default = grid.default_nuclei(image, scale)
        row["default"] = grid.scored(default, truth, image.shape[1:], scale)[0].f1
        for h in HEIGHTS:
            found = nuclei_3d(image, scale, h)
            row[f"3d h={h}"] = grid.scored(found, truth, image.shape[1:], scale)[0].f1
        rows.append(row)
        print(pd.DataFrame([row]).to_string(index=False, header=len(rows) == 1), flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--radii", default=",".join(grid.RADII),
        help=f"the matrix's radius ranges, comma-separated (default {','.join(grid.RADII)})",
    )  # fmt: skip
    grid.add_seeds(parser, (0, 1))
    args = parser.parse_args()
    table = compare(grid.seeds_of(args.seeds, (0, 1)), tuple(args.radii.split(",")))
    scores = [c for c in table if c == "default" or c.startswith("3d")]
    print("\nmean F1 per cell kind:")
    print(
        table.groupby(["radii", "offset", "touching"])[scores].mean().to_string(float_format="%.3f")
    )
    print("all 3D cells:", table[scores].mean().round(3).to_dict())
    print("cells under 0.95:", (table[scores] < 0.95).sum().to_dict())


if __name__ == "__main__":
    main()
