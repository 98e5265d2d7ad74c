"""The ``default`` method: nuclei whose brightness varies about tenfold, over any background.

1. the stack is smoothed in 3D with a Gaussian whose size is given in µm, so anisotropic
   voxels are handled (:func:`bigseg.kernels.filters.smooth_volume`), and freed of its
   background (camera offset, autofluorescence, uneven illumination): a coarse map, the
   grey opening with a box wider than any nucleus
   (:func:`bigseg.kernels.filters.above_background`, :func:`signal_volume`);
2. one global *floor* per time point separates nuclei from background: the Otsu
   threshold of the histogram of ``log(1 + signal / s)``, ``s`` a multiple of the
   background's noise, computed once, as its own step (:func:`floor`); on that scale
   a dim nucleus and a bright one are as far from the background, whatever the offset;
   where that threshold is not apart from the noise of the signal (the image's raw
   noise smoothed as the signal is: a frame of noise alone), a multiple of that noise;
3. each voxel is foreground when it is above the floor *and* above a fixed fraction of
   the way to the brightest signal within ``local_radius`` µm (in a 2D image: when that
   brightest signal is above half the floor, :data:`PLANAR_PEAK`, and the way starts
   lower, :data:`PLANAR_BASE`;
   in a stack the way starts at 0 where that signal is well above the floor,
   :data:`BRIGHT_FROM`) (:func:`bigseg.kernels.filters.local_foreground`), so every
   nucleus is cut near its own half-maximum whatever its brightness, and touching nuclei
   of unequal brightness stay apart: the pre-pass (:func:`split_signal`), a
   neighbourhood operation with its own halo in z, y and x, exact in every block; it
   hands on the signal there;
4. each plane of the foreground is filled (nucleoli) and split with the distance
   transform, markers apart by the sum of their radii, and watershed, a region larger
   than any nucleus at its peaks of light (:func:`segment_foreground_block`), with the
   stitching halo of the recipe without its smoothing term; in a 2D image the pre-pass
   cuts wider (:data:`PLANAR_WIDE`) and the kernel first splits that mask, then cuts a
   region dimmer than a neighbour in its box at its own peak
   (:func:`segment_planar_block`): a dim nucleus on a bright one's flank;
5. linking splits nuclei stacked in z at necks of intensity and of area and drops
   fragments smaller than the smallest nucleus looks, half of that at the stack's faces
   (:func:`bigseg.cluster.drop_small`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import dask.array as da
import numpy as np
import xarray as xr
from scipy import ndimage as ndi

from .._errors import InputError
from ..chunked.maps import map_with_halo, per_t_counts
from ..chunked.plan import PassMemory
from ..kernels import filters
from ..kernels.threshold import (
    LINEAR_BINS,
    difference_histogram,
    floor_above_background,
    linear_histogram,
    noise_of_differences,
)
from ..kernels.watershed import filled_plane, segment_signal, split_plane_apart
from ..params import Params, PixelParams
from ..stack import as_4d, scale_of
from .base import Method

__all__ = [
    "METHOD",
    "LocalPixels",
    "filled_block",
    "floor",
    "floor_of_signal",
    "local_pixels",
    "memory",
    "planar_kernel",
    "segment_foreground_block",
    "segment_planar_block",
    "signal_of",
    "smoothing_gain",
    "split_foreground",
    "split_signal",
    "split_stored_signal",
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
    background: tuple[int, int, int] = (1, 1, 1)


def local_pixels(params: Params, scale: Sequence[float]) -> LocalPixels:
    """Convert the default method's µm sizes with the voxel size ``(z, y, x)``."""
    scale = tuple(float(s) for s in scale)
    px = params.in_pixels(scale)
    # A Gaussian cut at 3 sigma spans the recipe's smoothing disk.
    sigma_um = params.smooth_radius / filters.TRUNCATE
    sigma = tuple(sigma_um / s for s in scale)
    radius_um = params.local_radius
    if radius_um is None:
        radius_um = LOCAL_RADIUS * params.min_radius
    radii = tuple(int(round(radius_um / s)) for s in scale)
    return LocalPixels(
        sigma=sigma,
        size=tuple(2 * r + 1 for r in radii),
        depth=filters.gaussian_reach(sigma[0]) + radii[0],
        min_distance=px.min_distance,
        min_radius=px.min_radius,
        max_radius=px.max_radius,
        background=background_box(params, scale),
    )


