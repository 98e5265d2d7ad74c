"""Graph-build time of measure() for 16 000 blocks: nothing is computed.

    python bench/graph.py

bigseg builds per-block tables with one ``map_blocks`` (no Python loop over blocks at graph
time). The reference, measured in the same run, is the pattern it replaced: one
``dask.delayed`` call per block in a Python loop, over the blocks of the labels and the image.
"""

from __future__ import annotations

import argparse
import time

import dask
import dask.array as da
import numpy as np

from bigseg import as_stack, measure
from bigseg.measure import measure_delayed

CASES = {
    "whole planes": ((16_000, 16, 16), (1, 16, 16)),
    "split planes": ((10, 2048, 2000), (10, 16, 16)),
}


def _seconds(build, *args, **kwargs) -> float:
    start = time.perf_counter()
    build(*args, **kwargs)
    return time.perf_counter() - start


def _table(labels: np.ndarray, image: np.ndarray) -> None:  # never called: graphs only
    raise AssertionError


def _loop_over_blocks(labels, image) -> list:
    """The replaced pattern: a Python loop building one delayed table per block."""
    table = dask.delayed(_table, pure=True)
    pairs = zip(labels.data.to_delayed().ravel(), image.data.to_delayed().ravel())
    return [table(lab, img) for lab, img in pairs]


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    for name, (shape, chunks) in CASES.items():
        image = as_stack(da.zeros(shape, np.uint16, chunks=chunks), scale=(1, 1, 1))
        labels = image.copy(data=da.zeros(shape, np.int32, chunks=chunks))
        blocks = labels.data.npartitions
        reference = _seconds(_loop_over_blocks, labels, image)
        for label, build in (("measure()", measure), ("measure_delayed()", measure_delayed)):
            seconds = _seconds(build, labels, image)
            print(
                f"{name}, {blocks} blocks: {label} {seconds:.2f} s, "
                f"{seconds / reference:.2f}x a Python loop over the blocks ({reference:.2f} s)"
            )


if __name__ == "__main__":
    main()
