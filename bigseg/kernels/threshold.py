"""Threshold statistics: integer histograms, Otsu, and the log-intensity floor."""

from __future__ import annotations

import numpy as np
from skimage.filters import threshold_otsu

__all__ = [
    "LINEAR_BINS",
    "LOG_BINS",
    "NOISE_SCALE",
    "floor_above_background",
    "linear_histogram",
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


#: Bins of the linear histogram behind the background and the floor (one per grey level of
#: 16-bit data).
LINEAR_BINS = 65536


def linear_histogram(values: np.ndarray, *, low: float, width: float, nbins: int) -> np.ndarray:
    """Count ``values`` in ``nbins`` bins of ``width`` from ``low`` (int64), outliers at ends.

    NaN counts in the first bin.  With the compiled kernels
    (:func:`bigseg.kernels.filters.compiled_kernels`) one compiled read of ``values``
    (:func:`bigseg.kernels._compiled.linear_counts`), else NumPy: the same counts.
    """
    if values.size == 0:
        return np.zeros(nbins, np.int64)
    if (values.dtype.kind in "iu" or values.dtype in (np.float32, np.float64)) and _compiled():
        from . import _compiled as compiled  # numba: imported (and its cache read) on first use

        counts = np.zeros(nbins, np.int64)
        compiled.linear_counts(values.reshape(-1), float(low), max(float(width), 1e-300), counts)
        return counts
    return _linear_histogram(values, low=low, width=width, nbins=nbins)


def _linear_histogram(values: np.ndarray, *, low: float, width: float, nbins: int) -> np.ndarray:
    """:func:`linear_histogram` in NumPy (six passes over float64 and int64 copies)."""
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf: reported by the pipeline
        scaled = (values.astype(np.float64, copy=False) - low) / max(width, 1e-300)
        index = np.clip(np.nan_to_num(scaled, nan=0.0), 0, nbins - 1).astype(np.int64)
    return np.bincount(index.ravel(), minlength=nbins).astype(np.int64, copy=False)


def floor_above_background(counts: np.ndarray, *, low: float, width: float) -> float:
    """Return the floor: the log-Otsu threshold of the signal above the background.

    ``counts`` is the :func:`linear_histogram` of the signal above the background (zero
    where there is only background, plus noise).  The values ``v`` are counted on the
    scale ``log(1 + v / s)``, with ``s`` :data:`NOISE_SCALE` times their median (the
    noise of the background: most voxels are background), and Otsu's threshold is taken
    there: the background's noise stays one narrow peak and a dim nucleus and a bright one
    are as far from it, whatever the camera offset was.
    """
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # NaN: reported elsewhere
        return _floor_above(np.asarray(counts, np.int64), float(low), float(width))


def _floor_above(counts: np.ndarray, low: float, width: float) -> float:
    nonzero = np.flatnonzero(counts)
    if nonzero.size == 0:
        return float(low)
    centres = low + (np.arange(counts.size) + 0.5) * width
    cumulative = np.cumsum(counts)
    median = float(centres[np.searchsorted(cumulative, cumulative[-1] / 2)] - low)
    scale = max(NOISE_SCALE * median, width)
    top = float(centres[nonzero[-1]] - low)
    log_max = float(np.log1p(top / scale))
    if log_max <= 0:
        return float(low)
    logs = np.log1p(np.maximum(centres[nonzero] - low, 0.0) / scale)
    index = np.clip((logs * (LOG_BINS / log_max)).astype(np.int64), 0, LOG_BINS - 1)
    log_counts = np.bincount(index, weights=counts[nonzero], minlength=LOG_BINS).astype(np.int64)
    log_floor = log_otsu_from_counts(log_counts, offset=0.0, log_max=log_max)
    return float(low + scale * log_floor)


def _compiled() -> bool:
    from .filters import compiled_kernels

    return compiled_kernels()


#: The scale of :func:`floor_above_background`'s logarithm, in medians of the signal.
NOISE_SCALE = 20.0
