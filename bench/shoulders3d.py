"""Dim nuclei on a bright neighbour's flank in 3D stacks: the 2D rule per plane, measured (issue 14)

Run from the repository root::

    .venv/bin/python bench/shoulders3d.py [--seeds 0-9] [--kinds] [--real] [--dimmer 0.8]

Since the ninth round a 2D image's kernel cuts a region dimmer than a neighbour in its box at
its own peak (:func:`bigseg.methods.default.segment_planar_block`).  This prototype, in
memory on whole arrays, tries the same in the planes of 3D stacks, on top of the default
method's 3D cut:

1. the default method's 3D foreground (half way to the 3D local peak, its base and bright
   ramp), and a wider one at :data:`~bigseg.methods.default.PLANAR_WIDE` of that way;
2. each plane of the wider mask filled and split as the kernel splits planes;
3. where a pixel's own region's largest signal in its in-plane box is below
   :data:`~bigseg.methods.default.PLANAR_DIMMER` (or ``--dimmer``) of the box's, the pixel
   is kept when above the floor and above the 3D cut's level taken at that own peak; every
   pixel of the default's foreground is kept;
4. then the default method's plane kernel, measuring (with the signal peak), linking and
   fragment filter, as in a run.

It prints F1 per case for the default and the prototype and a summary line (``--real``: the
real stacks' counts and F1).  A measurement, not a method: built into a run (issue 14, tenth
round: the pre-pass handed the wider cut's voxels on negated, and a stack kernel decided as
step 3 does) it gave the same F1 in every case at ``--dimmer 0.8``, and was not kept
(docs/accuracy.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _datasets  # noqa: E402
import fragments  # noqa: E402
import grid  # noqa: E402

import bigseg  # noqa: E402
from bigseg.kernels import filters  # noqa: E402
from bigseg.kernels.watershed import filled_plane, split_plane_apart  # noqa: E402
from bigseg.measure import measure  # noqa: E402
from bigseg.methods import default as dm  # noqa: E402
from bigseg.segment import segment_whole_planes  # noqa: E402
from bigseg.stack import as_4d, as_stack  # noqa: E402


def level(peak: np.ndarray, floor: float, fraction: float) -> np.ndarray:
    """The default method's 3D cut at a local ``peak``: its base ramp, then ``fraction``."""
    low, high = dm.BRIGHT_FROM * floor, dm.BRIGHT_TO * floor
    base = np.clip((high - peak) / (high - low), 0.0, 1.0) * dm.LOCAL_BASE * floor
    return base + fraction * (peak - base)


def foreground(signal: np.ndarray, floor: float, params, scale, dimmer: float) -> np.ndarray:
    """Steps 1-3 of the module's docstring on one time point's ``(z, y, x)`` signal."""
    fraction = params.local_fraction
    lp = dm.local_pixels(params, scale)
    px = params.in_pixels(scale)
    cut = dict(
        size=lp.size,
        base=dm.LOCAL_BASE * floor,
        bright=(dm.BRIGHT_FROM * floor, dm.BRIGHT_TO * floor),
    )
    out = filters.local_foreground(signal, floor, fraction=fraction, **cut)
    wide = filters.local_foreground(signal, floor, fraction=fraction * dm.PLANAR_WIDE, **cut)
    for z in np.flatnonzero(wide.any(axis=(1, 2))):
        plane = np.where(wide[z], signal[z], 0).astype(np.float32)
        filled = filled_plane(wide[z], max_radius=px.max_radius)
        regions = split_plane_apart(filled, apart=dm.MARKER_APART)
        own, peak = filters.region_box_max(plane, regions, lp.size[1:])
        dimmer = (regions > 0) & (own < dimmer * peak)
        out[z] |= dimmer & (plane > floor) & (plane > level(own, floor, fraction))
    return out


def prototype_nuclei(image: np.ndarray, scale, dimmer: float) -> pd.DataFrame:
    """The nuclei of a ``(t, z, y, x)`` stack with the prototype's foreground."""
    params = bigseg.Params()
    stack = as_stack(image, scale=scale, dims=("t", "z", "y", "x")).chunk({"t": 1})
    floors = np.asarray(bigseg.global_threshold(stack, params=params).compute()).reshape(-1)
    labels, _ = segment_whole_planes(stack, params=params, threshold=floors)
    signal = np.asarray(dm.signal_of(as_4d(stack).data, params, scale).compute())
    kept = np.zeros(signal.shape, np.float32)
    for t, floor in enumerate(floors):
        fg = foreground(signal[t], float(floor), params, scale, dimmer)
        kept[t] = np.where(fg, signal[t], np.float32(0))
    px = dm.without_smoothing(params.in_pixels(scale))
    found = dm.segment_foreground_block(kept, floors.reshape(-1, 1, 1, 1), px)
    chunks = labels.data.chunks
    labels = labels.copy(data=da.from_array(found, chunks=chunks))
    det = measure(labels, stack, da.from_array(kept, chunks=chunks)).compute()
    _, nuclei = grid._linked_before_and_after(det, params, scale, False)
    return bigseg.nuclei_table(nuclei, scale=scale)


def real(dimmer: float) -> None:
    """The real stacks: counts, and F1 where a truth table exists."""
    for name, load in _datasets.REAL.items():
        image, scale, truth = load()
        image = np.asarray(image)
        image = image[None] if image.ndim == 3 else image
        results = [grid.default_nuclei(image, scale), prototype_nuclei(image, scale, dimmer)]
        text = [f"{len(n)}" for n in results]
        if isinstance(truth, pd.DataFrame):
            text = [f"{t} (F1 {bigseg.score(n, truth).f1:.3f})" for t, n in zip(text, results)]
        print(f"{name}: default {text[0]}, prototype {text[1]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", action="store_true", help="the named kinds (seeds 0,1)")
    parser.add_argument("--real", action="store_true", help="the real stacks")
    parser.add_argument(
        "--dimmer", type=float, default=dm.PLANAR_DIMMER,
        help=f"step 3's fraction of the box's peak (default {dm.PLANAR_DIMMER}, the 2D images')",
    )  # fmt: skip
    grid.add_seeds(parser, (0,))
    args = parser.parse_args()
    if args.real:
        real(args.dimmer)
        return
    if args.kinds:
        cases = fragments.kind_cases(grid.seeds_of(args.seeds, (0, 1)))
    else:
        cases = fragments.matrix_cases(grid.seeds_of(args.seeds, (0,)))
    rows = []
    for name, image, truth, scale in cases:
        default = grid.scored(grid.default_nuclei(image, scale), truth)[0].f1
        proto = grid.scored(prototype_nuclei(image, scale, args.dimmer), truth)[0].f1
        rows.append({"case": name, "default": default, "prototype": proto})
        print(f"{name}: default {default:.3f}, prototype {proto:.3f}", flush=True)
    print(fragments.summary(pd.DataFrame(rows), ["prototype"]).round(4).to_string())


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