def background_box(params: Params, scale: Sequence[float]) -> tuple[int, int, int]:
    """Return the box (voxels, odd, per axis) of the background map: a nucleus diameter across.

    A box ``2 * max_radius`` µm wide fits in no nucleus, so the grey opening with it
    keeps the background (offset, autofluorescence, uneven illumination) and drops the
    nuclei (:func:`bigseg.kernels.filters.above_background`).
    """
    return tuple(2 * int(round(BOX * params.max_radius / float(s))) + 1 for s in scale)


#: ``Params.local_radius`` by default, in ``min_radius``: the local peak is looked for this
#: far, so that a dim nucleus touching a bright one is not measured against its peak.
LOCAL_RADIUS = 1.0
#: The background map's box reaches this many ``max_radius`` from its centre.
BOX = 1.0


def signal_reach(lp: LocalPixels) -> tuple[int, ...]:
    """Return the voxels per side the signal above the background reads (smoothing and map)."""
    return tuple(
        filters.gaussian_reach(sigma) + filters.background_reach(size)
        for sigma, size in zip(lp.sigma, lp.background)
    )


def signal_volume(volume: np.ndarray, lp: LocalPixels, margin, inner=None) -> np.ndarray:
    """Return the smoothed signal above the background map of one ``(z, y, x)`` volume.

    ``margin`` is the context per axis ``(before, after)`` in ``volume``; ``inner`` the
    context per axis to leave in the result for a later neighbourhood step (none by
    default).  Context is given to that step first, then to the map, then to the
    smoothing: where a margin falls short, the block's edge is the stack's edge.
    """
    smooth_m, map_m, rest = signal_margins(margin, inner, lp)
    smoothed = filters.smooth_volume(volume, lp.sigma, margin=smooth_m)
    return filters.above_background(smoothed, lp.background, margin=map_m), tuple(rest)


def signal_margins(margin, inner, lp: LocalPixels) -> tuple[list, list, tuple]:
    """Split a block's ``margin`` into the smoothing's, the map's and the rest (``inner``)."""
    inner = inner if inner is not None else (0,) * len(margin)
    smooth_m, map_m, rest = [], [], []
    for (b, a), keep, size in zip(margin, inner, lp.background):
        reach = filters.background_reach(size)
        kb, ka = min(b, keep), min(a, keep)
        mb, ma = min(b - kb, reach), min(a - ka, reach)
        rest.append((kb, ka))
        map_m.append((mb, ma))
        smooth_m.append((b - kb - mb, a - ka - ma))
    return smooth_m, map_m, tuple(rest)


def _signal_block(block: np.ndarray, *, lp: LocalPixels, margin) -> np.ndarray:
    return _stacked([signal_volume(volume, lp, margin)[0] for volume in block])


def _stacked(volumes: list[np.ndarray]) -> np.ndarray:
    """``np.stack(volumes)``, without a copy of a block's only time point."""
    return volumes[0][np.newaxis] if len(volumes) == 1 else np.stack(volumes)


def floor(stack: xr.DataArray, params: Params) -> xr.DataArray:
    """Return the global floor of each time point (lazy), above its background.

    The Otsu threshold of ``log(1 + signal / s)``, the signal the smoothed stack above its
    background map (:func:`signal_of`), from one histogram per time point
    (:func:`bigseg.kernels.threshold.floor_above_background`); where that threshold is
    not apart from the noise of the signal (the stack's raw noise, counted too, smoothed:
    :func:`floor_of_signal`), a multiple of that noise.

    Returns
    -------
    xarray.DataArray
        Dims ``("t",)`` for a 4D stack, a 0-d array for a 3D stack.
    """
    four = as_4d(stack)
    data = four.data
    scale = scale_of(stack)
    values = floor_of_signal(signal_of(data, params, scale), data, params, scale)
    out = xr.DataArray(values, dims=("t",), coords={"t": four.t.values}, name="threshold")
    return out if "t" in stack.dims else out.isel(t=0)


