"""How often the split-plane check fires, and how often split planes really differ.

Run from the repository root:  ``.venv/bin/python bench/halo.py [--quick]``

A matrix of synthetic stacks (``bigseg.synth.make_truth`` / ``render``): 2D (one plane)
and 3D (4 planes) of 240 x 240 pixels, small nuclei (radius 3-5 µm) and large ones
(8-13 µm, up to the largest region kept, ``max_radius`` = 14.2 µm), three densities
(none touching; a quarter touching an earlier one; chains: 60 % touching), segmented
with whole planes and with y/x blocks from just above the method's halo to half the
plane, for the ``default`` and ``seed`` methods at their default sizes.  Per row:
``flagged``, the clusters the run warns about (``clusters_beyond_halo``); ``conflicts``,
``face_conflicts``; ``planes_differ``, planes whose labels differ from whole planes
(up to renumbering); ``detections_differ``, whether the per-plane table (positions,
areas, intensities: what the nuclei tables are built from) differs.
"""

from __future__ import annotations

import argparse
import itertools

import dask
import numpy as np
import pandas as pd

import bigseg
from bigseg import Params
from bigseg.chunked import stitch as st
from bigseg.chunked.relabel import block_luts
from bigseg.kernels.lut import apply_lut
from bigseg.measure import measure
from bigseg.segment import _threshold_array, halo_px, plan_blocks, stitched_blocks
from bigseg.stack import as_4d, as_stack, scale_of
from bigseg.synth import make_truth, render
from bigseg.tables import detections_from_sums

SCALE = (1.5, 0.71, 0.71)
RADII = {"small": (3.0, 5.0), "large": (8.0, 13.0)}
NUCLEI = {"small": 110, "large": 26}
DENSITY = {"apart": 0.0, "quarter": 0.25, "chains": 0.6}


def stack_of(planes: int, radii: str, density: str, seed: int = 3):
    shape = (planes, 240, 240)
    truth = make_truth(
        shape,
        NUCLEI[radii],
        scale=SCALE,
        seed=seed,
        radius_um=RADII[radii],
        touching=DENSITY[density],
        min_separation=1.05,
    )
    data = render(truth, (0, 0, 0, 0), (1, *shape), scale=SCALE, noise_seed=seed)
    return as_stack(data[0], scale=SCALE)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if not np.array_equal(a == 0, b == 0):
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    cols = ["t", "z", "y", "x", "area_px", "intensity_sum"]
    return table[cols].sort_values(["t", "z", "y", "x"]).reset_index(drop=True)


def split_result(stack, params: Params, block: int):
    """Stitched labels (4D), the stitching summary and the detections of a y/x-chunked run."""
    chunked = stack.chunk({"z": 1, "y": block, "x": block})
    four = as_4d(chunked)
    px = params.in_pixels(scale_of(stack))
    thr = _threshold_array(four, chunked, None, params)
    data = plan_blocks(four.data, px, True, params.preset)
    blocks = stitched_blocks(data, thr, params, px, scale_of(stack))
    side = st.side_tables(blocks)
    raw, summ, *pairs = dask.compute(
        st.core_labels(blocks, data.chunks), st.summaries(side), *st.face_pairs(side)
    )
    stitched = st.stitch(summ, pairs)
    luts = block_luts(stitched.nodes, summ, stitched.nodes["region"].to_numpy(), np.int32)
    labels = np.zeros(raw.shape, np.int32)
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]) for c in data.chunks]
    for index in np.ndindex(*summ.shape):
        sl = tuple(slice(s[i], s[i] + c[i]) for s, c, i in zip(starts, data.chunks, index))
        labels[sl] = apply_lut(raw[sl], luts[index])
    detections = detections_from_sums(stitched.sums, scale=SCALE, translation=(0.0, 0.0, 0.0))
    return labels, stitched, detections


def check_cost(params: Params, block: int) -> float:
    """Seconds of the split-plane segment pass with the check over the old proxy's (same run)."""
    import time

    from bigseg import methods
    from bigseg.chunked.stitch import segment_blocks

    stack = stack_of(4, "small", "quarter").chunk({"z": 1, "y": block, "x": block})
    four = as_4d(stack)
    px = params.in_pixels(SCALE)
    thr = _threshold_array(four, stack, None, params).persist()
    data = plan_blocks(four.data, px, True, params.preset)
    m = methods.get(params.preset)
    source, image = m.prepass(data, thr, params, SCALE)
    source = source.persist()
    halo = halo_px(px, params.preset)
    seconds: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(3):  # alternating, the best of three each: the machine is shared
        for checked in (False, True):
            blocks = segment_blocks(
                source,
                thr,
                m.pixels(px),
                m.kernel,
                halo=halo,
                image=image,
                foreground=m.foreground if checked else None,
            )
            start = time.perf_counter()
            st.summaries(st.side_tables(blocks)).compute()
            seconds[checked].append(time.perf_counter() - start)
    return min(seconds[True]) / min(seconds[False])


def print_costs() -> None:
    for method in ("default", "seed"):
        params = Params.from_preset(method)
        block = halo_px(params.in_pixels(SCALE), method) + 2
        ratio = check_cost(params, block)
        print(f"{method}: segment pass with the check / with the old proxy: {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3D, one block size only")
    parser.add_argument("--cost", action="store_true", help="only the check's cost")
    parser.add_argument("--seed", type=int, default=3, help="of the synthetic stacks")
    args = parser.parse_args()
    if args.cost:
        dask.config.set(scheduler="synchronous")
        print_costs()
        return
    rows = []
    dask.config.set(scheduler="synchronous")
    planes = (4,) if args.quick else (1, 4)
    for method, n_planes, radii, density in itertools.product(
        ("default", "seed"), planes, RADII, DENSITY
    ):
        params = Params.from_preset(method)
        halo = halo_px(params.in_pixels(SCALE), method)
        stack = stack_of(n_planes, radii, density, seed=args.seed)
        whole = as_4d(bigseg.segment(stack, params=params)).values
        whole_det = _sorted(measure(bigseg.segment(stack, params=params), stack).compute())
        sizes = (halo + 2,) if args.quick else (halo + 2, halo + halo // 2, 120)
        for block in sizes:
            labels, stitched, det = split_result(stack, params, block)
            differ = sum(
                not _same(a, b)
                for a, b in zip(labels.reshape(-1, 240, 240), whole.reshape(-1, 240, 240))
            )
            det = _sorted(det)
            same_det = len(det) == len(whole_det) and np.allclose(
                det.to_numpy(float), whole_det.to_numpy(float), rtol=1e-9, atol=1e-6
            )
            rows.append(
                {
                    "method": method,
                    "planes": n_planes,
                    "radii": radii,
                    "density": density,
                    "block": block,
                    "halo": halo,
                    "regions": len(whole_det),
                    "flagged": stitched.beyond,
                    "conflicts": stitched.conflicts,
                    "planes_differ": differ,
                    "detections_differ": not same_det,
                }
            )
            print(pd.DataFrame(rows[-1:]).to_string(header=len(rows) == 1, index=False), flush=True)
    table = pd.DataFrame(rows)
    warned = (table.flagged > 0) | (table.conflicts > 0)
    differs = (table.planes_differ > 0) | table.detections_differ
    print()
    print(f"runs: {len(table)}, warned: {int(warned.sum())}, differ: {int(differs.sum())}, ")
    print(f"warned but identical: {int((warned & ~differs).sum())}, ")
    print(f"differ but not warned: {int((differs & ~warned).sum())}")
    print_costs()


if __name__ == "__main__":
    main()
