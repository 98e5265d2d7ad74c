"""Threshold statistics: integer histograms, Otsu, and the log-intensity floor."""

from __future__ import annotations

import numpy as np
from scipy.special import erfinv
from skimage.filters import threshold_otsu

__all__ = [
    "FLOOR_APART",
    "LINEAR_BINS",
    "LOG_BINS",
    "NOISE_FLOOR",
    "NOISE_QUANTILE",
    "NOISE_SCALE",
    "difference_histogram",
    "floor_above_background",
    "linear_histogram",
    "log_histogram",
    "log_otsu_from_counts",
    "noise_of_differences",
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


def floor_above_background(
    counts: np.ndarray, *, low: float, width: float, noise: float = 0.0
) -> float:
    """Return the floor: the log-Otsu threshold of the signal above the background.

    ``counts`` is the :func:`linear_histogram` of the signal above the background (zero
    where there is only background, plus noise).  The values ``v`` are counted on the
    scale ``log(1 + v / s)``, with ``s`` :data:`NOISE_SCALE` times their median (the
    noise of the background: most voxels are background), and Otsu's threshold is taken
    there: the background's noise stays one narrow peak and a dim nucleus and a bright one
    are as far from it, whatever the camera offset was.

    ``noise`` is the noise of the signal (the image's raw noise,
    :func:`noise_of_differences`, smoothed as the signal is; 0: unknown).  Where Otsu's
    threshold lies under :data:`FLOOR_APART` times it, the histogram has no mode of
    nuclei apart from the background's (a frame without nuclei, or with one or two in a
    field of noise: Otsu then splits the noise itself), and the floor is
    :data:`NOISE_FLOOR` times the noise instead.
    """
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # NaN: reported elsewhere
        floor = _floor_above(np.asarray(counts, np.int64), float(low), float(width))
    noise = float(noise)
    if noise > 0 and floor - float(low) < FLOOR_APART * noise:
        return float(low) + NOISE_FLOOR * noise
    return floor


def difference_histogram(
    volume: np.ndarray, *, start: int, stop: int, width: float, nbins: int = LINEAR_BINS
) -> np.ndarray:
    """Count ``|volume[..., i + 1] - volume[..., i]|`` for ``start <= i < stop`` (int64).

    The differences of neighbours along x of a ``(z, y, x)`` volume, in ``nbins`` bins of
    ``width`` from 0, NaN in the first, above the range in the last
    (:func:`noise_of_differences` turns them into the noise).  With the compiled kernels
    one compiled read of ``volume`` (:func:`bigseg.kernels._compiled.difference_counts`),
    else NumPy: the same counts.
    """
    counts = np.zeros(nbins, np.int64)
    start, stop = max(int(start), 0), min(int(stop), volume.shape[-1] - 1)  # pairs inside
    if volume.size == 0 or stop <= start:
        return counts
    width = max(float(width), 1e-300)
    if (volume.dtype.kind in "iu" or volume.dtype in (np.float32, np.float64)) and _compiled():
        from . import _compiled as compiled

        mantissa, exponent = np.frexp(width)
        if volume.dtype.kind in "iu" and volume.dtype.itemsize <= 4 and mantissa == 0.5:
            # Bins 2 ** e wide (an unsigned dtype's range over LINEAR_BINS): shifts, exact.
            e = int(exponent) - 1
            up, down = max(-e, 0), max(e, 0)
            compiled.integer_difference_counts(volume, start, stop, up, down, counts)
        else:
            compiled.difference_counts(volume, start, stop, width, counts)
        return counts
    with np.errstate(invalid="ignore", over="ignore"):
        pairs = volume[..., start : stop + 1].astype(np.float64)
        return _linear_histogram(np.abs(np.diff(pairs, axis=-1)), low=0.0, width=width, nbins=nbins)


def noise_of_differences(counts: np.ndarray, *, width: float, step: float | None = None) -> float:
    """Return an image's raw noise (its standard deviation) from :func:`difference_histogram`.

    The first quartile of the absolute differences of neighbours over ``0.3186 * sqrt(2)``,
    the standard deviation of a Gaussian noise whose differences these are.  The quietest
    pairs are the background's and the nuclei's insides: the edges and texture of nuclei
    raise the largest differences (the median gave 40 % more on BBBC050's stacks).
    Nuclei noisier with their light (shot noise) raise it where they cover much of the
    image (a third of the pixels three times as noisy: 1.27 times the background's).
    A bin's values are taken spread over ``step`` about its value, the data's spacing of
    values (by default the bin's ``width``; 1 for integer data, whose grey levels may lie
    bins apart).  Where a quarter of the neighbours or more are equal (an 8-bit image of
    a grey level of noise), the noise is that of a Gaussian whose differences, rounded,
    are 0 as often: ``P(|d| < step / 2) = erf(step / (4 * noise))``; 0 where all are
    equal, or none were counted.
    """
    counts = np.asarray(counts, np.int64)
    total = int(counts.sum())
    if total == 0:
        return 0.0
    step = float(width if step is None else step)
    cumulative = np.cumsum(counts)
    part = total * NOISE_QUANTILE
    k = int(np.searchsorted(cumulative, part))
    if k == 0:
        equal = float(counts[0]) / total
        return 0.0 if equal >= 1.0 else step / (4.0 * float(erfinv(equal)))
    fraction = (part - float(cumulative[k - 1])) / float(counts[k])
    value = k * float(width)
    quantile = value - step / 2 + fraction * step  # the bin's values, spread over a step
    return quantile / (_HALF_NORMAL_QUANTILE * np.sqrt(2.0))


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
#: Otsu's floor is kept where it lies at least this many times the noise of the signal
#: above the background (:func:`floor_above_background`; the image's raw noise smoothed
#: as the signal is, :func:`bigseg.methods.default.smoothing_gain`).  Measured
#: (docs/accuracy.md, fifteenth round): 1.6-2.9 on 2D frames and small stacks of noise
#: and on 2D frames of one or two dim nuclei where Otsu split the noise, against 8.1 and
#: more on frames of nuclei of 20-60 grey levels over a noise of 12, 17 where Otsu worked
#: on the dim ones, and 32 and more on every real image.
FLOOR_APART = 5.0
#: ... and where it is not, the floor is this many times that noise: above the highest
#: signal of those frames of noise (7.9-12), far under the dim nuclei's peaks (53-63).
NOISE_FLOOR = 15.0
#: The quantile of the absolute differences of neighbours that :func:`noise_of_differences`
#: takes for the noise.
NOISE_QUANTILE = 0.25
#: ... and that quantile of the absolute value of a standard normal variable.
_HALF_NORMAL_QUANTILE = 0.31863936396437514
