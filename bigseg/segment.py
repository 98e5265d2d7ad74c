"""Thin dask wrappers that map the per-plane kernels over chunks.

Nothing here computes: each function returns lazy xarray/dask objects.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from . import _kernels, _stitch
from ._errors import InputError
from .params import Params, PixelParams
from .stack import as_4d, scale_of

__all__ = ["global_threshold", "segment"]


def _whole_planes(data: da.Array) -> da.Array:
    """Rechunk so every chunk holds whole (y, x) planes."""
    if len(data.chunks[-1]) == 1 and len(data.chunks[-2]) == 1:
        return data
    return data.rechunk({data.ndim - 2: -1, data.ndim - 1: -1})


def global_threshold(stack: xr.DataArray, *, params: Params | None = None) -> xr.DataArray:
    """Global threshold, one per time point (lazy).

    Without ``params``, or with the ``seed`` preset: the Otsu threshold of the
    raw maximum projection.  For 8- and 16-bit integer data this equals
    ``skimage.filters.threshold_otsu(stack.max("z"))`` exactly, computed from
    per-block histograms so that no whole projection is ever held in memory.

    With the ``default`` preset: the floor of :mod:`bigseg._accuracy_kernels`,
    Otsu's threshold of the log-intensity histogram of the smoothed stack.

    Parameters
    ----------
    stack : xarray.DataArray
        From :func:`bigseg.open_stack`; dims ``(z, y, x)`` or ``(t, z, y, x)``.
    params : Params, optional
        Which preset's statistic to compute; the recipe's Otsu when omitted.

    Returns
    -------
    xarray.DataArray
        Dims ``("t",)`` for a 4D stack, a 0-d array for a 3D stack.
    """
    if params is not None and params.preset == "default":
        from ._local import local_floor

        return local_floor(stack, params)
    four = as_4d(stack)
    data = four.data
    projection = data.max(axis=1)  # (t, y, x), lazy
    if data.dtype in (np.uint8, np.uint16):
        nbins = int(np.iinfo(data.dtype).max) + 1
        # One histogram per block, summed over y/x blocks: one per time point.
        counts = _sum_over_blocks(projection, nbins)
        values = da.map_blocks(_otsu_rows, counts, drop_axis=[1], dtype=np.float64)
    else:
        values = da.map_blocks(
            _otsu_planes,
            projection.rechunk({1: -1, 2: -1}),
            drop_axis=[1, 2],
            dtype=np.float64,
        )
    out = xr.DataArray(values, dims=("t",), coords={"t": four.t.values}, name="threshold")
    return out if "t" in stack.dims else out.isel(t=0)


def _sum_over_blocks(projection: da.Array, nbins: int) -> da.Array:
    per_block = da.map_blocks(
        _block_counts_3d,
        projection,
        nbins,
        chunks=(
            projection.chunks[0],
            (1,) * projection.numblocks[1],
            (1,) * projection.numblocks[2],
            (nbins,),
        ),
        new_axis=[3],
        dtype=np.int64,
    )
    return per_block.sum(axis=(1, 2))


def _block_counts_3d(block: np.ndarray, nbins: int) -> np.ndarray:
    out = np.zeros((block.shape[0], 1, 1, nbins), np.int64)
    for i, plane in enumerate(block):
        out[i, 0, 0] = np.bincount(plane.ravel(), minlength=nbins)
    return out


def _otsu_rows(counts: np.ndarray) -> np.ndarray:
    return np.array([_kernels.otsu_from_counts(row) for row in counts], np.float64)


def _otsu_planes(block: np.ndarray) -> np.ndarray:
    from skimage.filters import threshold_otsu

    return np.array([float(threshold_otsu(plane)) for plane in block], np.float64)


def segment(
    stack: xr.DataArray,
    *,
    params: Params | None = None,
    threshold: float | xr.DataArray | np.ndarray | None = None,
    stitch: bool | None = None,
) -> xr.DataArray:
    """Segment every plane of a stack into nucleus cross-sections (lazy).

    Parameters
    ----------
    stack : xarray.DataArray
        From :func:`bigseg.open_stack`; dims ``(z, y, x)`` or ``(t, z, y, x)``.
    params : Params, optional
        Sizes in µm; default ``Params.from_preset("default")``.
    threshold : float or array of one value per time point, optional
        Foreground threshold (the floor, for the ``default`` preset); by
        default :func:`global_threshold` for ``params``, computed lazily as
        its own step of the same graph.
    stitch : bool, optional
        Planes split into y/x chunks are segmented block by block with a halo
        and their labels stitched (see :mod:`bigseg._stitch`): ``None``
        (default) when the chunks are at least the halo, else whole planes;
        ``True`` always (an error names the minimum chunk size); ``False``
        never.

    Returns
    -------
    xarray.DataArray
        Plane-local labels (int32, 1..n per plane, 0 = background) with the
        stack's dims and coordinates; chunks hold whole planes, or the
        stack's y/x chunks when stitched.
    """
    params = params or Params()
    px = params.in_pixels(scale_of(stack), scale_source=stack.attrs.get("scale_source", "array"))
    four = as_4d(stack)
    thresholds = _threshold_array(four, stack, threshold, params)
    split = _stitch.plan(four.data, px, stitch, params.preset)
    if split is not None:
        halo = _stitch.halo_px(px, params.preset)
        kernel = _stitch.block_kernel(params.preset)
        source, image = _stitch.block_input(split, thresholds, params, scale_of(stack))
        block_px = _stitch.block_px(px, params.preset)
        labels = _stitch.segment_stitched(
            source, thresholds, block_px, kernel, halo=halo, image=image
        )
        out = xr.DataArray(labels, dims=four.dims, coords=four.coords, attrs=dict(stack.attrs))
        out.attrs["params"] = params.to_dict()
        out.name = "labels"
        return out if "t" in stack.dims else out.isel(t=0)
    if params.preset == "default":
        from ._local import segment_local

        local = segment_local(four.data, thresholds, params, scale_of(stack))
        out = xr.DataArray(local, dims=four.dims, coords=four.coords, attrs=dict(stack.attrs))
        out.name = "labels"
        out.attrs["params"] = params.to_dict()
        return out if "t" in stack.dims else out.isel(t=0)
    data = _whole_planes(four.data)
    thr = thresholds.reshape((-1, 1, 1, 1)).rechunk((data.chunks[0], 1, 1, 1))
    labels = da.map_blocks(
        _segment_block,
        data,
        thr,
        px,
        dtype=_kernels.LABEL_DTYPE,
        meta=np.empty((0, 0, 0, 0), _kernels.LABEL_DTYPE),
    )
    out = xr.DataArray(
        labels, dims=four.dims, coords=four.coords, attrs=dict(stack.attrs), name="labels"
    )
    out.attrs["params"] = params.to_dict()
    return out if "t" in stack.dims else out.isel(t=0)


def _threshold_array(
    four: xr.DataArray, stack: xr.DataArray, value, params: Params | None = None
) -> da.Array:
    n_t = four.sizes["t"]
    if value is None:
        value = global_threshold(stack, params=params)
    if isinstance(value, xr.DataArray):
        value = value.data
    arr = value if isinstance(value, da.Array) else da.from_array(np.asarray(value, np.float64))
    arr = arr.astype(np.float64).reshape(-1) if arr.ndim else arr.astype(np.float64)[None]
    if arr.shape[0] == 1 and n_t > 1:
        arr = da.broadcast_to(arr, (n_t,))
    if arr.shape[0] != n_t:
        raise InputError(
            f"threshold has {arr.shape[0]} values but the stack has {n_t} time points; "
            "give one value, or one per time point."
        )
    return arr


def _segment_block(block: np.ndarray, thresholds: np.ndarray, px: PixelParams) -> np.ndarray:
    out = np.zeros(block.shape, _kernels.LABEL_DTYPE)
    for t in range(block.shape[0]):
        for z in range(block.shape[1]):
            out[t, z] = _kernels.segment_plane(
                block[t, z],
                float(thresholds[t, 0, 0, 0]),
                smooth_radius=px.smooth_radius,
                min_distance=px.min_distance,
                min_radius=px.min_radius,
                max_radius=px.max_radius,
            )
    return out
