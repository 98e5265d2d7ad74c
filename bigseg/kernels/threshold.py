"""Threshold statistics: integer histograms, Otsu, and the log-intensity floor."""

from __future__ import annotations

import numpy as np
from skimage.filters import threshold_otsu

__all__ = [
    "LOG_BINS",
    "log_histogram",
    "log_otsu_from_counts",
    "otsu_from_counts",
    "otsu_of",
    "value_counts",
]


#: Bins of the log-intensity histogram behind the global floor.
LOG_BINS = 4096


def value_counts(values: np.ndarray, nbins: int) -> np.ndarray:
    """Count each integer value ``0 .. nbins - 1`` of ``values`` (int64, ``nbins`` long)."""
    return np.bincount(np.asarray(values).ravel(), minlength=nbins).astype(np.int64, copy=False)


def otsu_from_counts(counts: np.ndarray, first_value: int = 0) -> float:
    """Otsu threshold from an integer histogram (one bin per value from ``first_value``).

    Gives exactly ``skimage.filters.threshold_otsu(image)`` for the integer
    image whose ``bincount`` this is.
    """
    nonzero = np.flatnonzero(counts)
    if nonzero.size == 0:
        return 0.0
    lo, hi = nonzero[0], nonzero[-1] + 1
    if hi - lo == 1:
        return float(first_value + lo)  # a constant image: its value
    centers = np.arange(first_value + lo, first_value + hi)
    return float(threshold_otsu(hist=(counts[lo:hi], centers)))


def otsu_of(values: np.ndarray) -> float:
    """Otsu threshold of any numeric array (``skimage.filters.threshold_otsu``)."""
    return float(threshold_otsu(values))


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