def signal_of(data: da.Array, params: Params, scale: Sequence[float]) -> da.Array:
    """Return the smoothed signal above the background map of a ``(t, z, y, x)`` array (lazy).

    Float32, in ``data``'s chunks (planes split in y/x too), each computed from the chunk
    grown by the reach of the smoothing and the map: no task holds more than a chunk and
    its halo, and every voxel is the whole array's.  What :func:`floor` counts and the
    pre-pass reads (:func:`split_signal`, or :func:`split_stored_signal` when a run keeps
    it).
    """
    lp = local_pixels(params, scale)
    return map_with_halo(data, signal_reach(lp), _signal_block, lp=lp, dtype=np.float32)


def floor_of_signal(
    signal: da.Array, data: da.Array, params: Params, scale: Sequence[float]
) -> da.Array:
    """Return the floor of each time point (lazy, shape ``(t,)``) from :func:`signal_of` ``data``.

    ``data`` gives the histogram's range (its dtype, or for floats its extremes) and the
    raw noise: the differences of neighbours along x, counted from the blocks
    :func:`signal_of` reads (the same grown reads, once), one histogram per time point
    (:func:`bigseg.kernels.threshold.noise_of_differences`), times
    :func:`smoothing_gain`: the noise of the signal.
    """
    low, width = _histogram_range(data)
    counts = per_t_counts(signal, _linear_counts, low, width, nbins=LINEAR_BINS)
    reach = signal_reach(local_pixels(params, scale))
    reach = (*reach[:2], max(reach[2], 1))  # a difference reaches the next column
    differences = per_t_counts(data, _difference_counts, width, nbins=LINEAR_BINS, reach=reach)
    integers = data.dtype.kind in "iu"  # grey levels are 1 apart, however narrow the bins
    return da.map_blocks(
        _floor_rows, counts, differences, low, width, integers=integers,
        gain=smoothing_gain(params, scale, data.shape[1]), drop_axis=[1], dtype=np.float64,
    )  # fmt: skip


