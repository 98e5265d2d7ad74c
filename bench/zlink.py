"""Linking one large time point as one table, or partitioned by z-chunk (pipeline/zparts.py).

A time point of ``--tiles`` x 40 planes is built from the detections of a synthetic
40 x 256 x 256 stack (a run of the default preset), repeated in z and over a y/x grid
(``--tiles K``: K in z, K x K in y/x; K³ copies, shifted so that no two touch).  It is
linked twice in this process, with the synchronous scheduler, under ``tracemalloc``:

- as one table (:func:`bigseg.cluster.link`, what one worker does for a t-chunk);
- by z-chunk (:func:`bigseg.pipeline.zparts.link_pass`) with parts of ``--planes``
  planes: the passes run one task at a time, so the peak is that of the largest task
  plus what the client holds (the seam pairs and the plan).

Prints the rows, the parts, the peak traced memory and the time of each, their ratios,
the components that cross a seam (what the client joins), and checks that the nucleus
ids are the same.

Example::

    python bench/zlink.py --tiles 8 --planes 40 20
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from functools import partial
from pathlib import Path

import dask
import numpy as np
import pandas as pd

from bigseg import Params, as_stack, run
from bigseg.cluster import link
from bigseg.pipeline.partitions import Parts, part_name
from bigseg.pipeline.sink import Sink
from bigseg.pipeline.zparts import link_pass
from bigseg.synth import make_truth, render

SCALE = (1.5, 0.71, 0.71)
SHAPE = (40, 256, 256)


def base_detections(tmp: Path) -> pd.DataFrame:
    """Per-plane detections of one synthetic stack (nucleus ids dropped)."""
    truth = make_truth(SHAPE, 60, scale=SCALE, t=1, seed=7, radius_um=(3.0, 7.0))
    data = render(truth, (0, 0, 0, 0), (1, *SHAPE), scale=SCALE, noise_seed=7)
    out = run(as_stack(data[0], scale=SCALE), tmp / "base", track=False)
    return out.detections.drop(columns="nucleus")


def tiled(base: pd.DataFrame, k: int) -> pd.DataFrame:
    """``k`` copies in z and ``k`` x ``k`` in y/x, in ``t, z, label`` order (labels per plane)."""
    nz, ny, nx = SHAPE
    frames = []
    for a in range(k):
        for b in range(k):
            for c in range(k):
                f = base.copy()
                f["z"] = f["z"] + a * nz
                f["z_um"] = f["z_um"] + a * nz * SCALE[0]
                f["y"] = f["y"] + b * ny
                f["y_um"] = f["y_um"] + b * ny * SCALE[1]
                f["x"] = f["x"] + c * nx
                f["x_um"] = f["x_um"] + c * nx * SCALE[2]
                f["label"] = f["label"] + (b * k + c) * (int(base["label"].max()) + 1)
                frames.append(f)
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values(["t", "z", "label"], ignore_index=True)


def _read(table: pd.DataFrame, edges: np.ndarray, i: int, j: int) -> pd.DataFrame:
    z = table["z"].to_numpy()
    return table[(z >= edges[j]) & (z < edges[j + 1])].reset_index(drop=True)


def traced(fn):
    """Run ``fn()``; return its result, peak traced MiB and seconds."""
    tracemalloc.start()
    started = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return value, peak, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=8)
    parser.add_argument("--planes", type=int, nargs="+", default=[40, 20])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    params = Params()
    with dask.config.set(scheduler="synchronous"):
        table = tiled(base_detections(tmp), args.tiles)
        depth = SHAPE[0] * args.tiles
        whole, peak0, sec0 = traced(lambda: link(table, params=params, scale=SCALE))
        expected = whole.sort_values(["t", "z", "label"], ignore_index=True)
        print(f"one time point: {len(table):,} detections, {depth} planes, "
              f"{int(whole['nucleus'].max()):,} nuclei")  # fmt: skip
        print(f"{'linking':<28} {'parts':>6} {'peak MiB':>9} {'x one':>6} {'s':>7} {'x one':>6}")
        print(f"{'one table':<28} {1:>6} {peak0:>9.1f} {1:>6.2f} {sec0:>7.2f} {1:>6.2f}")
        for planes in args.planes:
            chunks = tuple(min(planes, depth - z) for z in range(0, depth, planes))
            parts = Parts((1,), chunks)
            edges = np.cumsum((0, *chunks))
            work = tmp / f"z{planes}"
            work.mkdir()
            (counts, _), peak, sec = traced(
                lambda parts=parts, edges=edges, work=work: link_pass(
                    partial(_read, table, edges), parts, params=params, scale=SCALE,
                    planar=False, work=work, sink=Sink(),
                )
            )  # fmt: skip
            offsets = np.cumsum(counts) - counts
            linked = pd.concat(
                [
                    pd.read_parquet(work / "linked" / part_name(p)).assign(
                        nucleus=lambda f, o=o: f["nucleus"] + o
                    )
                    for p, o in enumerate(offsets)
                ],
                ignore_index=True,
            ).sort_values(["t", "z", "label"], ignore_index=True)
            same = linked["nucleus"].equals(expected["nucleus"])
            seams = len(pd.read_parquet(work / "zlink" / "plan.parquet"))
            print(f"{f'by z-chunk of {planes} planes':<28} {len(parts):>6} {peak:>9.1f} "
                  f"{peak / peak0:>6.2f} {sec:>7.2f} {sec / sec0:>6.2f}   same ids: {same}; "
                  f"components across seams (client): {seams:,}")  # fmt: skip


if __name__ == "__main__":
    main()
