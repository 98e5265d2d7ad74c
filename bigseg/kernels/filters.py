"""Neighbourhood filters: disk median/maximum/minimum, contrast enhancement, 3D smoothing.

The disk filters give exactly the output of scikit-image's rank filters at a cost that does
not depend on the intensity range; the 3D Gaussian and the local maximum work in strips of
y rows, each with its context, so a task holds little beyond its input and result.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import disk

__all__ = [
    "above_background",
    "background_reach",
    "box_extreme",
    "disk_count",
    "disk_footprint",
    "disk_max",
    "disk_min",
    "enhance_contrast_disk",
    "gaussian_reach",
    "local_foreground",
    "median_disk",
    "region_box_max",
    "smooth_plane",
    "smooth_volume",
    "smoothed_above",
]


@functools.lru_cache(maxsize=32)
def disk_footprint(radius: int) -> np.ndarray:
    """Boolean disk of the given radius in pixels (scikit-image's ``disk``)."""
    return disk(radius).astype(bool)


def median_disk(plane: np.ndarray, radius: int) -> np.ndarray:
    """Median over a disk, exactly as ``skimage.filters.rank.median``.

    For uint8 and uint16 planes each window's in-image values are gathered and
    ranked (see :func:`_median_at`): the rank filter's output, faster on 12-bit
    data, with a cost that does not depend on the intensity range, and without
    the rank filter's performance warning (no warning filters needed).
    Other dtypes use ``scipy.ndimage.median_filter`` with nearest-edge padding.
    """
    if plane.dtype in (np.uint8, np.uint16):
        ys, xs = np.indices(plane.shape).reshape(2, -1)
        return _median_at(plane, ys, xs, radius).reshape(plane.shape).astype(plane.dtype)
    return ndi.median_filter(plane, footprint=disk_footprint(radius), mode="nearest")


def enhance_contrast_disk(plane: np.ndarray, radius: int) -> np.ndarray:
    """Morphological contrast enhancement over a disk.

    Each pixel becomes the local maximum when it is strictly closer to it
    than to the local minimum, else the local minimum: the same output as
    ``skimage.filters.rank.enhance_contrast``, for any dtype, at a small
    fraction of its cost on 12-bit data (the rank filter's cost grows with
    the image maximum; this one's does not).  Windows hold only in-image
    pixels, as the rank filter's do.
    """
    hi = disk_max(plane, radius)
    lo = disk_min(plane, radius)
    if plane.dtype.kind in "ui":
        wide = plane.astype(np.int64)
        closer_to_max = (hi.astype(np.int64) - wide) < (wide - lo.astype(np.int64))
    else:
        closer_to_max = (hi - plane) < (plane - lo)
    return np.where(closer_to_max, hi, lo)


def smooth_plane(plane: np.ndarray, radius: int) -> np.ndarray:
    """Smooth as the recipe does: median, then contrast enhancement, over one disk."""
    return enhance_contrast_disk(median_disk(plane, radius), radius)


@functools.lru_cache(maxsize=32)
def _disk_rows(radius: int) -> tuple[tuple[int, int], ...]:
    """``(dy, half_width)`` of every row of the disk footprint."""
    fp = disk_footprint(radius)
    return tuple((dy - radius, int(fp[dy].sum()) // 2) for dy in range(fp.shape[0]) if fp[dy].any())


@functools.lru_cache(maxsize=32)
def _disk_row_arrays(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_disk_rows` as two int64 arrays: row offsets and half widths (read-only)."""
    rows = _disk_rows(radius)
    dys = np.array([dy for dy, _ in rows], np.int64)
    ws = np.array([w for _, w in rows], np.int64)
    dys.flags.writeable = ws.flags.writeable = False
    return dys, ws


def disk_count(mask: np.ndarray, radius: int) -> np.ndarray:
    """Count the true pixels in each pixel's disk window (in-image pixels only).

    Parameters
    ----------
    mask : (Y, X) ndarray of bool
    radius : int
        Disk radius in pixels.

    Returns
    -------
    (Y, X) ndarray of uint16 (int64 for disks of 65536 pixels or more)
    """
    r = int(radius)
    ny, nx = mask.shape
    # Row sums are differences of running sums; both stay exact modulo 2**16
    # while every true sum is below 2**16.
    dtype = np.uint16 if int(disk_footprint(r).sum()) < 2**16 else np.int64
    compiled = compiled_plane(mask) if dtype == np.uint16 and nx + 2 * r < 2**31 else None
    if compiled is not None:  # the same counts, one pass per disk row without plane copies
        out = np.empty((ny, nx), dtype)
        compiled.disk_counts(np.ascontiguousarray(mask), *_disk_row_arrays(r), r, out)
        return out
    padded = np.zeros((ny + 2 * r, nx + 2 * r + 1), dtype)
    padded[r : r + ny, r + 1 : r + 1 + nx] = mask
    csum = np.cumsum(padded, axis=1, dtype=dtype, out=padded)
    out = np.zeros((ny, nx), dtype)
    runs: dict[int, np.ndarray] = {}
    for dy, w in _disk_rows(r):
        if w not in runs:
            runs[w] = csum[:, r + w + 1 : r + w + 1 + nx] - csum[:, r - w : r - w + nx]
        out += runs[w][r + dy : r + dy + ny]
    return out


def _disk_extreme(plane: np.ndarray, radius: int, *, maximum: bool) -> np.ndarray:
    r = int(radius)
    ny, nx = plane.shape
    if plane.dtype.kind == "b":
        plane = plane.view(np.uint8)
    if plane.dtype.kind == "f":
        fill = -np.inf if maximum else np.inf
    else:
        info = np.iinfo(plane.dtype)
        fill = info.min if maximum else info.max
    padded = np.full((ny + 2 * r, nx + 2 * r), fill, plane.dtype)
    padded[r : r + ny, r : r + nx] = plane
    filt = ndi.maximum_filter1d if maximum else ndi.minimum_filter1d
    pick = np.maximum if maximum else np.minimum
    # Running extremes over 2w+1 columns for each half width w of the disk's rows, narrowest
    # first; a wider run from the previous one when that covers it (run_w'[x] = extreme of
    # run_w[x - d], run_w[x], run_w[x + d] with d = w' - w <= 2w + 1): two elementwise
    # passes instead of one more filter.
    runs: dict[int, np.ndarray] = {0: padded}
    last = 0
    for w in sorted({w for _, w in _disk_rows(r)} - {0}):
        d = w - last
        if d > 2 * last + 1:
            runs[w] = filt(padded, 2 * w + 1, axis=1, mode="constant", cval=fill)
        else:
            prev = runs[last]
            run = prev.copy()
            pick(run[:, d:], prev[:, :-d], out=run[:, d:])
            pick(run[:, :-d], prev[:, d:], out=run[:, :-d])
            runs[w] = run
        last = w
    out = None
    for dy, w in _disk_rows(r):
        rows = runs[w][r + dy : r + dy + ny, r : r + nx]
        out = rows.copy() if out is None else pick(out, rows, out=out)
    return out


def disk_max(plane: np.ndarray, radius: int) -> np.ndarray:
    """Maximum over each pixel's disk window (in-image pixels only).

    The same as ``scipy.ndimage.maximum_filter(plane, footprint=disk,
    mode="nearest")`` and ``skimage.filters.rank.maximum``, faster.
    """
    if plane.size == 0:
        return plane.copy()
    return _disk_extreme(plane, radius, maximum=True)


def disk_min(plane: np.ndarray, radius: int) -> np.ndarray:
    """Minimum over each pixel's disk window (in-image pixels only); see :func:`disk_max`."""
    if plane.size == 0:
        return plane.copy()
    return _disk_extreme(plane, radius, maximum=False)


def _median_at(plane: np.ndarray, ys: np.ndarray, xs: np.ndarray, radius: int) -> np.ndarray:
    """``rank.median(plane, disk(radius))`` of a uint8/uint16 plane at pixels ``(ys, xs)``.

    Each window's values are gathered and the ``n // 2``-th smallest (0-based)
    of its ``n`` in-image values is taken: the rank filter's choice, which is
    the upper median when a window clipped by the image edge holds an even
    number of pixels.  Out-of-image places hold 65535, which sorts after (or
    ties with) every in-image value, so the first ``n`` sorted values are the
    in-image ones.  Returns uint16.  Where :func:`compiled_pays`, the window slides along
    each row of pixels instead (:func:`bigseg.kernels._compiled.median_runs`, a histogram
    of its values): the same medians.
    """
    r = int(radius)
    if plane.dtype in (np.uint8, np.uint16) and plane.ndim == 2 and compiled_pays(np.size(ys)):
        from . import _compiled as compiled  # numba: imported (and its cache read) on first use

        out = np.empty(np.size(ys), np.uint16)
        _over_disks(compiled.median_runs, plane, ys, xs, r, out)
        return out
    ny, nx = plane.shape
    width = nx + 2 * r
    padded = np.full((ny + 2 * r, width), np.iinfo(np.uint16).max, np.uint16)
    padded[r : r + ny, r : r + nx] = plane
    flat = padded.ravel()
    index_type = np.int32 if padded.size < 2**31 else np.int64
    centres = ((ys + r) * width + (xs + r)).astype(index_type)
    n_full = int(disk_footprint(r).sum())
    out = np.empty(ys.size, np.uint16)
    # Windows wholly inside the image all hold n_full values: one fixed rank.
    inside = (ys >= r) & (ys < ny - r) & (xs >= r) & (xs < nx - r)
    step = max(1, (1 << 21) // n_full)  # bounds the gathered block to a few MB
    for subset, full in ((np.flatnonzero(inside), True), (np.flatnonzero(~inside), False)):
        for start in range(0, subset.size, step):
            chunk = subset[start : start + step]
            values = _gather_disks(flat, centres[chunk], width, r, n_full)
            if full:
                out[chunk] = np.partition(values, n_full // 2, axis=1)[:, n_full // 2]
            else:
                counts = _window_sizes(ny, nx, r)[ys[chunk], xs[chunk]]
                out[chunk] = np.sort(values, axis=1)[np.arange(chunk.size), counts // 2]
    return out


def _gather_disks(
    flat: np.ndarray, centres: np.ndarray, width: int, radius: int, size: int
) -> np.ndarray:
    """Return the disk window of every centre of a flattened padded plane, one row each.

    Copied run by run (one horizontal run of the disk per row offset), each
    run as one fixed-size item of a byte view of ``flat`` (overlapping items,
    one per start pixel): a fraction of the cost of an index per pixel.  Within a
    row the values are in no particular order.
    """
    flat = np.ascontiguousarray(flat)
    item = flat.dtype.itemsize
    out = np.empty((centres.size, size), flat.dtype)
    col = 0
    for dy, w in _disk_rows(radius):
        k = 2 * w + 1
        runs = np.ndarray(
            buffer=flat,
            dtype=np.dtype((np.void, k * item)),
            shape=(flat.size - k + 1,),
            strides=(item,),
        )
        out[:, col : col + k] = runs[centres + (dy * width - w)].view(flat.dtype).reshape(-1, k)
        col += k
    return out


def _window_sizes(ny: int, nx: int, radius: int) -> np.ndarray:
    """In-image pixels of each pixel's disk window (read-only, cached per shape)."""
    return _window_sizes_cached(int(ny), int(nx), int(radius))


@functools.lru_cache(maxsize=4)
def _window_sizes_cached(ny: int, nx: int, radius: int) -> np.ndarray:
    sizes = disk_count(np.ones((ny, nx), bool), radius)
    sizes.flags.writeable = False
    return sizes


def _disk_extremes_at(plane: np.ndarray, ys: np.ndarray, xs: np.ndarray, radius: int):
    """:func:`disk_max` and :func:`disk_min` of ``plane`` at pixels ``(ys, xs)`` (int64)."""
    compiled = compiled_plane(plane)
    if compiled is None:
        return (
            disk_max(plane, radius)[ys, xs].astype(np.int64),
            disk_min(plane, radius)[ys, xs].astype(np.int64),
        )
    high = np.empty(np.size(ys), plane.dtype)
    low = np.empty(np.size(ys), plane.dtype)
    _over_disks(compiled.disk_extremes_at, plane, ys, xs, int(radius), high, low)
    return high.astype(np.int64), low.astype(np.int64)


def _over_disks(loop, plane: np.ndarray, ys, xs, radius: int, *out: np.ndarray) -> None:
    """Run a compiled loop over the disk windows of pixels ``(ys, xs)``, filling ``out``.

    ``loop(plane, ys, xs, dys, ws, *out)`` takes the disk as its rows (``dys``, half
    widths ``ws``: :func:`_disk_row_arrays`).
    """
    dys, ws = _disk_row_arrays(radius)
    loop(
        np.ascontiguousarray(plane),
        np.ascontiguousarray(ys, np.int64),
        np.ascontiguousarray(xs, np.int64),
        dys,
        ws,
        *out,
    )


def smoothed_above(plane: np.ndarray, threshold: float, radius: int) -> np.ndarray:
    """Foreground of the smoothed plane: exactly ``smooth_plane(plane, radius) > threshold``.

    For uint8 and uint16 planes the smoothed plane is never computed in
    full.  With ``M`` the disk median and ``H``, ``L`` the disk maximum and
    minimum of ``M``, the smoothed value is ``H`` or ``L``, so a pixel is
    foreground where ``L > threshold``, background where ``H <= threshold``, and
    only in between does the choice between ``H`` and ``L`` matter.  Whether
    ``M > threshold`` is a count (``M`` is the ``n // 2``-th smallest of ``n``
    window values), so these cases come from three disk counts of boolean
    images; the median itself is computed only near the foreground edges,
    where the case is open.  The cost does not depend on the intensity range.
    Other dtypes fall back to :func:`smooth_plane`.

    Parameters
    ----------
    plane : (Y, X) ndarray
    threshold : float
    radius : int
        Disk radius of the median and contrast filters, pixels.

    Returns
    -------
    (Y, X) ndarray of bool
    """
    if plane.dtype not in (np.uint8, np.uint16):
        return smooth_plane(plane, radius) > threshold
    out = np.zeros(plane.shape, bool)
    above = plane > threshold
    if plane.size == 0 or not above.any():
        return out
    r = int(radius)
    n = _window_sizes(*plane.shape, r)  # in-image pixels per window
    median_above = disk_count(above, r) >= n - n // 2  # M > threshold
    if not median_above.any():
        return out
    count = disk_count(median_above, r)
    low_above = count == n  # L > threshold: foreground whatever is picked
    open_case = (count > 0) & ~low_above  # L <= threshold < H
    out[low_above] = True
    if not open_case.any():
        return out
    # The median where H and L of open pixels need it, then H and L there.
    ys, xs = np.nonzero(disk_count(open_case, r) > 0)
    med = _median_at(plane, ys, xs, r)
    # Every window of an open pixel lies inside the computed medians, so the
    # value left elsewhere never reaches ``hi`` or ``lo``.
    oy, ox = np.nonzero(open_case)
    medians = np.zeros(plane.shape, np.uint16)
    medians[ys, xs] = med
    hi, lo = _disk_extremes_at(medians, oy, ox, r)
    mid = medians[oy, ox].astype(np.int64)
    smoothed = np.where((hi - mid) < (mid - lo), hi, lo)
    out[oy, ox] = smoothed > threshold
    return out


# ------------------------------------------------------------------ 3D smoothing


#: Gaussian kernels are cut at this many standard deviations.
TRUNCATE = 3.0


#: Working arrays of the smoothing and of the local maximum are built this many bytes at a time
#: (strips of y rows with their context), so a task needs little beyond its input and result.
STRIP_BYTES = 8 << 20


def _strips(n: int, margin: tuple[int, int], reach: int, row_bytes: int):
    """Yield ``(y0, y1, lo, hi)``: kept rows ``[y0, y1)`` and, with context, ``[lo, hi)``.

    The kept range is ``[margin[0], n - margin[1])``; each strip is grown by
    ``reach`` rows (none past ``0`` or ``n``, where the block's own edge holds).
    """
    first, last = margin[0], n - margin[1]
    rows = max(1, STRIP_BYTES // max(row_bytes, 1) - 2 * reach)
    for y0 in range(first, last, rows):
        y1 = min(y0 + rows, last)
        yield y0, y1, max(y0 - reach, 0), min(y1 + reach, n)


def smooth_volume(
    block: np.ndarray,
    sigma: Sequence[float],
    *,
    margin: Sequence[tuple[int, int]] | None = None,
) -> np.ndarray:
    """Gaussian smoothing of a ``(z, y, x)`` block as float32, edges by nearest value.

    ``sigma`` is in voxels per axis; 0 leaves that axis alone.  ``margin``
    gives, per axis, the voxels ``(before, after)`` of ``block`` that only
    serve as context: they are left out of the result, which then equals the
    whole block's smoothing cropped by them.

    The values are those of :func:`scipy.ndimage.gaussian_filter` (1D
    Gaussians axis after axis, in its order).  The work goes in strips of y
    rows, each with the rows the y Gaussian reaches: every 1D filter line sees
    the same values as on the whole block, and besides the result a strip of
    at most :data:`STRIP_BYTES` of float32 is held.
    """
    margin = tuple(margin) if margin is not None else ((0, 0),) * block.ndim
    keep = tuple(max(n - b - a, 0) for n, (b, a) in zip(block.shape, margin))
    if block.size == 0 or 0 in keep:
        return np.zeros(keep, np.float32)
    if not np.can_cast(block.dtype, np.float32, casting="safe"):
        block = block.astype(np.float32)  # the values the smoothing sees are float32's
    if block.ndim != 3:
        return _smooth_axes(block, sigma, margin)
    out = np.empty(keep, np.float32)
    reach = int(TRUNCATE * float(sigma[1]) + 0.5) if float(sigma[1]) > 1e-15 else 0
    row_bytes = 4 * block.shape[0] * block.shape[2]
    for y0, y1, lo, hi in _strips(block.shape[1], margin[1], reach, row_bytes):
        strip_margin = (margin[0], (y0 - lo, hi - y1), margin[2])
        y = y0 - margin[1][0]
        out[:, y : y + y1 - y0] = _smooth_axes(block[:, lo:hi], sigma, strip_margin)
    return out


def _smooth_axes(block: np.ndarray, sigma: Sequence[float], margin) -> np.ndarray:
    """:func:`smooth_volume` of one piece: 1D Gaussians axis after axis, cropping as it goes.

    The first filter reads ``block`` straight into float32, the others work
    in place; each axis is cropped once it has been filtered, so the later
    axes filter only what is kept.  Returns float32, possibly a view.
    """
    out, owned = block, False  # owned: ``out`` is this function's float32 array (or a view)
    compiled = _compiled_gaussian(block.dtype)
    for axis, (s, (before, after)) in enumerate(zip(sigma, margin)):
        if float(s) > 1e-15 and compiled:  # the same values, compiled
            out = _gaussian_axis(out, float(s), axis, out if owned else None)
            owned = True
        elif float(s) > 1e-15:  # gaussian_filter's own test for a skipped axis
            out = ndi.gaussian_filter1d(
                out,
                float(s),
                axis=axis,
                output=out if owned else np.float32,
                mode="nearest",
                truncate=TRUNCATE,
            )
            owned = True
        crop = [slice(None)] * out.ndim
        crop[axis] = slice(before, out.shape[axis] - after)
        out = out[tuple(crop)]
    if not owned or not out.flags.c_contiguous:
        out = np.array(out, dtype=np.float32, order="C")
    return out


def _compiled_gaussian(dtype) -> bool:
    """Whether :func:`_gaussian_axis` smooths ``dtype`` (numbers up to 32 bits, compiled on)."""
    dtype = np.dtype(dtype)
    small = dtype.kind in "iu" and dtype.itemsize <= 4
    return (small or dtype == np.float32) and compiled_kernels() and _scipy_kernel() is not None


@functools.cache
def _scipy_kernel():
    """SciPy's own Gaussian weights (a private function: its values, whatever its version)."""
    try:
        from scipy.ndimage._filters import _gaussian_kernel1d
    except ImportError:  # another SciPy: its public filter, not the compiled copy
        return None
    return _gaussian_kernel1d


def _gaussian_axis(values: np.ndarray, sigma: float, axis: int, out) -> np.ndarray:
    """``ndi.gaussian_filter1d(values, sigma, axis, mode="nearest", truncate=TRUNCATE)``.

    Into float32 ``out`` (None: a new array; may be ``values``), bit for bit: the weights
    are SciPy's and :func:`bigseg.kernels._compiled.gaussian_axis` sums them in SciPy's
    order in float64 (``tests/test_kernels_compiled.py``), the lines of neighbouring
    columns at once instead of one strided line at a time.
    """
    from . import _compiled as compiled  # numba is imported (and its cache read) on first use

    radius = int(TRUNCATE * float(sigma) + 0.5)
    weights = np.ascontiguousarray(_scipy_kernel()(sigma, 0, radius)[::-1], np.float64)
    if out is None:
        out = np.empty(values.shape, np.float32)
    if values.ndim > 3:
        return ndi.gaussian_filter1d(
            values, sigma, axis=axis, output=out, mode="nearest", truncate=TRUNCATE
        )
    lead = (None,) * (3 - values.ndim)  # 3D views, any strides: no copy
    src, dst, axis = values[lead], out[lead], axis + len(lead)
    if axis == 2:
        compiled.gaussian_last(src, weights, dst)
    elif axis == 1:
        compiled.gaussian_axis(src, weights, dst)
    else:
        compiled.gaussian_axis(src.transpose(1, 0, 2), weights, dst.transpose(1, 0, 2))
    return out


def gaussian_reach(sigma: float) -> int:
    """Voxels of context one axis needs for a Gaussian of ``sigma`` voxels (cut at TRUNCATE)."""
    return int(TRUNCATE * float(sigma) + 0.5)


def local_foreground(
    smoothed: np.ndarray,
    floor: float,
    *,
    fraction: float,
    size: Sequence[int],
    margin: Sequence[tuple[int, int]] | None = None,
    base: float | None = None,
    by_peak: bool = False,
    bright: tuple[float, float] | None = None,
) -> np.ndarray:
    """Foreground voxels of a smoothed block: above the floor and near their local peak.

    A voxel is foreground when ``s > floor`` and ``s > base + fraction *
    (m - base)``, with ``m`` the maximum of ``s`` in a box of ``size``
    voxels (odd, per axis) around it, and ``base`` the background level (default
    ``floor``; 0 for a signal above its background, so that every nucleus is cut at
    its own half-maximum however dim).  ``margin`` gives, per axis, the voxels
    ``(before, after)`` of ``smoothed`` that only serve as context for the
    maximum: the result leaves them out.  With ``by_peak``, ``m > floor`` is asked
    instead of ``s > floor``: a nucleus is seen when its peak is above the floor, and
    then cut at its own level however close to the floor that peak is (not at the
    floor, which makes a dim nucleus smaller than it is).  With ``bright = (low,
    high)``, the base holds where ``m <= low`` and falls linearly to 0 where ``m >=
    high``: a bright nucleus is cut at ``fraction`` of its own peak, a dim one from the
    base as above.
    """
    base = floor if base is None else float(base)
    margin = tuple(margin) if margin is not None else ((0, 0),) * smoothed.ndim
    size = tuple(int(s) for s in size)
    core = tuple(slice(b, n - a) for n, (b, a) in zip(smoothed.shape, margin))
    if by_peak:
        above = np.ones(smoothed[core].shape, bool)
        if above.size == 0 or not (smoothed > floor).any():
            return np.zeros_like(above)
    else:
        above = smoothed[core] > floor
        if above.size == 0 or not above.any():
            return above
    top = floor if by_peak else None  # the peak must be above the floor
    if smoothed.ndim != 3:
        return above & _near_peak(smoothed, base, fraction, size, core, top, bright)
    # In strips of y rows, each with the rows the maximum reaches (see smooth_volume).
    for y0, y1, lo, hi in _strips(
        smoothed.shape[1], margin[1], size[1] // 2, smoothed.itemsize * smoothed[:, 0].size
    ):
        piece = (core[0], slice(y0 - lo, y0 - lo + y1 - y0), core[2])
        y = y0 - margin[1][0]
        above[:, y : y + y1 - y0] &= _near_peak(
            smoothed[:, lo:hi], base, fraction, size, piece, top, bright
        )
    return above


def _near_peak(
    smoothed, floor: float, fraction: float, size, core, top=None, bright=None
) -> np.ndarray:
    """Return ``smoothed > floor + fraction * (peak - floor)`` on ``core`` (float32 operations).

    With ``top``, also ``peak > top``.  With ``bright = (low, high)``, ``floor`` is taken
    in full where ``peak <= low`` and falls linearly to 0 where ``peak >= high``.
    """
    peak = box_extreme(smoothed, size, maximum=True, keep=_bounds(core, smoothed.shape))
    seen = peak > top if top is not None else None
    if bright is not None and floor:
        low, high = (float(v) for v in bright)
        # The base of each voxel: floor at dim peaks, 0 at bright ones (a step if low == high);
        # plane by plane, so that no second array of the strip's size is held.
        for plane in peak if peak.ndim > 1 else peak[None]:  # views: changed in place
            base = np.subtract(np.float32(high), plane, dtype=np.float32)
            if high > low:
                base *= np.float32(1.0 / (high - low))
            else:
                np.greater(base, 0, out=base)
            np.clip(base, 0, 1, out=base)
            base *= np.float32(floor)
            plane -= base
            plane *= np.float32(fraction)
            plane += base
    else:
        peak -= floor
        peak *= fraction
        peak += floor
    out = smoothed[core] > peak
    if seen is not None:
        out &= seen
    return out


def region_box_max(
    values: np.ndarray, regions: np.ndarray, size: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Return each labelled pixel's largest value in its box: in its own region, and in all.

    ``values`` and ``regions`` are 2D (float, and labels 1..n with 0 outside); the box is
    ``size`` pixels (odd) along y and x, cut by the plane's edges.  Returns ``(own,
    peak)``, float32, 0 where ``regions`` is 0; ``peak`` is :func:`box_extreme`'s maximum
    there.  A compiled loop over the labelled pixels where the compiled kernels pay, else
    a maximum filter per region (the same values for finite ``values``).
    """
    values = np.asarray(values, np.float32)
    hy, hx = (int(s) // 2 for s in size)
    own = np.zeros(values.shape, np.float32)
    peak = np.zeros(values.shape, np.float32)
    compiled = compiled_plane(values)
    if compiled is not None:
        compiled.region_box_max(
            np.ascontiguousarray(values), np.ascontiguousarray(regions), hy, hx, own, peak
        )
        return own, peak
    window = (2 * hy + 1, 2 * hx + 1)
    inside = regions > 0
    peak[inside] = ndi.maximum_filter(values, size=window, mode="nearest")[inside]
    for label, box in enumerate(ndi.find_objects(regions), start=1):
        if box is None:
            continue
        grown = tuple(
            slice(max(b.start - h, 0), min(b.stop + h, n))
            for b, h, n in zip(box, (hy, hx), values.shape)
        )
        mine = regions[grown] == label
        part = np.where(mine, values[grown], np.float32(-np.inf))
        top = ndi.maximum_filter(part, size=window, mode="constant", cval=-np.inf)
        own[grown][mine] = top[mine]
    return own, peak


def above_background(
    smoothed: np.ndarray,
    size: Sequence[int],
    *,
    margin: Sequence[tuple[int, int]] | None = None,
) -> np.ndarray:
    """Return the signal above a coarse background map: ``smoothed`` minus its opening.

    The background under every voxel is the grey opening of ``smoothed`` with a box of
    ``size`` voxels (odd, per axis; larger than any nucleus): the camera offset plus
    autofluorescence and uneven illumination, from which the nuclei are gone.  The
    result is float32 and never negative.  ``margin`` gives, per axis, the voxels
    ``(before, after)`` that only serve as context (the opening reaches ``size - 1``
    voxels per side); the result leaves them out, and equals the whole array's cropped.
    """
    margin = tuple(margin) if margin is not None else ((0, 0),) * smoothed.ndim
    core = tuple(slice(b, n - a) for n, (b, a) in zip(smoothed.shape, margin))
    size = tuple(max(1, int(s)) for s in size)
    if smoothed.size == 0:
        return np.zeros(smoothed[core].shape, np.float32)
    smoothed = np.asarray(smoothed, np.float32)
    # The opening is needed on the core only: its maximum reads the minimum within
    # ``size // 2`` of the core, which reads the block within ``size - 1``.
    keep = _bounds(core, smoothed.shape)
    half = tuple(s // 2 for s in size)
    reached = tuple(
        (max(lo - h, 0), min(hi + h, n)) for (lo, hi), h, n in zip(keep, half, smoothed.shape)
    )
    inner = tuple((lo - rlo, hi - rlo) for (lo, hi), (rlo, _) in zip(keep, reached))
    if smoothed.dtype == np.float32 and all(s % 2 for s in size) and compiled_kernels():
        buffers: list = [None]  # minimum and maximum share one working array
        low = _box_extreme(smoothed, size, False, reached, buffers)
        background = _box_extreme(low, size, True, inner, buffers, consume=True)
        del low, buffers
    else:
        background = box_extreme(box_extreme(smoothed, size, maximum=False, keep=reached), size,
                                 maximum=True, keep=inner)  # fmt: skip
    # The background's buffer (its own: never ``smoothed``) takes the result: one array of
    # the core's size less to fault in.
    out = np.asarray(background, np.float32)
    with np.errstate(invalid="ignore"):  # NaN/inf voxels are reported by the pipeline
        np.subtract(smoothed[core], background, out=out)
        np.maximum(out, 0.0, out=out)
    return out


def background_reach(size: int) -> int:
    """Voxels per side that :func:`above_background` reads for a box of ``size``."""
    return int(size) - 1


# ------------------------------------------------------------------ box extremes


def _bounds(core: tuple[slice, ...], shape: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """``(start, stop)`` per axis of a tuple of slices of an array of ``shape``."""
    return tuple(sl.indices(n)[:2] for sl, n in zip(core, shape))


def box_extreme(
    values: np.ndarray,
    size: Sequence[int],
    *,
    maximum: bool,
    keep: Sequence[tuple[int, int]] | None = None,
) -> np.ndarray:
    """Maximum (or minimum) over a box of ``size`` voxels around each voxel, on ``keep`` only.

    The values of ``scipy.ndimage.maximum_filter(values, size=size, mode="nearest")``
    (``minimum_filter``), cropped to ``keep`` (``(start, stop)`` per axis, default the
    whole array), computed only there: one axis after the other, each cropped to what the
    later axes read, with van Herk / Gil-Werman running extremes (three comparisons per
    voxel and axis whatever the box) in a compiled loop that releases the GIL.  Sizes
    must be odd for that path; even sizes, dtypes other than float32/float64 and arrays
    holding NaN go through SciPy (the same values).

    Parameters
    ----------
    values : ndarray
    size : sequence of int
        Box size per axis, voxels.
    maximum : bool
        The maximum (else the minimum).
    keep : sequence of (int, int), optional
        The part of the result wanted, per axis.

    Returns
    -------
    ndarray
        Of ``values``' dtype, shape ``stop - start`` per axis.
    """
    size = tuple(int(s) for s in size)
    keep = tuple(keep) if keep is not None else tuple((0, n) for n in values.shape)
    crop = tuple(slice(lo, hi) for lo, hi in keep)
    if values.size == 0 or any(hi <= lo for lo, hi in keep):
        return np.array(values[crop])
    if (
        values.dtype not in (np.float32, np.float64)
        or any(s % 2 == 0 for s in size)
        or not compiled_kernels()
    ):
        return _scipy_extreme(values, size, maximum, crop)
    return _box_extreme(values, size, maximum, keep, [None])


#: Environment variable that turns the compiled kernels off (``0``): SciPy's filters then
#: give the same values, about half as fast, without numba's ~145 MiB per process.
COMPILED_VARIABLE = "BIGSEG_COMPILED"


def compiled_kernels() -> bool:
    """Whether the compiled (numba) kernels are used: numba installed and not turned off.

    ``BIGSEG_COMPILED=0`` in the environment of the processes that run the kernels (the
    workers) turns them off; ``bigseg segment`` does so for a local cluster of workers
    smaller than :data:`bigseg.cli.COMPILED_MIN_WORKER`, where numba's memory would be a
    large part of each worker's.
    """
    if os.environ.get(COMPILED_VARIABLE, "1").strip() == "0":
        return False
    return _numba_installed()


def compiled_pays(work: int) -> bool:
    """Whether a kernel whose NumPy code is a fair second runs its compiled loop: ``work`` items.

    Where the compiled kernels are on (:func:`compiled_kernels`) and numba is loaded in this
    process already (a local cluster's memory budget loads it, and so does the default
    method's smoothing), or the call has at least :data:`COMPILED_PAYS` items: numba's
    import and first cached function (about 0.3 s) would cost a small call more than the
    loop saves (the seed method's disk median, the size filter and the hole filling).  The
    values are the same either way.
    """
    return compiled_kernels() and ("numba" in sys.modules or int(work) >= COMPILED_PAYS)


def compiled_plane(plane: np.ndarray):
    """Return the compiled loops for a 2D plane where they pay, or None (NumPy/SciPy then)."""
    if plane.ndim != 2 or plane.size == 0 or not compiled_pays(plane.size):
        return None
    from . import _compiled as compiled  # numba: imported (and its cache read) on first use

    return compiled


#: Items from which a call loads numba for a loop :func:`compiled_pays` asks about.
COMPILED_PAYS = 1 << 21


@functools.cache
def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


def _box_extreme(
    values, size, maximum: bool, keep, buffers: list, *, consume: bool = False
) -> np.ndarray:
    """:func:`box_extreme` (float, odd sizes) in one reused working buffer.

    The first axis reads ``values`` and writes a buffer; each later axis runs in place in
    it (the compiled loops read each line, or each group of columns, whole before they
    write its result, which is never longer: ``tests/test_kernels_compiled.py``).  So the
    whole filter, however many axes, holds one array besides its input (SciPy's separable
    filter: one too, but of the whole input; fresh memory costs more than the passes on
    some machines: docs/speed.md).  ``buffers`` (a list of one) may carry it from a
    previous call, whose result (in it) can be this call's ``values``: with ``consume``
    the first axis runs in place too, over ``values``, which must then be that buffer's
    view (free of NaN: the earlier call checked).  The result is a view of the buffer.
    """
    from . import _compiled as compiled  # numba is imported (and its cache read) on first use

    crop = tuple(slice(lo, hi) for lo, hi in keep)
    fill = values.dtype.type(-np.inf if maximum else np.inf)
    consume = (  # ``values`` the buffer's own view, from its start (else: a first pass as usual)
        consume
        and buffers[0] is not None
        and values.flags.c_contiguous
        and values.ctypes.data == buffers[0].ctypes.data
    )
    out = values
    # Each axis's result is needed where the axes filtered later read it: the kept
    # range of the axes not yet filtered stays whole.
    for axis, (s, (lo, hi)) in enumerate(zip(size, keep)):
        n = out.shape[axis]
        if s == 1 and (lo, hi) == (0, n):
            continue
        pre = int(np.prod(out.shape[:axis], dtype=np.int64))
        post = int(np.prod(out.shape[axis + 1 :], dtype=np.int64))
        shape = out.shape[:axis] + (hi - lo,) + out.shape[axis + 1 :]
        src = np.ascontiguousarray(out).reshape(pre, n, post)
        needed = pre * (hi - lo) * post
        first = out is values and not consume  # later passes: in place, ``out`` at its start
        if first and (
            buffers[0] is None or buffers[0].size < needed or buffers[0].dtype != values.dtype
        ):
            buffers[0] = np.empty(needed, values.dtype)
        result = buffers[0][:needed].reshape(shape)
        if not compiled.box_extreme_axis(
            src, s // 2, lo, hi, maximum, fill, result.reshape(pre, -1, post)
        ):  # (only the first axis meets a NaN: the later ones read its extremes)
            return _scipy_extreme(values, size, maximum, crop)  # NaN: SciPy's order of picks
        out = result
    return out if out is not values else np.array(values[crop])


def _scipy_extreme(values, size, maximum: bool, crop) -> np.ndarray:
    filt = ndi.maximum_filter if maximum else ndi.minimum_filter
    return np.ascontiguousarray(filt(values, size=size, mode="nearest")[crop])
