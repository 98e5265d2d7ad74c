"""Dask wrappers of the ``default`` preset's kernels (:mod:`bigseg._accuracy_kernels`).

Nothing here computes.  The global floor is its own lazy step
(:func:`local_floor`); segmentation maps the kernels over chunks holding
whole planes, with a halo of planes in z (``map_overlap``) so that the 3D
smoothing and the local maximum are the same however the stack is chunked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dask.array as da
import numpy as np
import xarray as xr

from . import _accuracy_kernels as K
from ._errors import InputError
from .params import Params
from .stack import as_4d, scale_of


@dataclass(frozen=True)
class LocalPixels:
    """The default preset's sizes in voxels of one stack, ``(z, y, x)``."""

    sigma: tuple[float, float, float]
    size: tuple[int, int, int]
    depth: int
    min_distance: int
    min_radius: float
    max_radius: float


def local_pixels(params: Params, scale: Sequence[float]) -> LocalPixels:
    """Convert the default preset's µm sizes with the voxel size ``(z, y, x)``."""
    scale = tuple(float(s) for s in scale)
    px = params.in_pixels(scale)
    # A Gaussian cut at 3 sigma spans the recipe's smoothing disk.
    sigma_um = params.smooth_radius / K.TRUNCATE
    sigma = tuple(sigma_um / s for s in scale)
    radius_um = params.local_radius
    if radius_um is None:
        radius_um = 1.25 * params.min_radius
    radii = tuple(int(round(radius_um / s)) for s in scale)
    return LocalPixels(
        sigma=sigma,
        size=tuple(2 * r + 1 for r in radii),
        depth=K.halo(sigma[0], radii[0]),
        min_distance=px.min_distance,
        min_radius=px.min_radius,
        max_radius=px.max_radius,
    )


def _map_grown(
    data: da.Array, reach: tuple[int, int, int], func, *args, dtype, **kwargs
) -> da.Array:
    """``func`` over ``data``'s chunks, each grown by ``reach`` voxels along z, y and x (lazy).

    ``func(block, *args, margin=..., **kwargs)`` gets a chunk grown by its
    neighbours' voxels, with ``margin`` the ``(before, after)`` voxels of
    context per axis of ``(z, y, x)``, and returns the chunk itself (the block
    without its margin).  No voxel is added past the stack's edges (there the
    kernels treat edges by nearest value, as on the whole array), so every
    voxel equals the whole-array result however the stack is chunked.
    Chunks smaller than the reach are merged for the computation; the result
    has ``data``'s chunks.  ``args`` may hold dask arrays chunked like
    ``data`` along t only.
    """
    depth = {0: 0}
    work_chunks = list(data.chunks)
    for axis, r in enumerate(reach, start=1):
        r = min(int(r), data.shape[axis])
        depth[axis] = r if data.numblocks[axis] > 1 else 0
        if depth[axis] and min(data.chunks[axis]) < r:
            work_chunks[axis] = da.overlap.ensure_minimum_chunksize(r, data.chunks[axis])
    work = data.rechunk(tuple(work_chunks)) if tuple(work_chunks) != data.chunks else data
    depth = {axis: d if work.numblocks[axis] > 1 else 0 for axis, d in depth.items()}
    grown = da.overlap.overlap(work, depth=depth, boundary="none") if any(depth.values()) else work
    out = da.map_blocks(
        _chunk_of_grown,
        grown,
        *args,
        kernel=func,
        depth=tuple(depth[axis] for axis in range(4)),
        chunks=work.chunks,
        dtype=dtype,
        meta=np.empty((0,) * 4, dtype),
        token=func.__name__,  # task keys name the kernel
        **kwargs,
    )
    return out if out.chunks == data.chunks else out.rechunk(data.chunks)


def _chunk_of_grown(block, *args, kernel, depth, block_info=None, **kwargs):
    """Call ``kernel`` with the margin of context that ``block`` (one grown chunk) has per axis."""
    info = block_info[0]
    margin = tuple(
        (d if i > 0 else 0, d if i < n - 1 else 0)
        for d, i, n in zip(depth, info["chunk-location"], info["num-chunks"])
    )
    return kernel(block, *args, margin=margin[1:], **kwargs)


def _smooth_block(block: np.ndarray, *, sigma, margin) -> np.ndarray:
    return np.stack([K.smooth_volume(volume, sigma, margin=margin) for volume in block])


