"""Region sums: one bincount kernel for whole planes and for blocks of split planes.

Every measurement of bigseg comes from the same sums per region: pixel count, intensity
sum, and the sums of ``y``, ``x``, ``y * I`` and ``x * I`` (in the stack's index units when
an origin is given, so that the sums of a region's parts in several blocks add up).
"""

from __future__ import annotations

import numpy as np

__all__ = ["SUM_COLUMNS", "block_sums", "region_peaks", "region_stats", "region_sums"]

#: The sums per region (besides its ``label``), in order.
SUM_COLUMNS = ("area_px", "sum_i", "sum_y", "sum_x", "sum_yi", "sum_xi")


def region_sums(
    labels: np.ndarray, image: np.ndarray, origin: tuple[int, int] = (0, 0)
) -> dict[str, np.ndarray]:
    """Sum over each region of one ``(Y, X)`` plane, with a few ``bincount`` calls (no loop).

    Parameters
    ----------
    labels : (Y, X) ndarray of non-negative int
        0 = background.
    image : (Y, X) ndarray
        Intensities.
    origin : tuple of 2 ints
        Index ``(y, x)`` of the plane's first pixel in the whole plane: ``y`` and ``x``
        sums are in whole-plane index units.

    Returns
    -------
    dict of str to 1D ndarray
        ``label`` (int64, the regions present, in order) and :data:`SUM_COLUMNS`
        (``area_px`` int64, the others float64).
    """
    flat = labels.ravel()
    where = np.flatnonzero(flat)
    ids_of = flat[where].astype(np.intp)
    n = int(ids_of.max()) + 1 if where.size else 1
    area = np.bincount(ids_of, minlength=n)
    ids = np.flatnonzero(area)
    ids = ids[ids > 0]
    ys, xs = np.divmod(where, max(labels.shape[-1], 1))
    yy = ys.astype(np.float64) + origin[0]
    xx = xs.astype(np.float64) + origin[1]
    weight = image.ravel()[where].astype(np.float64)
    return {
        "label": ids.astype(np.int64),
        "area_px": area[ids].astype(np.int64),
        "sum_i": np.bincount(ids_of, weights=weight, minlength=n)[ids],
        "sum_y": np.bincount(ids_of, weights=yy, minlength=n)[ids],
        "sum_x": np.bincount(ids_of, weights=xx, minlength=n)[ids],
        "sum_yi": np.bincount(ids_of, weights=weight * yy, minlength=n)[ids],
        "sum_xi": np.bincount(ids_of, weights=weight * xx, minlength=n)[ids],
    }


def region_peaks(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Return the largest of ``values`` in each region of one ``(Y, X)`` plane, by label.

    The regions present, as :func:`region_sums` lists them (float64).
    """
    flat = labels.ravel()
    where = np.flatnonzero(flat)
    ids_of = flat[where].astype(np.intp)
    n = int(ids_of.max()) + 1 if where.size else 1
    peak = np.full(n, -np.inf)
    np.maximum.at(peak, ids_of, values.ravel()[where].astype(np.float64))
    ids = np.flatnonzero(np.bincount(ids_of, minlength=n))
    return peak[ids[ids > 0]]


def region_stats(labels: np.ndarray, image: np.ndarray) -> dict[str, np.ndarray]:
    """Label, area, centroid, weighted centroid and mean intensity of each region of a plane.

    The values of ``skimage.measure.regionprops_table(labels, image, properties=("label",
    "area", "centroid", "centroid_weighted", "intensity_mean"))`` (same keys, regions
    in label order; weighted centroids equal to rounding, integer sums exactly), from
    :func:`region_sums`.  A region of zero total intensity has a NaN weighted centroid,
    as there.

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
    sums = region_sums(labels, image)
    count = sums["area_px"].astype(np.float64)
    total = sums["sum_i"]
    with np.errstate(invalid="ignore", divide="ignore"):
        wy = sums["sum_yi"] / total
        wx = sums["sum_xi"] / total
    return {
        "label": sums["label"].astype(labels.dtype if labels.dtype.kind in "iu" else np.int64),
        "area": count,
        "centroid-0": sums["sum_y"] / count,
        "centroid-1": sums["sum_x"] / count,
        "centroid_weighted-0": wy,
        "centroid_weighted-1": wx,
        "intensity_mean": total / count,
    }


def block_sums(
    labels: np.ndarray,
    image: np.ndarray,
    origin: tuple[int, int, int, int],
    peak: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """:func:`region_sums` of every plane of a ``(t, z, y, x)`` block, concatenated.

    Parameters
    ----------
    labels, image : (T, Z, Y, X) ndarray
        Labels and intensities of one block.
    origin : tuple of 4 ints
        Index of the block's first voxel in the whole stack.
    peak : (T, Z, Y, X) ndarray, optional
        Values whose largest in each region is returned too, as ``peak``
        (:func:`region_peaks`).

    Returns
    -------
    dict of str to 1D ndarray
        ``t``, ``z``, ``label`` (int64, stack indices) and :data:`SUM_COLUMNS` (and
        ``peak`` with ``peak``), one entry per region per plane; empty arrays of the same
        dtypes for an empty block.
    """
    parts = []
    for ti in range(labels.shape[0]):
        for zi in range(labels.shape[1]):
            lab = labels[ti, zi]
            if not lab.any():
                continue
            sums = region_sums(lab, image[ti, zi], (origin[2], origin[3]))
            if peak is not None:
                sums["peak"] = region_peaks(lab, peak[ti, zi])
            n = sums["label"].size
            parts.append(
                {
                    "t": np.full(n, origin[0] + ti, np.int64),
                    "z": np.full(n, origin[1] + zi, np.int64),
                    **sums,
                }
            )
    dtypes = {"t": np.int64, "z": np.int64, "label": np.int64, "area_px": np.int64}
    names = ("t", "z", "label", *SUM_COLUMNS, *(("peak",) if peak is not None else ()))
    return {
        c: np.concatenate([np.empty(0, dtypes.get(c, np.float64))] + [p[c] for p in parts])
        for c in names
    }
