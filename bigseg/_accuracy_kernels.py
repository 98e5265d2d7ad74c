"""Kernels of the ``default`` preset: NumPy in, NumPy out, no dask.

The default preset finds nuclei whose brightness varies about tenfold:

1. the stack is smoothed in 3D with a Gaussian whose size is given in µm
   (:func:`smooth_volume`), so anisotropic voxels are handled;
2. one global *floor* per time point separates nuclei from background: the
   Otsu threshold of the histogram of ``log(smoothed - offset + 1)``
   (:func:`log_histogram`, :func:`log_otsu_from_counts`), computed once, as
   its own step; on a log scale a dim nucleus and a bright one are as far
   from the background;
3. each voxel is foreground when it is above the floor *and* above a fixed
   fraction of the way from the floor to the brightest smoothed value
   within ``local_radius`` µm (:func:`local_foreground`), so every nucleus is
   cut near its own half-maximum whatever its brightness, and touching
   nuclei of unequal brightness stay apart;
4. each plane of the foreground is split with the distance transform and
   watershed of the recipe (:func:`segment_foreground`).

Every kernel accepts an empty or all-background block and returns a
correctly typed result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from ._kernels import LABEL_DTYPE, filter_sizes, watershed_plane

#: Bins of the log-intensity histogram behind the global floor.
LOG_BINS = 4096
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
    for axis, (s, (before, after)) in enumerate(zip(sigma, margin)):
        if float(s) > 1e-15:  # gaussian_filter's own test for a skipped axis
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


def halo(sigma: float, radius: int) -> int:
    """Voxels of context one axis needs: Gaussian reach plus maximum-filter radius."""
    return int(TRUNCATE * float(sigma) + 0.5) + int(radius)


def log_histogram(
    values: np.ndarray, *, offset: float, log_max: float, nbins: int = LOG_BINS
) -> np.ndarray:
    """Count ``log(values - offset + 1)`` in ``nbins`` bins over ``[0, log_max]`` (int64).

    Values below ``offset`` count in the first bin, above the range in the last.
    """
    counts = np.zeros(nbins, np.int64)
    if values.size == 0:
        return counts
    # NaN/inf voxels are counted and reported by the pipeline's finite check, not here.
    with np.errstate(invalid="ignore", over="ignore"):
        logs = np.log(np.maximum(values.astype(np.float64, copy=False) - offset, 0.0) + 1.0)
        index = np.clip((logs * (nbins / max(log_max, 1e-12))).astype(np.int64), 0, nbins - 1)
    counts += np.bincount(index.ravel(), minlength=nbins)
    return counts


def log_otsu_from_counts(counts: np.ndarray, *, offset: float, log_max: float) -> float:
    """Return the floor: Otsu's threshold of a :func:`log_histogram`, in intensity units.

    An all-empty or one-valued histogram gives the value of its only bin (no
    voxel is strictly above it).
    """
    from skimage.filters import threshold_otsu

    counts = np.asarray(counts, np.int64)
    nbins = counts.size
    width = max(log_max, 1e-12) / nbins
    nonzero = np.flatnonzero(counts)
    if nonzero.size == 0:
        return float(offset)
    lo, hi = nonzero[0], nonzero[-1] + 1
    # A bin's upper edge: values in bins at or below the threshold bin are background.
    if hi - lo == 1:
        log_t = (lo + 1) * width
    else:
        centers = (np.arange(lo, hi) + 0.5) * width
        log_t = float(threshold_otsu(hist=(counts[lo:hi], centers))) + 0.5 * width
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf input: reported elsewhere
        return float(np.exp(log_t) - 1.0 + offset)


def local_foreground(
    smoothed: np.ndarray,
    floor: float,
    *,
    fraction: float,
    size: Sequence[int],
    margin: Sequence[tuple[int, int]] | None = None,
) -> np.ndarray:
    """Foreground voxels of a smoothed block: above the floor and near their local peak.

    A voxel is foreground when ``s > floor`` and ``s > floor + fraction *
    (m - floor)``, with ``m`` the maximum of ``s`` in a box of ``size``
    voxels (odd, per axis) around it.  ``margin`` gives, per axis, the voxels
    ``(before, after)`` of ``smoothed`` that only serve as context for the
    maximum: the result leaves them out.
    """
    margin = tuple(margin) if margin is not None else ((0, 0),) * smoothed.ndim
    size = tuple(int(s) for s in size)
    core = tuple(slice(b, n - a) for n, (b, a) in zip(smoothed.shape, margin))
    above = smoothed[core] > floor
    if above.size == 0 or not above.any():
        return above
    if smoothed.ndim != 3:
        return above & _near_peak(smoothed, floor, fraction, size, core)
    # In strips of y rows, each with the rows the maximum reaches (see smooth_volume).
    for y0, y1, lo, hi in _strips(
        smoothed.shape[1], margin[1], size[1] // 2, smoothed.itemsize * smoothed[:, 0].size
    ):
        piece = (core[0], slice(y0 - lo, y0 - lo + y1 - y0), core[2])
        y = y0 - margin[1][0]
        above[:, y : y + y1 - y0] &= _near_peak(smoothed[:, lo:hi], floor, fraction, size, piece)
    return above


def _near_peak(smoothed, floor: float, fraction: float, size, core) -> np.ndarray:
    """Return ``smoothed > floor + fraction * (peak - floor)`` on ``core`` (float32 operations)."""
    peak = ndi.maximum_filter(smoothed, size=size, mode="nearest")[core]
    peak -= floor
    peak *= fraction
    peak += floor
    return smoothed[core] > peak


def segment_foreground(
    foreground: np.ndarray,
    *,
    min_distance: int,
    min_radius: float,
    max_radius: float,
) -> np.ndarray:
    """Split every plane of a ``(..., y, x)`` foreground mask into regions (int32, 1..n per plane).

    Per plane: Euclidean distance transform, markers at distance peaks at
    least ``min_distance`` pixels apart, watershed, and regions kept when
    ``min_radius < sqrt(area / pi) < max_radius`` (pixels).
    """
    out = np.zeros(foreground.shape, LABEL_DTYPE)
    if foreground.size == 0:
        return out
    flat_in = foreground.reshape((-1, *foreground.shape[-2:]))
    flat_out = out.reshape(flat_in.shape)
    for i, plane in enumerate(flat_in):
        if plane.any():
            labels = watershed_plane(plane, min_distance=min_distance)
            flat_out[i] = filter_sizes(labels, min_radius=min_radius, max_radius=max_radius)
    return out
