"""Oval pairs cut at their outline's concavities: a prototype, measured (issue 14, twelfth round).

Run from the repository root::

    .venv/bin/python bench/concave.py [--solidity 0.9] [--seeds 0-9] [--kinds] [--grid 2d|3d]

Two touching oval nuclei side by side make one region whose distance map has one peak (at
their contact) and whose smoothed intensity has no dip there; its outline has two notches.
This prototype, in memory, runs after the default method's plane split
(:func:`bigseg.kernels.watershed.split_plane_apart`, as ``segment_signal`` calls it): a
region of at least :data:`MIN_AREA` px whose solidity (its area over its convex hull's,
scikit-image's ``convex_hull_image``) is under ``--solidity`` is cut along the line between
the deepest points of its two largest hull defects (each at least :data:`DEPTH` px deep),
when each of its two largest parts keeps :data:`PART` of it; the cut pixels go to the nearer
part.  ``--kinds`` prints F1 of ``ovals2d`` and ``hela2d`` (seeds), ``--grid`` the cells of
the matrix whose F1 the cut raises or lowers, both against the default in the same run.  A
measurement, not a method: docs/accuracy.md says why it was not built.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage.draw import line
from skimage.morphology import convex_hull_image
from skimage.segmentation import expand_labels

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import grid  # noqa: E402

import bigseg  # noqa: E402
from bigseg.kernels import watershed as kw  # noqa: E402
from bigseg.synth import synth_kind  # noqa: E402

MIN_AREA = 100  # px: the smallest region looked at
DEPTH = 1.5  # px: each concavity at least this deep
PART = 0.25  # each part at least this share of the region

_SPLIT = kw.split_plane_apart


def _cut(mask: np.ndarray, solidity: float) -> np.ndarray | None:
    """The two parts of a region cut between its two deepest concavities (or None)."""
    hull = convex_hull_image(mask)
    area = int(mask.sum())
    if area / hull.sum() >= solidity:
        return None
    defects, n = ndi.label(hull & ~mask, structure=np.ones((3, 3)))
    if n < 2:
        return None
    depth = ndi.distance_transform_edt(np.pad(hull, 1))[1:-1, 1:-1]
    deepest = []
    for k in range(1, n + 1):
        at = np.flatnonzero(defects.ravel() == k)
        i = at[np.argmax(depth.ravel()[at])]
        deepest.append((depth.ravel()[i], np.unravel_index(i, mask.shape)))
    deepest.sort(key=lambda item: -item[0])
    (_, p1), (d2, p2) = deepest[:2]
    if d2 < DEPTH:
        return None
    cut = mask.copy()
    cut[line(*p1, *p2)] = False
    parts, m = ndi.label(cut)
    if m < 2:
        return None
    sizes = np.bincount(parts.ravel())[1:]
    big = np.argsort(sizes)[::-1][:2] + 1
    if sizes[big - 1].min() < PART * area:
        return None
    out = expand_labels(np.where(np.isin(parts, big), parts, 0), 3) * mask
    out = np.where(mask & (out == 0), big[0], out)
    return np.where(out == big[1], 2, np.where(out > 0, 1, 0))


def split_concave(binary: np.ndarray, *, apart: float, solidity: float) -> np.ndarray:
    """``split_plane_apart``, then low-solidity regions cut; renumbered in raster order."""
    labels = _SPLIT(binary, apart=apart)
    out, new = labels.copy(), int(labels.max()) + 1
    for r, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        mask = labels[box] == r
        parts = _cut(mask, solidity) if mask.sum() >= MIN_AREA else None
        if parts is not None:
            out[box][parts == 2] = new
            new += 1
    flat = out.ravel()
    ids, first = np.unique(flat[flat > 0], return_index=True)
    lut = np.zeros(new + 1, labels.dtype)
    lut[ids[np.argsort(first)]] = np.arange(1, ids.size + 1)
    return lut[out]


def _with_cut(solidity: float | None):
    kw.split_plane_apart = (
        _SPLIT
        if solidity is None
        else (lambda b, *, apart: split_concave(b, apart=apart, solidity=solidity))
    )


def kinds(seeds, solidity: float) -> None:
    for kind in ("ovals2d", "hela2d"):
        for label, s in (("default", None), (f"cut under {solidity}", solidity)):
            _with_cut(s)
            rows = []
            for seed in seeds:
                image, truth, scale = synth_kind(kind, seed=seed)
                found = grid.default_nuclei(image, scale)
                rows.append(bigseg.score(found, truth))
            f1 = np.array([r.f1 for r in rows])
            print(
                f"{kind:8s} {label:16s} precision {np.mean([r.precision for r in rows]):.4f} "
                f"recall {np.mean([r.recall for r in rows]):.4f} F1 {f1.mean():.4f} "
                f"(worst {f1.min():.3f})",
                flush=True,
            )
    _with_cut(None)


def matrix(dims: str, seeds, solidity: float) -> None:
    rows = []
    for radii in grid.RADII:
        for offset in grid.OFFSETS:
            for touching in grid.TOUCHING:
                for seed in seeds:
                    image, truth, scale = grid.case(dims, radii, offset, touching, seed)
                    f1 = []
                    for s in (None, solidity):
                        _with_cut(s)
                        f1.append(bigseg.score(grid.default_nuclei(image, scale), truth).f1)
                    rows.append(dict(radii=radii, offset=offset, touching=touching, seed=seed,
                                     default=f1[0], cut=f1[1]))  # fmt: skip
    _with_cut(None)
    d = pd.DataFrame(rows)
    print(
        f"{dims} cells: {len(d)}; the cut higher in {(d.cut > d.default).sum()}, lower in "
        f"{(d.cut < d.default).sum()}; mean F1 {d.default.mean():.4f} -> {d.cut.mean():.4f}; "
        f"under 0.95 {(d.default < 0.95).sum()} -> {(d.cut < 0.95).sum()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solidity", type=float, default=0.9)
    parser.add_argument("--seeds", default="0-9", help="e.g. 0-9 or 10-16")
    parser.add_argument("--kinds", action="store_true", help="ovals2d and hela2d")
    parser.add_argument("--grid", choices=("2d", "3d"), help="the matrix's cells of one kind")
    args = parser.parse_args()
    lo, hi = (int(v) for v in args.seeds.split("-"))
    seeds = range(lo, hi + 1)
    if args.kinds:
        kinds(seeds, args.solidity)
    if args.grid:
        matrix(args.grid, seeds, args.solidity)


if __name__ == "__main__":
    main()
