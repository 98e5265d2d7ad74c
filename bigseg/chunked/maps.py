"""Map NumPy kernels over blocks: with a halo, into per-block tables, into per-t statistics.

Nothing here computes, and no graph is built with a Python loop over blocks: every
function is one ``map_blocks`` (plus an overlap or a reduction).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd

from ..reads import in_work_chunks, is_read, read_grown

__all__ = ["block_objects", "frame_of_blocks", "map_with_halo", "per_t_counts", "per_t_statistic"]

_OBJ = np.empty((0, 0, 0, 0), object)


def map_with_halo(
    data: da.Array,
    reach: tuple[int, int, int],
    func: Callable,
    *args: Any,
    dtype: Any,
    one_per_block: bool = False,
    **kwargs: Any,
) -> da.Array:
    """``func`` over a ``(t, z, y, x)`` array's chunks, each grown by ``reach`` voxels (lazy).

    ``func(block, *args, margin=..., **kwargs)`` gets a chunk grown by its
    neighbours' voxels, with ``margin`` the ``(before, after)`` voxels of
    context per axis of ``(z, y, x)``, and returns the chunk itself (the block
    without its margin).  No voxel is added past the stack's edges (there the
    kernels treat edges by nearest value, as on the whole array), so every
    voxel equals the whole-array result however the stack is chunked.
    A read of a file (:func:`bigseg.reads.is_read`) is grown by reading every
    grown block from the file (:func:`bigseg.reads.read_grown`): no task holds,
    or waits for, its neighbours' blocks, as a halo exchange would.
    Chunks smaller than the reach are merged for the computation; the result
    has ``data``'s chunks.  ``args`` may hold dask arrays chunked like
    ``data`` along t only, or like the (unmerged) data.

    With ``one_per_block``, ``func`` also gets ``index`` and ``numblocks`` (the
    block's place in the grid) and returns any object: the result is an object
    array with one element per (merged) block.
    """
    depth = {0: 0}
    work_chunks = list(data.chunks)
    for axis, r in enumerate(reach, start=1):
        r = min(int(r), data.shape[axis])
        depth[axis] = r if data.numblocks[axis] > 1 else 0
        if depth[axis] and min(data.chunks[axis]) < r:
            work_chunks[axis] = da.overlap.ensure_minimum_chunksize(r, data.chunks[axis])
    work = in_work_chunks(data, tuple(work_chunks))
    depth = {axis: d if work.numblocks[axis] > 1 else 0 for axis, d in depth.items()}
    if not any(depth.values()):
        grown = work
    elif is_read(work):  # every grown block read from the file: no task waits for another
        grown = read_grown(work, work.chunks, [depth[axis] for axis in range(4)])
    else:
        grown = da.overlap.overlap(work, depth=depth, boundary="none")
    if one_per_block:
        out_chunks = tuple((1,) * n for n in work.numblocks)
        meta = _OBJ
    else:
        out_chunks, meta = work.chunks, np.empty((0,) * 4, dtype)
    out = da.map_blocks(
        _chunk_of_grown,
        grown,
        *args,
        kernel=func,
        depth=tuple(depth[axis] for axis in range(4)),
        one_per_block=one_per_block,
        chunks=out_chunks,
        dtype=object if one_per_block else dtype,
        meta=meta,
        token=getattr(func, "__name__", "kernel"),  # task keys name the kernel
        **kwargs,
    )
    if one_per_block or out.chunks == data.chunks:
        return out
    return out.rechunk(data.chunks)


def _chunk_of_grown(block, *args, kernel, depth, one_per_block, block_info=None, **kwargs):
    """Call ``kernel`` with the margin of context that ``block`` (one grown chunk) has per axis."""
    info = block_info[0]
    margin = tuple(
        (d if i > 0 else 0, d if i < n - 1 else 0)
        for d, i, n in zip(depth, info["chunk-location"], info["num-chunks"])
    )
    if not one_per_block:
        return kernel(block, *args, margin=margin[1:], **kwargs)
    result = kernel(
        block,
        *args,
        margin=margin[1:],
        index=tuple(int(i) for i in info["chunk-location"]),
        numblocks=tuple(int(n) for n in info["num-chunks"]),
        **kwargs,
    )
    out = np.empty((1,) * block.ndim, object)
    out[(0,) * block.ndim] = result
    return out


def block_objects(func: Callable, *arrays: da.Array, **kwargs: Any) -> da.Array:
    """``func`` on every block of the ``(t, z, y, x)`` ``arrays`` (chunked alike): one object each.

    ``func(*blocks, origin=..., **kwargs)`` gets the blocks and the index of their first
    voxel in the whole array, and returns any object (typically a table).  Returns a
    dask array with one block per block of ``arrays`` whose blocks *are* those objects
    (lazy): use it through :func:`frame_of_blocks` or ``.to_delayed()``, never compute
    it as an array.
    """
    first = arrays[0]
    return da.map_blocks(
        _one_object,
        *arrays,
        kernel=func,
        chunks=tuple((1,) * n for n in first.numblocks),
        dtype=object,
        meta=_OBJ,
        token=getattr(func, "__name__", "kernel"),
        **kwargs,
    )


def _one_object(*blocks, kernel, block_info=None, **kwargs):
    origin = tuple(int(start) for start, _ in block_info[0]["array-location"])
    return kernel(*blocks, origin=origin, **kwargs)


def frame_of_blocks(objects: da.Array, meta: pd.DataFrame) -> Any:
    """Return a dask DataFrame, one partition per element of an object array of tables (lazy)."""
    import dask.dataframe as dd  # on first use: a CLI run never needs it

    return dd.from_delayed(
        objects.to_delayed(optimize_graph=False).ravel().tolist(), meta=meta, verify_meta=False
    )


def per_t_statistic(
    data: da.Array,
    count: Callable[..., np.ndarray],
    statistic: Callable[..., float],
    *args: da.Array,
    nbins: int,
) -> da.Array:
    """One statistic per time point from per-block histograms (lazy, shape ``(t,)``).

    ``count(values, *args)`` is the ``nbins``-long int64 histogram of one time point's
    part of a block; the histograms are summed over all blocks of a time point
    (:func:`per_t_counts`), and ``statistic(counts, *args)`` turns each sum into a float.
    ``args`` are 0-d dask arrays (e.g. a global offset).  No task holds more than a block.
    """
    total = per_t_counts(data, count, *args, nbins=nbins)
    return da.map_blocks(
        _statistic_rows, total, *args, statistic=statistic, drop_axis=[1], dtype=np.float64
    )


def per_t_counts(
    data: da.Array,
    count: Callable[..., np.ndarray],
    *args: da.Array,
    nbins: int,
    reach: tuple[int, int, int] | None = None,
) -> da.Array:
    """Each time point's histogram, summed over its blocks (lazy, int64, shape ``(t, nbins)``).

    ``count(values, *args)`` is the ``nbins``-long histogram of one time point's part of
    a block (``(z, y, x)``).  With ``reach``, every block is grown by it
    (:func:`map_with_halo`, the same reads) and ``count(volume, *args, margin=...)``
    counts the block's own part of the grown ``volume``, ``margin`` its context per axis:
    counts of neighbourhoods (differences of neighbours) that are the whole array's
    however it is chunked.  ``args`` are 0-d dask arrays.
    """
    if reach is None:
        counts = da.map_blocks(
            _block_counts,
            data,
            *args,
            count=count,
            nbins=nbins,
            new_axis=data.ndim,
            chunks=(data.chunks[0], *((1,) * n for n in data.numblocks[1:]), (nbins,)),
            dtype=np.int64,
            meta=np.empty((0,) * (data.ndim + 1), np.int64),
        )
    else:
        boxed = map_with_halo(
            data, reach, _grown_counts, *args, dtype=object, one_per_block=True,
            count=count, nbins=nbins,
        )  # fmt: skip
        counts = da.map_blocks(
            _unbox_counts,
            boxed,
            new_axis=boxed.ndim,
            chunks=(data.chunks[0], *((1,) * n for n in boxed.numblocks[1:]), (nbins,)),
            dtype=np.int64,
            meta=np.empty((0,) * (boxed.ndim + 1), np.int64),
        )
    return counts.sum(axis=tuple(range(1, data.ndim)))  # (t, bins)


def _grown_counts(block, *args, count, nbins: int, margin, index, numblocks) -> np.ndarray:
    out = np.zeros((block.shape[0], nbins), np.int64)
    for t in range(block.shape[0]):
        out[t] = count(block[t], *args, margin=margin)
    return out


def _unbox_counts(boxed: np.ndarray) -> np.ndarray:
    counts = boxed.reshape(-1)[0]
    return counts.reshape((counts.shape[0],) + (1,) * (boxed.ndim - 1) + (counts.shape[1],))


def _block_counts(block: np.ndarray, *args: np.ndarray, count, nbins: int) -> np.ndarray:
    out = np.zeros((block.shape[0],) + (1,) * (block.ndim - 1) + (nbins,), np.int64)
    for t in range(block.shape[0]):
        out[(t,) + (0,) * (block.ndim - 1)] = count(block[t], *args)
    return out


def _statistic_rows(counts: np.ndarray, *args: np.ndarray, statistic) -> np.ndarray:
    return np.array([statistic(row, *args) for row in counts], np.float64)
