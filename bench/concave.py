"""The concavity cut of 2D images, against no cut (issue 14, twelfth and thirteenth rounds).

Run from the repository root::

    .venv/bin/python bench/concave.py [--real] [--kinds] [--grid 2d|3d] [--seeds 0-9]
        [--solidity 0.95] [--notch 10] [--depth 1.5] [--stacks]

The default method cuts a region of a 2D image between the two deepest notches of its
outline (:mod:`bigseg.kernels.concave`, :func:`bigseg.methods.default.concave_cut`).  This
script runs the default with the cut's constants given (by default the method's own) and
without the cut (solidity 0), in the same run, and prints F1: ``--real`` on StarDist's 2D
image at its four pixel sizes, with and without a camera offset of 30 000 (``make real-2d``
fetches it); ``--kinds`` on ``ovals2d`` and ``hela2d`` (``--seeds``); ``--grid`` the cells of
the synthetic matrix where the cut raises or lowers F1.  ``--stacks`` cuts the planes of
stacks too (the method does not: docs/accuracy.md, thirteenth round, says why).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _datasets  # noqa: E402
import grid  # noqa: E402

import bigseg  # noqa: E402
from bigseg.methods import default  # noqa: E402
from bigseg.synth import synth_kind  # noqa: E402

_METHOD = {
    "CONCAVE_SOLIDITY": default.CONCAVE_SOLIDITY,
    "CONCAVE_NOTCH": default.CONCAVE_NOTCH,
    "CONCAVE_DEPTH": default.CONCAVE_DEPTH,
}
_SEGMENT = default.segment_foreground_block


def _set(args, cut: bool) -> None:
    """The cut with ``args``' constants (``cut``) or none, in 2D images (and stacks)."""
    default.CONCAVE_SOLIDITY = args.solidity if cut else 0.0
    default.CONCAVE_NOTCH = args.notch
    default.CONCAVE_DEPTH = args.depth
    if args.stacks:  # a stack's planes go through the method's kernel: cut there too
        object.__setattr__(
            default.METHOD,
            "kernel",
            lambda block, thresholds, px: _SEGMENT(block, thresholds, px, planar=True),
        )


def _f1(image, truth, scale) -> float:
    return bigseg.score(grid.default_nuclei(image, scale), truth).f1


def real(args) -> None:
    for label, cut in (("no cut", False), ("cut", True)):
        _set(args, cut)
        scores = []
        for pixel in _datasets.DSB_PIXELS:
            image, scale, truth = _datasets.dsb2018_2d(pixel)
            for offset in (0, 30000):
                shifted = (image.astype(np.int32) + offset).astype(np.uint16)
                scores.append(f"{pixel}/{offset}: {_f1(shifted[None], truth, scale):.3f}")
        print(f"StarDist's 2D image, {label:6s} " + "  ".join(scores), flush=True)


def kinds(args, seeds) -> None:
    for kind in ("ovals2d", "hela2d"):
        for label, cut in (("no cut", False), ("cut", True)):
            _set(args, cut)
            f1 = np.array([_f1(*synth_kind(kind, seed=seed)) for seed in seeds])
            print(f"{kind:8s} {label:6s} F1 {f1.mean():.4f} (worst {f1.min():.3f})", flush=True)


def matrix(args, seeds) -> None:
    rows = []
    for radii in grid.RADII:
        for offset in grid.OFFSETS:
            for touching in grid.TOUCHING:
                for seed in seeds:
                    image, truth, scale = grid.case(args.grid, radii, offset, touching, seed)
                    row = dict(radii=radii, offset=offset, touching=touching, seed=seed)
                    for label, cut in (("none", False), ("cut", True)):
                        _set(args, cut)
                        row[label] = _f1(image, truth, scale)
                    rows.append(row)
    d = pd.DataFrame(rows)
    print(
        f"{args.grid} cells: {len(d)}; the cut higher in {(d.cut > d.none).sum()}, lower in "
        f"{(d.cut < d.none).sum()}; mean F1 {d.none.mean():.4f} -> {d.cut.mean():.4f}; "
        f"under 0.95 {(d.none < 0.95).sum()} -> {(d.cut < 0.95).sum()}"
    )
    changed = d[d.cut != d.none]
    if len(changed):
        print(changed.round(3).to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solidity", type=float, default=_METHOD["CONCAVE_SOLIDITY"])
    parser.add_argument("--notch", type=int, default=_METHOD["CONCAVE_NOTCH"])
    parser.add_argument("--depth", type=float, default=_METHOD["CONCAVE_DEPTH"])
    parser.add_argument("--seeds", default="0-9", help="e.g. 0-9 or 10-16")
    parser.add_argument("--real", action="store_true", help="StarDist's 2D image")
    parser.add_argument("--kinds", action="store_true", help="ovals2d and hela2d")
    parser.add_argument("--grid", choices=("2d", "3d"), help="the matrix's cells of one kind")
    parser.add_argument("--stacks", action="store_true", help="cut the planes of stacks too")
    args = parser.parse_args()
    lo, hi = (int(v) for v in args.seeds.split("-"))
    seeds = range(lo, hi + 1)
    if args.real:
        real(args)
    if args.kinds:
        kinds(args, seeds)
    if args.grid:
        matrix(args, seeds)


if __name__ == "__main__":
    main()