def smoothing_gain(params: Params, scale: Sequence[float], planes: int) -> float:
    """Return the standard deviation of a unit white noise once smoothed as the signal is.

    The root of the sum of the squared weights of the 3D Gaussian
    (:func:`bigseg.kernels.filters.smooth_volume`, its weights themselves: an impulse
    smoothed), over at most ``planes`` planes (a 2D image's one plane: the 2D Gaussian's):
    the image's raw noise times this is the noise of its smoothed signal.  The impulse is
    smoothed by SciPy's filter, whose values the compiled smoothing gives bit for bit: it
    is called where the graph is built, and numba's kernels load on the workers, not there.
    """
    lp = local_pixels(params, scale)
    reach = [filters.gaussian_reach(s) for s in lp.sigma]
    reach[0] = min(reach[0], (max(int(planes), 1) - 1) // 2)
    impulse = np.zeros([2 * r + 1 for r in reach], np.float32)
    impulse[tuple(reach)] = 1.0
    weights = ndi.gaussian_filter(impulse, lp.sigma, mode="nearest", truncate=filters.TRUNCATE)
    return float(np.sqrt(np.sum(weights.astype(np.float64) ** 2)))


def _histogram_range(data: da.Array) -> tuple[da.Array, da.Array]:
    """Return the lowest value and bin width of the floor histogram (0-d, lazy for floats)."""
    # The signal above the background map is never negative, nor above the stack's range.
    if data.dtype.kind == "u":
        top = float(np.iinfo(data.dtype).max) + 1.0
        return da.zeros((), np.float64), da.full((), top / LINEAR_BINS, np.float64)
    if data.dtype.kind not in "if":
        raise InputError(f"Cannot segment a stack of dtype {data.dtype}; convert it to numbers.")
    span = data.max().astype(np.float64) - data.min().astype(np.float64)
    return da.zeros((), np.float64), da.maximum(span, 1e-12) * (1.0 + 1e-9) / LINEAR_BINS


def _floor_by_t(dtype) -> bool:
    """Whether each time point's floor depends on its own data alone: unsigned integers.

    Other dtypes take the log offset and range from the whole stack (:func:`floor`).
    """
    return np.dtype(dtype).kind == "u"


def _linear_counts(values: np.ndarray, low: np.ndarray, width: np.ndarray) -> np.ndarray:
    return linear_histogram(values, low=float(low), width=float(width), nbins=LINEAR_BINS)


def _difference_counts(volume: np.ndarray, width: np.ndarray, *, margin) -> np.ndarray:
    """Differences of x-neighbours of a grown volume's own voxels, each pair counted once.

    A pair ``(i, i + 1)`` is counted by the block that holds ``i``: its last own column
    pairs with the first of its margin, and the stack's last column with none.
    """
    (zb, za), (yb, ya), (xb, xa) = margin
    nz, ny, nx = volume.shape
    own = volume[zb : nz - za, yb : ny - ya]
    return difference_histogram(
        own, start=xb, stop=nx - xa if xa else nx - 1, width=float(width), nbins=LINEAR_BINS
    )


def _floor_rows(
    counts: np.ndarray,
    differences: np.ndarray,
    low: np.ndarray,
    width: np.ndarray,
    *,
    integers: bool,
    gain: float,
) -> np.ndarray:
    width = float(width)
    step = max(width, 1.0) if integers else width
    return np.array(
        [
            floor_above_background(
                row,
                low=float(low),
                width=width,
                noise=gain * noise_of_differences(pairs, width=width, step=step),
            )
            for row, pairs in zip(counts, differences)
        ],
        np.float64,
    )


def _foreground_block(
    block: np.ndarray,
    thresholds: np.ndarray,
    *,
    lp: LocalPixels,
    fraction: float,
    margin,
    signal_out: bool = False,
    planar: bool = False,
    stored: bool = False,
) -> np.ndarray:
    # The signal only where the local maximum looks: the chunk and its radius.
    radius = tuple((int(n) - 1) // 2 for n in lp.size)
    base = PLANAR_BASE if planar else LOCAL_BASE
    out = []
    for t in range(block.shape[0]):
        if stored:  # the signal itself, grown by the local box's radius
            signal, rest = block[t], margin
        else:
            signal, rest = signal_volume(block[t], lp, margin, inner=radius)
        floor_t = float(thresholds[t, 0, 0, 0])
        # A 2D image is cut wider here, and at its regions' own peaks by the kernel
        # (segment_planar_block).
        wide = fraction * PLANAR_WIDE if planar else fraction
        seen = PLANAR_PEAK * floor_t if planar else floor_t  # a 2D image asks it of peaks
        foreground = filters.local_foreground(
            signal, seen, fraction=wide, size=lp.size, margin=rest, base=base * floor_t,
            by_peak=planar,
            bright=None if planar else (BRIGHT_FROM * floor_t, BRIGHT_TO * floor_t),
        )  # fmt: skip
        if signal_out:
            core = tuple(slice(b, n - a) for n, (b, a) in zip(signal.shape, rest))
            foreground = np.where(foreground, signal[core], np.float32(0))
        out.append(foreground)
    return _stacked(out)


def split_foreground(
    data: da.Array, thresholds: da.Array, params: Params, scale, *, signal: bool = False
) -> tuple[da.Array, da.Array]:
    """Return the foreground of a ``(t, z, y, x)`` array, in its chunks, and the data (lazy).

    The foreground is a pure neighbourhood operation: every block is grown by the reach
    of the smoothing, the background map and the local maximum along each axis (none
    past the stack's edges), so that every voxel equals the whole-array foreground
    however the stack is chunked, planes split in y/x included.  Chunks smaller than
    that reach are merged for the computation; the result has ``data``'s chunks.
    ``thresholds`` holds one floor per time point, shape ``(t,)``.  With ``signal``, the
    foreground is the signal above the background there (float32, 0 elsewhere).
    """
    lp = local_pixels(params, scale)
    reach = tuple(r + (size - 1) // 2 for r, size in zip(signal_reach(lp), lp.size))
    return _local_foreground(data, reach, thresholds, params, lp, signal=signal), data


def _local_foreground(
    source: da.Array,
    reach: tuple[int, ...],
    thresholds: da.Array,
    params: Params,
    lp: LocalPixels,
    *,
    signal: bool,
    stored: bool = False,
) -> da.Array:
    """Map :func:`_foreground_block` over ``source`` (the stack, or its ``stored`` signal)."""
    thr = thresholds.reshape((-1, 1, 1, 1)).rechunk((source.chunks[0], 1, 1, 1))
    return map_with_halo(
        source,
        reach,
        _foreground_block,
        thr,
        lp=lp,
        fraction=params.local_fraction,
        signal_out=signal,
        planar=source.shape[1] == 1,
        stored=stored,
        dtype=np.float32 if signal else bool,
    )


def split_signal(
    data: da.Array, thresholds: da.Array, params: Params, scale
) -> tuple[da.Array, da.Array]:
    """Return the signal above the background where foreground (0 elsewhere), and the data.

    The pre-pass of the default method (:func:`split_foreground` with ``signal=True``).
    """
    return split_foreground(data, thresholds, params, scale, signal=True)


def split_stored_signal(
    signal: da.Array, data: da.Array, thresholds: da.Array, params: Params, scale
) -> tuple[da.Array, da.Array]:
    """:func:`split_signal` from the :func:`signal_of` ``data`` computed before (lazy).

    A run keeps the signal its floor was counted from (:attr:`Method.signal`), and the
    pre-pass reads it grown by the local box's radius instead of smoothing the stack
    again: the same values (every voxel of the signal is the whole array's).
    """
    lp = local_pixels(params, scale)
    radius = tuple((size - 1) // 2 for size in lp.size)
    foreground = _local_foreground(signal, radius, thresholds, params, lp, signal=True, stored=True)
    return foreground, data


def segment_foreground_block(
    block: np.ndarray, thresholds: np.ndarray, px, *, planar: bool = False
) -> np.ndarray:
    """Per-plane regions of a block of foreground signal (whole planes, or grown by the halo).

    ``thresholds`` are unused (the floor is applied in :func:`split_foreground`).  Planes
    are split at distance peaks apart by more than :data:`MARKER_APART` times the sum of
    their distances to the background; in a 2D image (``planar``) regions of low solidity
    are cut between their outline's notches too (:func:`concave_cut`); regions as large as
    a disc of ``max_radius`` after that are split at their peaks of signal, ``min_radius``
    apart at least (:func:`bigseg.kernels.watershed.split_oversized`), rather than dropped;
    regions are kept down to :data:`PLANE_FRACTION` of ``min_radius``.
    """
    return segment_signal(
        block,
        apart=MARKER_APART,
        min_radius=PLANE_FRACTION * px.min_radius,
        max_radius=px.max_radius,
        concave=concave_cut(px) if planar else None,
        oversized=px.min_radius,
    )


def concave_cut(px) -> dict:
    """Return the cut of :func:`bigseg.kernels.concave.cut_concave`, in pixels of ``px``.

    Regions of :data:`CONCAVE_AREA` discs of ``min_radius`` or more whose solidity is
    under :data:`CONCAVE_SOLIDITY`, cut where two notches are :data:`CONCAVE_DEPTH`
    pixels deep and :data:`CONCAVE_NOTCH` pixels large or more, into parts of
    :data:`CONCAVE_PART` of the region or more.
    """
    return {
        "solidity": CONCAVE_SOLIDITY,
        "min_area": CONCAVE_AREA * np.pi * px.min_radius**2,
        "depth": CONCAVE_DEPTH,
        "notch": CONCAVE_NOTCH,
        "part": CONCAVE_PART,
    }


def segment_planar_block(
    block: np.ndarray,
    thresholds: np.ndarray,
    px: PixelParams,
    *,
    box: tuple[int, int],
    fraction: float,
) -> np.ndarray:
    """Segment a 2D image's planes, a region dimmer than a neighbour in its box at its own peak.

    :func:`segment_foreground_block` for a 2D image.  The pre-pass of a 2D image keeps the
    signal down to :data:`PLANAR_WIDE` of the way to the local peak rather than
    ``fraction``: a dim nucleus on a bright one's flank (with no peak of its own once
    smoothed) is then a bulge of a wider mask.  Each plane of that mask is filled and
    split as :func:`segment_foreground_block` splits planes.  A pixel's local peak is the
    largest signal in its ``box`` (y, x); where the largest among its own region's pixels
    only (:func:`bigseg.kernels.filters.region_box_max`) is below :data:`PLANAR_DIMMER` of
    it, a brighter neighbour's light is in the box, and the region's own is taken.  The
    pixel is kept when above ``fraction`` of the way to that peak from
    :data:`PLANAR_BASE` of the floor, and the peak above :data:`PLANAR_PEAK` of it, as the
    pre-pass cuts; the pixels kept are split as :func:`segment_foreground_block` splits
    a 2D image's (concave regions cut at their notches).  Everything is decided within one
    connected component of the filled mask (:func:`filled_block`).  Measured with
    tracemalloc on a 1024² plane: 46 bytes per pixel at its peak
    (:func:`segment_foreground_block`: 35), within the kernel's memory model
    (:func:`memory`).
    """
    cut = np.zeros(block.shape, np.float32)
    for t in range(block.shape[0]):
        floor_t = np.float32(thresholds[t, 0, 0, 0])
        base = np.float32(PLANAR_BASE) * floor_t
        for z in range(block.shape[1]):
            plane = np.asarray(block[t, z], np.float32)
            if not plane.any():
                continue
            filled = filled_plane(plane > 0, max_radius=px.max_radius)
            regions = split_plane_apart(filled, apart=MARKER_APART)
            own, peak = filters.region_box_max(plane, regions, box)
            at = np.flatnonzero(regions)  # the pixels of the regions only
            own, peak, value = own.ravel()[at], peak.ravel()[at], plane.ravel()[at]
            peak = np.where(own < np.float32(PLANAR_DIMMER) * peak, own, peak)
            level = (peak - base) * np.float32(fraction) + base
            keep = (value > level) & (peak > np.float32(PLANAR_PEAK) * floor_t)
            np.put(cut[t, z], at[keep], value[keep])
    return segment_foreground_block(cut, thresholds, px, planar=True)


def planar_kernel(params: Params, scale: Sequence[float]):
    """Return the default method's kernel for a 2D image (:func:`segment_planar_block`)."""
    size = local_pixels(params, scale).size
    return functools.partial(
        segment_planar_block, box=(size[1], size[2]), fraction=float(params.local_fraction)
    )


#: Per-plane regions are kept down to this fraction of ``min_radius``: a plane cut off a
#: nucleus's middle, at its half-maximum contour, is smaller than the nucleus.
PLANE_FRACTION = 0.5
#: Markers are at least this fraction of the sum of their distances to the background
#: apart: touching nuclei of any size are split, one nucleus's ridge is not.  Two small
#: nuclei of like brightness touching in a plane show no valley of light and, smoothed and
#: cut at half their peak, a capsule without a waist whose distance peaks are 0.8-0.9 times
#: that sum apart (0.9 merged them: bench/grid.py --misses); 0.7 split a StarDist nucleus.
MARKER_APART = 0.8
#: In a 2D image, regions whose area is under this fraction of their convex hull's are cut
#: between the two deepest notches of their outline: two touching oval nuclei side by side
#: have one distance peak (at their contact) and no dip of light, but a waist.  Chosen on a
#: real dense 2D image (StarDist's DSB 2018 test image: 0.95 is where its F1 stops rising)
#: and checked over the matrix, the kinds and the real stacks (docs/accuracy.md, thirteenth
#: round).  Not in stacks: there it gained 2 cells of the matrix's 204 and cut a nucleus
#: of the hard synthetic stack in two.
CONCAVE_SOLIDITY = 0.95
#: ... only regions of at least this many discs of ``min_radius`` (one nucleus's plane
#: is about one disc or more; a pair two or more),
CONCAVE_AREA = 2.0
#: ... at two notches at least this many pixels deep: a notch of a pixel is the
#: outline's digitisation, not a waist (the outline is smoothed at a micrometre's scale,
#: a pixel or more).  In pixels rather than µm: on the DSB image taken at 0.4-0.8 µm per
#: pixel, 1.5 px found the waists at every size, 0.375 of ``min_radius`` (1.5 px at 0.71
#: µm) not at 0.4 and 0.5 µm,
CONCAVE_DEPTH = 1.5
#: ... and at least this many pixels large: a dent of the texture or a corner of a dim
#: region's box-shaped cut is a few pixels (8 still cut three single nuclei of the 2D
#: matrix, 10 none; the waists of the DSB image: 9-41 px, all but three 17 or more),
CONCAVE_NOTCH = 10
#: ... and only where each of the two parts keeps this fraction of the region.
CONCAVE_PART = 0.25
#: The local threshold is ``fraction`` of the way to the local peak from this fraction of
#: the floor (0: from the background, 1: from the floor): dim nuclei are cut nearer their
#: half-maximum than from the floor, and their halo of out-of-focus light stays out.
LOCAL_BASE = 0.75
#: ... in a 2D image (one plane), where a nucleus is seen when its local peak is above the
#: floor and cut from this fraction of the floor (the floor is not asked of each pixel):
#: there, no light from planes above or below and no neck between nuclei stacked in z has
#: to be kept out, and a dim nucleus cut at the floor is smaller than the disc it is.
PLANAR_BASE = 0.5
#: ... and seen when its local peak is above this fraction of the floor.  Otsu's floor
#: lies between the dim nuclei and the bright ones of a dense 2D time-lapse (90-1 200 grey
#: levels above the background: ``hela2d`` drops every nucleus under about 100); the
#: smoothed noise of one plane is far below half of it, and the cut from
#: :data:`PLANAR_BASE` of the floor keeps their outlines (docs/accuracy.md, fourteenth
#: round: the 2D matrix, 96 cells of 204 higher and none lower; StarDist's 2D image as
#: before).  Stacks keep the floor: their dim objects are BBBC050's and the seed stack's.
PLANAR_PEAK = 0.5
#: In a 2D image the pre-pass keeps the signal down to this fraction of
#: ``Params.local_fraction`` of the way to the local peak, and the kernel cuts each region
#: at ``local_fraction`` of the way to its own peak (:func:`segment_planar_block`).  0.7
#: over the 2D cells of the matrix, the HeLa-like kind and the held-out seeds (0.5, 0.6 and
#: 0.7 all gain; 0.7 lowered no case: docs/accuracy.md, ninth round).
PLANAR_WIDE = 0.7
#: In a 2D image, a region's own peak in a pixel's box is taken for the pixel's local peak
#: where it is below this fraction of the box's (:func:`segment_planar_block`): a dim
#: nucleus beside a bright one is cut at half its own peak, two touching nuclei of like
#: brightness at half the brighter's, whose waist stays cut as before (1.0 merged three of
#: the sixteen small pairs of ``tests/test_heldout.py``; docs/accuracy.md, ninth round).
PLANAR_DIMMER = 0.9
#: In a stack, :data:`LOCAL_BASE` holds where the local peak is at most this many floors and
#: falls linearly to 0 at :data:`BRIGHT_TO` floors: a nucleus well above the floor is cut at
#: its own half maximum (where a small one's measured size is its size), a dim one, whose
#: peak is near the floor, from the base (its halo and out-of-focus light stay out).
BRIGHT_FROM = 2.0
#: ... see :data:`BRIGHT_FROM`.
BRIGHT_TO = 4.0


def filled_block(block: np.ndarray, thresholds: np.ndarray, px) -> np.ndarray:
    """Return the mask :func:`segment_foreground_block` splits plane by plane (holes filled)."""
    out = np.zeros(block.shape, bool)
    flat_in = block.reshape((-1, *block.shape[-2:]))
    flat_out = out.reshape(flat_in.shape)
    for i, plane in enumerate(flat_in):
        if plane.any():
            flat_out[i] = filled_plane(plane > 0, max_radius=px.max_radius)
    return out


def without_smoothing(px: PixelParams) -> PixelParams:
    """Return the recipe's sizes without its smoothing: the kernel splits foreground planes."""
    return dataclasses.replace(px, smooth_radius=0)


#: Strip buffers of the smoothing and the local maximum (two strips live at once).
_STRIPS = 2 * filters.STRIP_BYTES + (1 << 20)


def memory(params: Params, scale: Sequence[float], halo: int) -> tuple[PassMemory, ...]:
    """Return the default method's memory model per pass (measured with tracemalloc).

    * ``floor``: the float32 smoothing of the block grown by the reach of the smoothing
      and the background map, the map's grey opening and the signal above it (12 bytes
      per voxel; 8 measured in large blocks since the opening runs in one buffer, left
      at 12: the plans of runs stay as they were), and two strips of
      :data:`bigseg.kernels.filters.STRIP_BYTES`; a run
      that keeps the signal computes it in blocks of its own
      (:func:`bigseg.chunked.plan.stored_pass_chunks`), not in the work blocks;
    * ``foreground``: where the signal is not kept, the same, grown by the local box's
      radius too, and the float32 signal where foreground (12 bytes per voxel measured,
      with the result; 9 in large blocks since the opening runs in one buffer); where it
      is kept, the kept signal read grown by the local box's radius only, its local
      maximum and the signal where foreground (5 bytes per voxel measured in blocks of
      16 planes or more, with the float32 signal read beyond the stack's own dtype,
      which the planner counts: 8.5 in all) and the two strips;
    * ``kernel``: the float32 signal it reads (4 bytes per voxel beyond the stack's own
      dtype, which the planner counts), its int32 labels (4), and the working set of one
      plane grown by the stitching ``halo`` (holes filled, distance transform, markers,
      flooding levels, watershed: 48 bytes per voxel).
    """
    lp = local_pixels(params, scale)
    reach = signal_reach(lp)
    radius = tuple((size - 1) // 2 for size in lp.size)
    box = tuple(r + b for r, b in zip(reach, radius))
    return (
        PassMemory("floor", reach=reach, per_voxel=12.0, fixed=_STRIPS, kept=False),  # type: ignore[arg-type]
        PassMemory("foreground", reach=box, per_voxel=13.0, fixed=_STRIPS, kept=False),  # type: ignore[arg-type]
        PassMemory("foreground", reach=radius, per_voxel=8.5, fixed=_STRIPS, kept=True),  # type: ignore[arg-type]
        PassMemory("kernel", reach=(0, int(halo), int(halo)), per_voxel=8.0, per_plane=48.0),
    )


METHOD = Method(
    name="default",
    statistic=floor,
    kernel=segment_foreground_block,
    planar_kernel=planar_kernel,
    pixels=without_smoothing,
    prepass=split_signal,
    components=filled_block,
    memory=memory,
    neck_splitting=True,
    drop_fragments=True,
    statistic_by_t=_floor_by_t,
    signal=signal_of,
    statistic_of_signal=floor_of_signal,
    prepass_of_signal=split_stored_signal,
    peaks=True,
)
