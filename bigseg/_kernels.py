"""Per-plane segmentation kernels: NumPy in, NumPy out, no dask.

Every kernel accepts an empty or all-background plane and returns a correctly
typed result.  The dask wrappers in :mod:`bigseg.segment` map them over chunks.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.morphology import disk
from skimage.segmentation import watershed

LABEL_DTYPE = np.int32


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


# ------------------------------------------------------------------ disk windows
#
# A disk is a stack of horizontal runs, one per row offset ``dy`` with half width
# ``w(dy)``.  Sums, maxima and minima over a disk are the sum / max / min over its
# rows of 1D running sums / maxima / minima, which cost O(1) per pixel each.
# Out-of-image pixels are excluded from every window (as in scikit-image's rank
# filters) by padding with a neutral value: 0 for sums, the dtype's lowest value
# for maxima and its highest for minima.


@functools.lru_cache(maxsize=32)
def _disk_rows(radius: int) -> tuple[tuple[int, int], ...]:
    """``(dy, half_width)`` of every row of the disk footprint."""
    fp = disk_footprint(radius)
    return tuple((dy - radius, int(fp[dy].sum()) // 2) for dy in range(fp.shape[0]) if fp[dy].any())


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
    in-image ones.  Returns uint16.
    """
    r = int(radius)
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
    hi = disk_max(medians, r)[oy, ox].astype(np.int64)
    lo = disk_min(medians, r)[oy, ox].astype(np.int64)
    mid = medians[oy, ox].astype(np.int64)
    smoothed = np.where((hi - mid) < (mid - lo), hi, lo)
    out[oy, ox] = smoothed > threshold
    return out


def distance_to_background(binary: np.ndarray) -> np.ndarray:
    """Exactly ``scipy.ndimage.distance_transform_edt(binary)``, cheaper on sparse planes.

    The nearest background pixel of a foreground pixel always lies inside the
    bounding box of its connected component grown by one pixel (along the row
    or column towards any farther pixel, the grown box's edge is background or
    has background before it), so each component's distances come from a
    transform of that small box.  Falls back to one whole-plane transform when
    the boxes would cost more.
    """
    binary = np.asarray(binary, bool)
    out = np.zeros(binary.shape, np.float64)
    if binary.ndim != 2 or not binary.any():
        return ndi.distance_transform_edt(binary) if binary.ndim != 2 else out
    labels, n = ndi.label(binary)
    boxes = ndi.find_objects(labels)
    ny, nx = binary.shape
    grown = [
        (
            slice(max(b[0].start - 1, 0), min(b[0].stop + 1, ny)),
            slice(max(b[1].start - 1, 0), min(b[1].stop + 1, nx)),
        )
        for b in boxes
    ]
    area = sum((b[0].stop - b[0].start) * (b[1].stop - b[1].start) for b in grown)
    # About 40 µs of overhead per box against ~80 ns per pixel of transform.
    if area + 500 * n >= binary.size:
        return ndi.distance_transform_edt(binary)
    for i, box in enumerate(grown, start=1):
        own = labels[box] == i
        out[box][own] = ndi.distance_transform_edt(binary[box])[own]
    return out


def watershed_plane(binary: np.ndarray, *, min_distance: int) -> np.ndarray:
    """Split a binary plane into regions: EDT, distance peaks as markers, watershed."""
    if not binary.any():
        return np.zeros(binary.shape, LABEL_DTYPE)
    distance = distance_to_background(binary)
    peaks = peak_local_max(distance, min_distance=min_distance, labels=binary)
    marker_mask = np.zeros(binary.shape, bool)
    marker_mask[tuple(peaks.T)] = True
    markers, _ = ndi.label(marker_mask)
    return watershed(-distance, markers, mask=binary).astype(LABEL_DTYPE, copy=False)


def filter_sizes(labels: np.ndarray, *, min_radius: float, max_radius: float) -> np.ndarray:
    """Keep regions with ``min_radius < sqrt(area / pi) < max_radius``, renumbered 1..n.

    Radii are in pixels.  Uses one ``bincount``, no loop over labels.
    """
    if labels.max(initial=0) == 0:
        return np.zeros(labels.shape, LABEL_DTYPE)
    area = np.bincount(labels.ravel())
    radius = np.sqrt(area / np.pi)
    keep = (min_radius < radius) & (radius < max_radius)
    keep[0] = False
    lut = np.zeros(area.size, LABEL_DTYPE)
    lut[keep] = np.arange(1, keep.sum() + 1, dtype=LABEL_DTYPE)
    return lut[labels]


