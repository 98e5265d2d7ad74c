"""Would fragments bright against their time point's nuclei be nuclei?  (issue 14, measured)

Run from the repository root:  ``.venv/bin/python bench/fragments.py [--seeds 0-9] [--real]``

The largest class of misses left in the 3D cells of the matrix (``bench/grid.py --misses``)
is a dim nucleus touching a brighter one: the neighbour's local peak lifts the threshold
over the dim nucleus's facing side, and the piece left is dropped by the fragment filter
(:func:`bigseg.cluster.drop_small`) as smaller than the smallest nucleus.  Size alone
cannot take those pieces back: the real stacks hold dim objects of the same size that are
not nuclei.  This prototype, in memory, keeps a dropped piece of a stack when the peak of
the default method's signal above the background in its voxels is at least ``X`` times the
median peak of the time point's kept nuclei and its volume at least a sphere of ``V``
times ``min_radius`` (2D images unchanged).  It prints F1 per cell of the 3D matrix for the
default and for each ``(X, V)``, and (``--real``) the real stacks' counts and scores.

A measurement, not a method: the pipeline would need each detection's signal peak, a
column the tables do not have (the pre-pass's output measured beside the stack, stitched
across split planes), before its fragment filter could use it.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _datasets  # noqa: E402
import grid  # noqa: E402

import bigseg  # noqa: E402
from bigseg.methods.default import signal_of  # noqa: E402
from bigseg.stack import as_4d  # noqa: E402

#: ``(X, V)``: peak against the median kept nucleus's, and the smallest volume in spheres.
RULES = ((0.4, 0.6), (0.5, 0.7))


def nuclei(image: np.ndarray, scale, rule: tuple[float, float] | None) -> pd.DataFrame:
    """The default method's nuclei of a ``(t, z, y, x)`` array, with bright pieces kept."""
    params = bigseg.Params()
    planar = image.shape[1] == 1
    stack, _, labels, det = grid.detections(image, scale, params)
    before, kept = grid._linked_before_and_after(det, params, scale, planar)
    if planar or rule is None:
        return bigseg.nuclei_table(kept, scale=scale, planar=planar)
    ratio, fraction = rule
    regions = np.asarray(labels.compute()).reshape(image.shape)
    signal = np.asarray(signal_of(as_4d(stack).data, params, scale).compute())
    peaks = np.empty(len(before))
    for (t, z), part in before.groupby(["t", "z"]):
        ids = part["label"].to_numpy()
        got = ndi.maximum(signal[int(t), int(z)], regions[int(t), int(z)], ids)
        peaks[part.index.to_numpy()] = np.atleast_1d(got)
    by_piece = before.assign(peak=peaks).groupby("before")
    peak, volume = by_piece["peak"].max(), by_piece["area_um2"].sum() * float(scale[0])
    keep = set(kept["before"])
    median = float(np.median(peak[list(keep)])) if keep else 0.0
    sphere = 4 / 3 * np.pi * (fraction * float(params.min_radius)) ** 3
    taken = [i for i in peak.index if i not in keep and peak[i] >= ratio * median]
    taken = [i for i in taken if volume[i] >= sphere]
    extra = before[before["before"].isin(taken)].assign(nucleus=lambda d: d["before"] + 10**9)
    return bigseg.nuclei_table(pd.concat([kept, extra], ignore_index=True), scale=scale)


def matrix(seeds) -> pd.DataFrame:
    """F1 per 3D cell of the matrix: the default, and each rule of :data:`RULES`."""
    rows = []
    cells = itertools.product(grid.RADII, grid.OFFSETS, grid.TOUCHING, seeds)
    for size, offset, touching, seed in cells:
        image, truth, scale = grid.case("3d", size, offset, touching, seed)
        row = {"radii": size, "offset": offset, "touching": touching, "seed": seed}
        for rule in (None, *RULES):
            name = "default" if rule is None else f"X={rule[0]} V={rule[1]}"
            row[name] = grid.scored(nuclei(image, scale, rule), truth)[0].f1
        rows.append(row)
        print(pd.DataFrame([row]).to_string(index=False, header=len(rows) == 1), flush=True)
    return pd.DataFrame(rows)


def real() -> None:
    """The real stacks' counts (and F1 where they have a truth table) for each rule."""
    for name in ("qcanet_8cell", "qcanet_16cell", "stardist_synthetic", "seed_stack"):
        image, scale, truth = getattr(_datasets, name)()
        image = np.asarray(image)
        image = image[None] if image.ndim == 3 else image
        for rule in (None, *RULES):
            found = nuclei(image, scale, rule)
            text = f"{name:20s} {str(rule):12s} {len(found):3d} nuclei"
            if isinstance(truth, pd.DataFrame):
                s = bigseg.score(found, truth)
                text += f", P {s.precision:.3f} R {s.recall:.3f} F1 {s.f1:.3f}"
            print(text, flush=True)


if __name__ == "__main__":
    if "--real" in sys.argv:
        real()
    else:
        table = matrix(grid._seeds((0, 1)))
        scores = [c for c in table if c == "default" or c.startswith("X=")]
        print("\nmean F1 per cell kind:")
        by = table.groupby(["radii", "offset", "touching"])[scores].mean()
        print(by.to_string(float_format="%.3f"))
        print("all 3D cells:", table[scores].mean().round(4).to_dict())
        print("cells under 0.95:", (table[scores] < 0.95).sum().to_dict())
