"""The ``seed`` method: the 2014 scikit-image recipe, exactly.

Statistic: the Otsu threshold of the raw maximum projection, one per time point.  Kernel:
per plane, median and contrast enhancement over a disk, threshold, distance transform,
distance-peak markers, watershed, size filter (:func:`bigseg.kernels.watershed.segment_plane`).
"""

from __future__ import annotations

import functools

import dask.array as da
import numpy as np
import xarray as xr

from ..chunked.maps import per_t_statistic
from ..kernels import LABEL_DTYPE
from ..kernels.filters import smoothed_above
from ..kernels.threshold import otsu_from_counts, otsu_of, value_counts
from ..kernels.watershed import segment_plane
from ..params import Params, PixelParams
from ..stack import as_4d
from .base import Method

__all__ = ["METHOD", "recipe_otsu", "segment_planes", "smoothed_planes"]


def recipe_otsu(stack: xr.DataArray, params: Params | None = None) -> xr.DataArray:
    """Otsu threshold of the raw maximum projection, one per time point (lazy).

    For 8- and 16-bit integer data this equals
    ``skimage.filters.threshold_otsu(stack.max("z"))`` exactly, computed from per-block
    histograms so that no whole projection is ever held in memory.

    Returns
    -------
    xarray.DataArray
        Dims ``("t",)`` for a 4D stack, a 0-d array for a 3D stack.
    """
    four = as_4d(stack)
    data = four.data
    projection = data.max(axis=1)  # (t, y, x), lazy
    if data.dtype in (np.uint8, np.uint16):
        nbins = int(np.iinfo(data.dtype).max) + 1
        count = functools.partial(value_counts, nbins=nbins)
        values = per_t_statistic(projection, count, otsu_from_counts, nbins=nbins)
    else:
        values = da.map_blocks(
            _otsu_planes,
            projection.rechunk({1: -1, 2: -1}),
            drop_axis=[1, 2],
            dtype=np.float64,
        )
    out = xr.DataArray(values, dims=("t",), coords={"t": four.t.values}, name="threshold")
    return out if "t" in stack.dims else out.isel(t=0)


def _otsu_planes(block: np.ndarray) -> np.ndarray:
    return np.array([otsu_of(plane) for plane in block], np.float64)


def segment_planes(block: np.ndarray, thresholds: np.ndarray, px: PixelParams) -> np.ndarray:
    """Segment every plane of a ``(t, z, y, x)`` block with the recipe (int32 labels, 1..n)."""
    out = np.zeros(block.shape, LABEL_DTYPE)
    for t in range(block.shape[0]):
        for z in range(block.shape[1]):
            out[t, z] = segment_plane(
                block[t, z],
                float(thresholds[t, 0, 0, 0]),
                smooth_radius=px.smooth_radius,
                min_distance=px.min_distance,
                min_radius=px.min_radius,
                max_radius=px.max_radius,
            )
    return out


def smoothed_planes(block: np.ndarray, thresholds: np.ndarray, px: PixelParams) -> np.ndarray:
    """Return the mask :func:`segment_planes` splits: each plane smoothed, above its threshold."""
    out = np.zeros(block.shape, bool)
    for t in range(block.shape[0]):
        for z in range(block.shape[1]):
            if block[t, z].size:
                out[t, z] = smoothed_above(
                    block[t, z], float(thresholds[t, 0, 0, 0]), px.smooth_radius
                )
    return out


METHOD = Method(
    name="seed",
    statistic=recipe_otsu,
    kernel=segment_planes,
    foreground=smoothed_planes,
    preset={"neck_ratio": None},
)