def segment_plane(
    plane: np.ndarray,
    threshold: float,
    *,
    smooth_radius: int,
    min_distance: int,
    min_radius: float,
    max_radius: float,
) -> np.ndarray:
    """Segment one 2D plane into nucleus cross-sections (labels 1..n, 0 = background).

    The seed recipe: smooth, threshold, EDT, peak markers, watershed, size filter.

    Parameters
    ----------
    plane : (Y, X) ndarray
        Raw intensities.
    threshold : float
        Foreground is ``smoothed > threshold``.
    smooth_radius : int
        Disk radius of the median and contrast filters, pixels.
    min_distance : int
        Minimum distance between watershed markers, pixels.
    min_radius, max_radius : float
        Equivalent-radius bounds (pixels, exclusive) of regions to keep.

    Returns
    -------
    (Y, X) ndarray of int32
        Plane-local labels.
    """
    if plane.size == 0:
        return np.zeros(plane.shape, LABEL_DTYPE)
    binary = smoothed_above(plane, threshold, smooth_radius)
    if not binary.any():
        return np.zeros(plane.shape, LABEL_DTYPE)
    labels = watershed_plane(binary, min_distance=min_distance)
    return filter_sizes(labels, min_radius=min_radius, max_radius=max_radius)


def region_stats(labels: np.ndarray, image: np.ndarray) -> dict[str, np.ndarray]:
    """Label, area, centroid, weighted centroid and mean intensity of each region of a plane.

    The values of ``skimage.measure.regionprops_table(labels, image, properties=("label",
    "area", "centroid", "centroid_weighted", "intensity_mean"))`` (same keys, regions
    in label order; weighted centroids equal to rounding, integer sums exactly), from
    a few ``bincount`` calls over the foreground pixels: no loop over regions.  A
    region of zero total intensity has a NaN weighted centroid, as there.

    Parameters
    ----------
    labels : (Y, X) ndarray of non-negative int
        0 = background.
    image : (Y, X) ndarray
        Intensities.

    Returns
    -------
    dict of str to 1D ndarray
    """
    flat = labels.ravel()
    where = np.flatnonzero(flat)
    ids_of = flat[where].astype(np.intp)
    n = int(ids_of.max()) + 1 if where.size else 1
    area = np.bincount(ids_of, minlength=n)
    ids = np.flatnonzero(area)
    ids = ids[ids > 0]
    ys, xs = np.divmod(where, max(labels.shape[1], 1))
    weight = image.ravel()[where].astype(np.float64)
    total = np.bincount(ids_of, weights=weight, minlength=n)[ids]
    count = area[ids].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        wy = np.bincount(ids_of, weights=weight * ys, minlength=n)[ids] / total
        wx = np.bincount(ids_of, weights=weight * xs, minlength=n)[ids] / total
    return {
        "label": ids.astype(labels.dtype if labels.dtype.kind in "iu" else np.int64),
        "area": area[ids].astype(np.float64),
        "centroid-0": np.bincount(ids_of, weights=ys, minlength=n)[ids] / count,
        "centroid-1": np.bincount(ids_of, weights=xs, minlength=n)[ids] / count,
        "centroid_weighted-0": wy,
        "centroid_weighted-1": wx,
        "intensity_mean": total / count,
    }


def otsu_from_counts(counts: np.ndarray, first_value: int = 0) -> float:
    """Otsu threshold from an integer histogram (one bin per value from ``first_value``).

    Gives exactly ``skimage.filters.threshold_otsu(image)`` for the integer
    image whose ``bincount`` this is.
    """
    from skimage.filters import threshold_otsu

    nonzero = np.flatnonzero(counts)
    if nonzero.size == 0:
        return 0.0
    lo, hi = nonzero[0], nonzero[-1] + 1
    if hi - lo == 1:
        return float(first_value + lo)  # a constant image: its value
    centers = np.arange(first_value + lo, first_value + hi)
    return float(threshold_otsu(hist=(counts[lo:hi], centers)))