def local_floor(stack: xr.DataArray, params: Params) -> xr.DataArray:
    """Return the global floor of each time point (lazy): log-histogram Otsu of the smoothed stack.

    Returns
    -------
    xarray.DataArray
        Dims ``("t",)`` for a 4D stack, a 0-d array for a 3D stack.
    """
    four = as_4d(stack)
    lp = local_pixels(params, scale_of(stack))
    data = four.data
    if data.dtype.kind == "u":
        offset = da.zeros((), np.float64)
        top = da.full((), float(np.iinfo(data.dtype).max), np.float64)
    elif data.dtype.kind in "if":
        offset = data.min().astype(np.float64)
        top = data.max().astype(np.float64)
    else:
        raise InputError(f"Cannot segment a stack of dtype {data.dtype}; convert it to numbers.")
    log_max = da.log(top - offset + 1.0)
    # Smoothed in the stack's own chunks (planes split in y/x too), each grown by the
    # Gaussian's reach: no task holds more than a chunk and its halo.
    reach = tuple(K.halo(sigma, 0) for sigma in lp.sigma)
    smoothed = _map_grown(data, reach, _smooth_block, sigma=lp.sigma, dtype=np.float32)
    counts = da.map_blocks(
        _histogram_block,
        smoothed,
        offset,
        log_max,
        new_axis=4,
        chunks=(smoothed.chunks[0], *((1,) * n for n in smoothed.numblocks[1:]), (K.LOG_BINS,)),
        dtype=np.int64,
        meta=np.empty((0,) * 5, np.int64),
    )
    counts = counts.sum(axis=(1, 2, 3))  # (t, bins)
    values = da.map_blocks(_floor_rows, counts, offset, log_max, drop_axis=[1], dtype=np.float64)
    out = xr.DataArray(values, dims=("t",), coords={"t": four.t.values}, name="threshold")
    return out if "t" in stack.dims else out.isel(t=0)


def _histogram_block(block: np.ndarray, offset: np.ndarray, log_max: np.ndarray) -> np.ndarray:
    out = np.zeros((block.shape[0], 1, 1, 1, K.LOG_BINS), np.int64)
    for t in range(block.shape[0]):
        out[t, 0, 0, 0] = K.log_histogram(block[t], offset=float(offset), log_max=float(log_max))
    return out


def _floor_rows(counts: np.ndarray, offset: np.ndarray, log_max: np.ndarray) -> np.ndarray:
    return np.array(
        [
            K.log_otsu_from_counts(row, offset=float(offset), log_max=float(log_max))
            for row in counts
        ],
        np.float64,
    )


def segment_local(data: da.Array, thresholds: da.Array, params: Params, scale) -> da.Array:
    """Plane labels of a ``(t, z, y, x)`` dask array with the default preset (lazy).

    ``thresholds`` holds one floor per time point, shape ``(t,)``.
    """
    from ._kernels import LABEL_DTYPE

    lp = local_pixels(params, scale)
    # Whole planes, grown in z only: the same foreground as on split planes.
    foreground = split_foreground(data.rechunk({2: -1, 3: -1}), thresholds, params, scale)
    return da.map_blocks(
        K.segment_foreground,
        foreground,
        min_distance=lp.min_distance,
        min_radius=lp.min_radius,
        max_radius=lp.max_radius,
        dtype=LABEL_DTYPE,
        meta=np.empty((0, 0, 0, 0), LABEL_DTYPE),
    )


def _foreground_block(
    block: np.ndarray, thresholds: np.ndarray, *, sigma, fraction: float, size, margin
) -> np.ndarray:
    # Smoothed only where the local maximum looks: the chunk and its radius.
    radius = tuple((int(n) - 1) // 2 for n in size)
    context = tuple((max(b - r, 0), max(a - r, 0)) for (b, a), r in zip(margin, radius))
    rest = tuple((b - cb, a - ca) for (b, a), (cb, ca) in zip(margin, context))
    out = []
    for t in range(block.shape[0]):
        smoothed = K.smooth_volume(block[t], sigma, margin=context)
        out.append(
            K.local_foreground(
                smoothed, float(thresholds[t, 0, 0, 0]), fraction=fraction, size=size, margin=rest
            )
        )
    return np.stack(out)


def split_foreground(data: da.Array, thresholds: da.Array, params: Params, scale) -> da.Array:
    """Return the default preset's foreground of a ``(t, z, y, x)`` array, in its chunks (lazy).

    The foreground is a pure neighbourhood operation: every block is grown
    by the reach of the smoothing and of the local maximum along each axis
    (:func:`bigseg._accuracy_kernels.halo`; none past the stack's edges), so
    that every voxel equals the whole-array foreground however the stack is
    chunked, planes split in y/x included.  Chunks smaller than that reach
    are merged for the computation; the result has ``data``'s chunks.
    """
    lp = local_pixels(params, scale)
    reach = tuple(K.halo(sigma, (size - 1) // 2) for sigma, size in zip(lp.sigma, lp.size))
    thr = thresholds.reshape((-1, 1, 1, 1)).rechunk((data.chunks[0], 1, 1, 1))
    return _map_grown(
        data,
        reach,
        _foreground_block,
        thr,
        sigma=lp.sigma,
        fraction=params.local_fraction,
        size=lp.size,
        dtype=bool,
    )


def _segment_foreground_block(block: np.ndarray, thresholds: np.ndarray, px) -> np.ndarray:
    """Block kernel of stitching (:mod:`bigseg._stitch`): per-plane regions of a foreground block.

    ``thresholds`` are unused (the floor is applied in :func:`split_foreground`).
    """
    return K.segment_foreground(
        block.astype(bool, copy=False),
        min_distance=px.min_distance,
        min_radius=px.min_radius,
        max_radius=px.max_radius,
    )
