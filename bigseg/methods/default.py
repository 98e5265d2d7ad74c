"""The ``default`` method: nuclei whose brightness varies about tenfold.

1. the stack is smoothed in 3D with a Gaussian whose size is given in µm, so anisotropic
   voxels are handled (:func:`bigseg.kernels.filters.smooth_volume`);
2. one global *floor* per time point separates nuclei from background: the Otsu
   threshold of the histogram of ``log(smoothed - offset + 1)``, computed once, as its
   own step (:func:`floor`); on a log scale a dim nucleus and a bright one are as far
   from the background;
3. each voxel is foreground when it is above the floor *and* above a fixed fraction of
   the way from the floor to the brightest smoothed value within ``local_radius`` µm
   (:func:`bigseg.kernels.filters.local_foreground`), so every nucleus is cut near its
   own half-maximum whatever its brightness, and touching nuclei of unequal brightness
   stay apart: the pre-pass (:func:`split_foreground`), a neighbourhood operation with
   its own halo in z, y and x, exact in every block;
4. each plane of the foreground is split with the distance transform and watershed of
   the recipe (:func:`segment_foreground_block`), with the stitching halo of the recipe
   without its smoothing term;
5. linking splits nuclei stacked in z at intensity necks and drops fragments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import dask.array as da
import numpy as np
import xarray as xr

from .._errors import InputError
from ..chunked.maps import map_with_halo, per_t_statistic
from ..kernels import filters
from ..kernels.threshold import LOG_BINS, log_histogram, log_otsu_from_counts
from ..kernels.watershed import segment_foreground
from ..params import Params, PixelParams
from ..stack import as_4d, scale_of
from .base import Method

__all__ = [
    "METHOD",
    "LocalPixels",
    "floor",
    "local_pixels",
    "segment_foreground_block",
    "split_foreground",
]


@dataclass(frozen=True)
class LocalPixels:
    """The default method's sizes in voxels of one stack, ``(z, y, x)``."""

    sigma: tuple[float, float, float]
    size: tuple[int, int, int]
    depth: int
    min_distance: int
    min_radius: float
    max_radius: float


def local_pixels(params: Params, scale: Sequence[float]) -> LocalPixels:
    """Convert the default method's µm sizes with the voxel size ``(z, y, x)``."""
    scale = tuple(float(s) for s in scale)
    px = params.in_pixels(scale)
    # A Gaussian cut at 3 sigma spans the recipe's smoothing disk.
    sigma_um = params.smooth_radius / filters.TRUNCATE
    sigma = tuple(sigma_um / s for s in scale)
    radius_um = params.local_radius
    if radius_um is None:
        radius_um = 1.25 * params.min_radius
    radii = tuple(int(round(radius_um / s)) for s in scale)
    return LocalPixels(
        sigma=sigma,
        size=tuple(2 * r + 1 for r in radii),
        depth=filters.gaussian_reach(sigma[0]) + radii[0],
        min_distance=px.min_distance,
        min_radius=px.min_radius,
        max_radius=px.max_radius,
    )


def _smooth_block(block: np.ndarray, *, sigma, margin) -> np.ndarray:
    return np.stack([filters.smooth_volume(volume, sigma, margin=margin) for volume in block])


def floor(stack: xr.DataArray, params: Params) -> xr.DataArray:
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
    reach = tuple(filters.gaussian_reach(sigma) for sigma in lp.sigma)
    smoothed = map_with_halo(data, reach, _smooth_block, sigma=lp.sigma, dtype=np.float32)
    values = per_t_statistic(smoothed, _log_counts, _log_floor, offset, log_max, nbins=LOG_BINS)
    out = xr.DataArray(values, dims=("t",), coords={"t": four.t.values}, name="threshold")
    return out if "t" in stack.dims else out.isel(t=0)


def _floor_by_t(dtype) -> bool:
    """Whether each time point's floor depends on its own data alone: unsigned integers.

    Other dtypes take the log offset and range from the whole stack (:func:`floor`).
    """
    return np.dtype(dtype).kind == "u"


def _log_counts(values: np.ndarray, offset: np.ndarray, log_max: np.ndarray) -> np.ndarray:
    return log_histogram(values, offset=float(offset), log_max=float(log_max))


def _log_floor(counts: np.ndarray, offset: np.ndarray, log_max: np.ndarray) -> float:
    return log_otsu_from_counts(counts, offset=float(offset), log_max=float(log_max))


def _foreground_block(
    block: np.ndarray, thresholds: np.ndarray, *, sigma, fraction: float, size, margin
) -> np.ndarray:
    # Smoothed only where the local maximum looks: the chunk and its radius.
    radius = tuple((int(n) - 1) // 2 for n in size)
    context = tuple((max(b - r, 0), max(a - r, 0)) for (b, a), r in zip(margin, radius))
    rest = tuple((b - cb, a - ca) for (b, a), (cb, ca) in zip(margin, context))
    out = []
    for t in range(block.shape[0]):
        smoothed = filters.smooth_volume(block[t], sigma, margin=context)
        out.append(
            filters.local_foreground(
                smoothed, float(thresholds[t, 0, 0, 0]), fraction=fraction, size=size, margin=rest
            )
        )
    return np.stack(out)


def split_foreground(
    data: da.Array, thresholds: da.Array, params: Params, scale
) -> tuple[da.Array, da.Array]:
    """Return the foreground of a ``(t, z, y, x)`` array, in its chunks, and the data (lazy).

    The pre-pass of the default method.  The foreground is a pure neighbourhood
    operation: every block is grown by the reach of the smoothing and of the local
    maximum along each axis (none past the stack's edges), so that every voxel equals the
    whole-array foreground however the stack is chunked, planes split in y/x included.
    Chunks smaller than that reach are merged for the computation; the result has
    ``data``'s chunks.  ``thresholds`` holds one floor per time point, shape ``(t,)``.
    """
    lp = local_pixels(params, scale)
    reach = tuple(
        filters.gaussian_reach(sigma) + (size - 1) // 2 for sigma, size in zip(lp.sigma, lp.size)
    )
    thr = thresholds.reshape((-1, 1, 1, 1)).rechunk((data.chunks[0], 1, 1, 1))
    foreground = map_with_halo(
        data,
        reach,
        _foreground_block,
        thr,
        sigma=lp.sigma,
        fraction=params.local_fraction,
        size=lp.size,
        dtype=bool,
    )
    return foreground, data


def segment_foreground_block(block: np.ndarray, thresholds: np.ndarray, px) -> np.ndarray:
    """Per-plane regions of a foreground block (whole planes, or grown by the halo).

    ``thresholds`` are unused (the floor is applied in :func:`split_foreground`).
    """
    return segment_foreground(
        block.astype(bool, copy=False),
        min_distance=px.min_distance,
        min_radius=px.min_radius,
        max_radius=px.max_radius,
    )


def without_smoothing(px: PixelParams) -> PixelParams:
    """Return the recipe's sizes without its smoothing: the kernel splits foreground planes."""
    return dataclasses.replace(px, smooth_radius=0)


METHOD = Method(
    name="default",
    statistic=floor,
    kernel=segment_foreground_block,
    pixels=without_smoothing,
    prepass=split_foreground,
    neck_splitting=True,
    drop_fragments=True,
    statistic_by_t=_floor_by_t,
)
