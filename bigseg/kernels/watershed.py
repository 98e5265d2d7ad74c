"""Distance, markers, watershed and size filter: the per-plane kernels of both methods."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.morphology import remove_small_holes
from skimage.segmentation import watershed

from . import LABEL_DTYPE
from .concave import cut_concave
from .filters import compiled_plane, smoothed_above

__all__ = [
    "distance_to_background",
    "flood",
    "flood_levels",
    "segment_signal",
    "spaced_peaks",
    "label_peaks",
    "label_plane",
    "markers_apart",
    "split_plane_apart",
    "split_oversized",
    "filled_plane",
    "filter_sizes",
    "region_areas",
    "segment_foreground",
    "segment_plane",
    "split_plane",
    "watershed_plane",
]


def distance_to_background(
    binary: np.ndarray, *, components: np.ndarray | None = None
) -> np.ndarray:
    """Exactly ``scipy.ndimage.distance_transform_edt(binary)``, cheaper on sparse planes.

    The nearest background pixel of a foreground pixel always lies inside the
    bounding box of its connected component grown by one pixel (along the row
    or column towards any farther pixel, the grown box's edge is background or
    has background before it), so each component's distances come from a
    transform of that small box.  Falls back to one whole-plane transform when
    the boxes would cost more.  ``components``: ``scipy.ndimage.label(binary)[0]``, when
    the caller has it already.  Where the compiled kernels pay
    (:func:`bigseg.kernels.filters.compiled_pays`), one compiled transform of the plane
    (:func:`bigseg.kernels._compiled.plane_distance`) gives the same values.
    """
    binary = np.asarray(binary, bool)
    compiled = compiled_plane(binary)
    if compiled is not None:  # one compiled pass over the plane, no per-box overhead
        out = np.empty(binary.shape, np.float64)
        if compiled.plane_distance(np.ascontiguousarray(binary), out):
            return out
    out = np.zeros(binary.shape, np.float64)
    if binary.ndim != 2 or not binary.any():
        return ndi.distance_transform_edt(binary) if binary.ndim != 2 else out
    labels = label_plane(binary)[0] if components is None else components
    boxes = ndi.find_objects(labels)
    n = len(boxes)
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


def split_plane(
    binary: np.ndarray, *, min_distance: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split a binary plane into regions, keeping what the split was made from.

    Returns ``(regions, distance, markers)``: the watershed regions (int32), the
    Euclidean distance transform and the marker pixels (bool): distance peaks at
    least ``min_distance`` pixels apart, as :func:`watershed_plane`.
    """
    binary = np.asarray(binary, bool)
    markers_mask = np.zeros(binary.shape, bool)
    if not binary.any():
        return np.zeros(binary.shape, LABEL_DTYPE), np.zeros(binary.shape), markers_mask
    distance = distance_to_background(binary)
    peaks = spaced_peaks(distance, binary, min_distance=min_distance)
    markers_mask[tuple(peaks.T)] = True
    markers = label_plane(markers_mask)[0]
    levels = flood_levels(distance.copy(), peaks)
    return flood(levels, markers, binary), distance, markers_mask


def spaced_peaks(image: np.ndarray, binary: np.ndarray, *, min_distance: int) -> np.ndarray:
    """``peak_local_max(image, min_distance=min_distance, labels=binary)``, exactly.

    The same rows in the same order for a 2D float ``image`` and boolean ``binary``:
    within the bounding box of ``binary`` less a border of ``min_distance`` pixels, the
    pixels of ``binary`` not below any pixel of ``binary`` in their ``2 * min_distance +
    1`` square (clipped by the box: SciPy's ``nearest``) and above the image's minimum,
    highest first (ties in row-major order), each kept unless closer than
    ``min_distance`` (Chebyshev) to one kept before: two compiled loops
    (:func:`bigseg.kernels._compiled.window_maxima`, :func:`~bigseg.kernels._compiled.spaced`)
    where the compiled kernels pay; scikit-image's own code otherwise, and for its
    special cases (a box of one pixel, every pixel a maximum).
    """
    compiled = compiled_plane(image)
    md = int(min_distance)
    if (
        compiled is None
        or image.shape != binary.shape
        or image.dtype not in (np.float32, np.float64)
        or binary.dtype != bool
        or md < 1
        or np.isnan(image).any()
    ):
        return peak_local_max(image, min_distance=min_distance, labels=binary)
    ny, nx = binary.shape
    inner = binary[md : ny - md, md : nx - md]  # the border excluded
    rows = np.flatnonzero(inner.any(axis=1))
    if rows.size == 0:
        return np.empty((0, 2), np.intp)
    cols = np.flatnonzero(inner.any(axis=0))
    roi = (slice(md + rows[0], md + rows[-1] + 1), slice(md + cols[0], md + cols[-1] + 1))
    mine = np.ascontiguousarray(binary[roi])
    values = np.ascontiguousarray(image[roi])
    if values.size == 1:
        return peak_local_max(image, min_distance=min_distance, labels=binary)
    ys, xs, trivial = compiled.window_maxima(values, mine, image.min(), md)
    if trivial:
        return peak_local_max(image, min_distance=min_distance, labels=binary)
    order = np.argsort(-values[ys, xs], kind="stable")
    ys, xs = ys[order], xs[order]
    if md > 1:
        keep = compiled.spaced(ys, xs, md)
        ys, xs = ys[keep], xs[keep]
    return np.stack([ys + roi[0].start, xs + roi[1].start], axis=1)


def flood_levels(distance: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Levels to flood from ``peaks``: ``-distance`` in order, ties between markers broken.

    scikit-image's watershed pops pixels of equal level in the order they were
    queued, except its markers, which are all queued first with the same age: the
    order between markers of equal height then depends on the heap, that is on every
    other marker of the image, so a plane and a block of it could grow two touching
    regions differently.  Here the markers of one height are ordered by position
    (row-major, which a block keeps), and every other comparison is unchanged:
    ``distance`` is a Euclidean distance transform, so ``distance ** 2`` is an integer
    ``d2`` and the level ``-d2 * k + (k - 1)`` of a pixel (``k`` = markers + 1) lies
    below every marker's ``-d2 * k + rank`` of the same height.  Consumes ``distance``
    (overwritten in place, returned as the levels; float64, exact integers).
    """
    k = len(peaks) + 1
    levels = np.square(distance, out=distance)
    np.rint(levels, out=levels)
    if len(peaks) == 0:
        return np.negative(levels, out=levels)
    height = levels[tuple(peaks.T)]
    flat = np.ravel_multi_index(tuple(peaks.T), distance.shape)
    order = np.lexsort((flat, height))
    ranked = height[order]
    first = np.searchsorted(ranked, ranked, side="left")  # first marker of each height
    rank = np.empty(len(peaks), np.float64)
    rank[order] = np.arange(len(peaks)) - first
    levels *= -k
    levels += k - 1
    levels[tuple(peaks.T)] = -height * k + rank
    return levels


def label_plane(plane: np.ndarray, value: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Return ``scipy.ndimage.label(plane == value)[0]`` (int32) and each label's pixel count.

    4-connected components of a 2D boolean plane, numbered in the raster order of their
    first pixel, as SciPy numbers them; the counts are ``np.bincount`` of the labels
    (index 0: the other pixels).  One compiled labelling of the plane's runs
    (:func:`bigseg.kernels._compiled.label_plane`) where the compiled kernels pay.
    """
    plane = np.asarray(plane, bool)
    compiled = compiled_plane(plane)
    if compiled is not None:
        labels = np.empty(plane.shape, LABEL_DTYPE)
        return labels, compiled.label_plane(np.ascontiguousarray(plane), bool(value), labels)
    labels = np.zeros(plane.shape, LABEL_DTYPE)
    ndi.label(plane if value else ~plane, output=labels)
    return labels, np.bincount(labels.ravel())


def flood(levels: np.ndarray, markers: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``skimage.segmentation.watershed(levels, markers, mask=mask)`` for :func:`flood_levels`.

    Labels (int32) of a plane flooded from ``markers`` within ``mask``.  Where the
    compiled kernels pay (:func:`bigseg.kernels.filters.compiled_pays`), whole-number
    levels go through a compiled bucket queue
    (:func:`bigseg.kernels._compiled.flood`): the same labels as scikit-image's heap
    wherever no two marker pixels share a level, which :func:`flood_levels` sees to;
    anything else goes to scikit-image.
    """
    compiled = compiled_plane(levels)
    if compiled is not None and markers.shape == mask.shape == levels.shape:
        out = np.empty(levels.shape, LABEL_DTYPE)
        if compiled.flood(
            np.ascontiguousarray(levels, np.float64),
            np.ascontiguousarray(markers, LABEL_DTYPE),
            np.ascontiguousarray(mask, bool),
            out,
            FLOOD_LEVELS * levels.size,
        ):
            return out
    return watershed(levels, markers, mask=mask).astype(LABEL_DTYPE, copy=False)


#: The compiled flood keeps a list per level: it takes planes whose levels span at most
#: this many times their pixels (:func:`flood_levels` spans about the squared largest
#: distance times the markers), and leaves wider spans to scikit-image's heap.
FLOOD_LEVELS = 4


def watershed_plane(binary: np.ndarray, *, min_distance: int) -> np.ndarray:
    """Split a binary plane into regions: EDT, distance peaks as markers, watershed."""
    return split_plane(binary, min_distance=min_distance)[0]


def split_plane_apart(binary: np.ndarray, *, apart: float) -> np.ndarray:
    """Split a binary plane into regions at distance peaks farther apart than their sizes.

    In each connected component, every maximum of the distance to the background is a
    candidate; from the highest down (ties by position), a candidate becomes a marker
    when it lies at least ``apart`` times the sum of its distance and each marker's
    distance away from every marker of its component.  Touching nuclei of any size are
    split (their centres are about the sum of their radii apart); the ridge of one
    elongated nucleus, whose peaks are closer than its width, is not.  Everything
    (candidates, markers, :func:`flood_levels`) is decided within one component, so a
    component's regions never depend on the rest of the plane.
    """
    if not binary.any():
        return np.zeros(binary.shape, LABEL_DTYPE)
    components = label_plane(binary)[0]
    distance = distance_to_background(binary, components=components)
    chosen = markers_apart(distance, components, apart=apart)
    return flood(flood_levels(distance, chosen), _numbered(chosen, binary.shape, apart), binary)


def _numbered(chosen: np.ndarray, shape: tuple[int, ...], apart: float) -> np.ndarray:
    """Label the marker pixels ``chosen`` as :func:`label_plane` labels their mask.

    Two markers are at least ``2 * apart`` pixels apart (each lies at a distance of one
    pixel or more from the background); beyond the diagonal no two touch, and each is its
    own component, numbered in raster order without labelling the plane.
    """
    if 2 * apart <= np.sqrt(2.0):
        mask = np.zeros(shape, bool)
        mask[tuple(chosen.T)] = True
        return label_plane(mask)[0]
    markers = np.zeros(shape, LABEL_DTYPE)
    at = np.sort(np.ravel_multi_index(tuple(chosen.T), shape))
    markers.flat[at] = np.arange(1, at.size + 1, dtype=LABEL_DTYPE)
    return markers


def markers_apart(distance: np.ndarray, components: np.ndarray, *, apart: float) -> np.ndarray:
    """Distance peaks kept as markers (rows of indices): see :func:`split_plane_apart`.

    Peaks are taken deepest first (ties by position); one is kept when it lies at least
    ``apart`` times the sum of its distance and each kept marker's from every kept
    marker of its own component (a compiled loop,
    :func:`bigseg.kernels._compiled.apart_markers`, where the compiled kernels pay).
    """
    peaks = label_peaks(distance, components)
    heights = distance[tuple(peaks.T)]
    owner = components[tuple(peaks.T)]
    order = np.lexsort((peaks[:, 1], peaks[:, 0], -heights))
    compiled = compiled_plane(distance)
    if compiled is not None and len(peaks) and owner.min() >= 0:
        keep = compiled.apart_markers(
            np.ascontiguousarray(peaks[:, 0], np.int64),
            np.ascontiguousarray(peaks[:, 1], np.int64),
            np.ascontiguousarray(heights, np.float64),
            np.ascontiguousarray(owner, np.int64),
            order.astype(np.int64),
            float(apart),
            int(owner.max()),
        )
        return peaks[keep]
    kept: list[int] = []
    by_owner: dict[int, list[int]] = {}  # the kept markers of each component
    for i in order:
        mine = by_owner.setdefault(int(owner[i]), [])
        if mine:
            gap = np.hypot(*(peaks[mine] - peaks[i]).T)
            if np.any(gap < apart * (heights[mine] + heights[i])):
                continue
        mine.append(int(i))
        kept.append(int(i))
    return peaks[np.sort(np.asarray(kept, int))]


def label_peaks(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``peak_local_max(image, min_distance=1, labels=labels, exclude_border=False)``, exactly.

    The same rows in the same order (label by label, each deepest first, ties in row-major
    order).  scikit-image filters each label's bounding box in turn (a maximum filter and
    several copies per label: most of the markers' time on planes of many nuclei); here
    one compiled pass over the plane (:func:`bigseg.kernels._compiled.plane_peaks`) marks
    the pixels not below a neighbour of their own label, and only labels whose every
    pixel is such a maximum (plateaus: scikit-image's special case) go through
    scikit-image's own code.  2D float planes without NaN; anything else, and
    ``BIGSEG_COMPILED=0``, goes to scikit-image.
    """
    from .filters import compiled_kernels

    if (
        image.ndim != 2
        or image.shape != labels.shape
        or image.dtype not in (np.float32, np.float64)
        or labels.dtype.kind not in "iu"
        or image.size <= 1
        or not compiled_kernels()
    ):
        return peak_local_max(image, min_distance=1, labels=labels, exclude_border=False)
    from . import _compiled as compiled  # numba: imported (and its cache read) on first use

    rows, cols, area, maxima, boxes, nan = compiled.plane_peaks(
        np.ascontiguousarray(image), np.ascontiguousarray(labels), int(labels.max(initial=0))
    )
    if nan:
        return peak_local_max(image, min_distance=1, labels=labels, exclude_border=False)
    coords = np.stack([rows, cols], axis=1)
    own = labels[rows, cols]
    # A label whose every pixel is a maximum is "trivial" to scikit-image: its peaks are
    # then its isolated pixels (counted before the threshold, as there).
    trivial = np.flatnonzero((maxima == area) & (area > 0))
    if trivial.size:
        keep = ~np.isin(own, trivial)
        coords, own = coords[keep], own[keep]
        low = image.min()
        extra = [_trivial_peaks(image, labels, int(i), boxes[i], low) for i in trivial]
        coords = np.concatenate([coords, *extra])
        own = np.concatenate([own, np.repeat(trivial, [len(e) for e in extra])])
    heights = image[tuple(coords.T)]
    order = np.lexsort((coords[:, 1], coords[:, 0], -heights, own))
    return coords[order].astype(np.intp, copy=False)


def _trivial_peaks(
    image: np.ndarray, labels: np.ndarray, label: int, box: np.ndarray, low: float
) -> np.ndarray:
    """Peaks of one label all of whose pixels are maxima (``box``: rows, cols): scikit-image's."""
    roi = (slice(box[0], box[1]), slice(box[2], box[3]))
    own = labels[roi] == label
    part = np.where(own, image[roi], 0)
    found = peak_local_max(
        part, min_distance=1, labels=own.astype(np.int32), exclude_border=False, threshold_abs=low
    )
    return found + np.array([box[0], box[2]])


def region_areas(labels: np.ndarray) -> np.ndarray:
    """Return the pixel count of every label ``0..labels.max()`` (``np.bincount``).

    One compiled pass where the compiled kernels pay (NumPy's ``bincount`` copies the
    labels to ``intp`` first).
    """
    top = int(labels.max(initial=0))
    compiled = _compiled_labels(labels)
    if compiled is not None:
        area = np.zeros(top + 1, np.intp)
        if compiled.label_areas(np.ascontiguousarray(labels), top, area):
            return area
    return np.bincount(labels.ravel(), minlength=top + 1)  # a negative label: its error


def filter_sizes(
    labels: np.ndarray, *, min_radius: float, max_radius: float, area: np.ndarray | None = None
) -> np.ndarray:
    """Keep regions with ``min_radius < sqrt(area / pi) < max_radius``, renumbered 1..n.

    Radii are in pixels.  ``area``: :func:`region_areas` of ``labels``, where the caller
    has it.  Uses one count, no loop over labels.
    """
    top = int(labels.max(initial=0))
    if top == 0:
        return np.zeros(labels.shape, LABEL_DTYPE)
    compiled = _compiled_labels(labels)
    if compiled is not None:  # one compiled pass counts, one maps (NumPy: copies, indexing)
        labels = np.ascontiguousarray(labels)
    if area is None:
        area = region_areas(labels)
    radius = np.sqrt(area / np.pi)
    keep = (min_radius < radius) & (radius < max_radius)
    keep[0] = False
    lut = np.zeros(area.size, LABEL_DTYPE)
    lut[keep] = np.arange(1, keep.sum() + 1, dtype=LABEL_DTYPE)
    if compiled is None or area.size != top + 1:
        return lut[labels]
    out = np.empty(labels.shape, LABEL_DTYPE)
    compiled.take(lut, labels, out)
    return out


def _compiled_labels(labels: np.ndarray):
    """Return the compiled loops for an integer label array, or None (NumPy's code then)."""
    from .filters import compiled_pays

    if labels.dtype.kind not in "iu" or labels.size == 0 or not compiled_pays(labels.size):
        return None
    from . import _compiled as compiled  # numba: imported (and its cache read) on first use

    return compiled


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


def segment_signal(
    signal: np.ndarray,
    *,
    apart: float,
    min_radius: float,
    max_radius: float,
    concave: dict | None = None,
    oversized: float | None = None,
) -> np.ndarray:
    """Split every plane of a ``(..., y, x)`` foreground signal into regions (int32, 1..n each).

    ``signal`` is 0 outside the foreground.  Per plane: holes smaller than a disc of
    ``max_radius`` are filled (a dark nucleolus is part of its nucleus), the plane is
    split at distance peaks apart by ``apart`` times the sum of their distances
    (:func:`split_plane_apart`), regions of low solidity are cut between their outline's
    notches when ``concave`` (keyword arguments of
    :func:`bigseg.kernels.concave.cut_concave`) is given, regions still as large as a
    disc of ``max_radius`` are split at their peaks of signal ``oversized`` pixels apart
    when given (:func:`split_oversized`), and regions are kept when
    ``min_radius < sqrt(area / pi) < max_radius`` (pixels).
    """
    out = np.zeros(signal.shape, LABEL_DTYPE)
    if signal.size == 0:
        return out
    flat_in = signal.reshape((-1, *signal.shape[-2:]))
    flat_out = out.reshape(flat_in.shape)
    for i, plane in enumerate(flat_in):
        if plane.any():
            filled = filled_plane(plane > 0, max_radius=max_radius)
            labels = split_plane_apart(filled, apart=apart)
            if concave is not None:
                labels = cut_concave(labels, **concave)
            area = None
            if oversized is not None:  # the areas counted once, for both
                area = region_areas(labels)
                split = split_oversized(
                    labels, plane, max_radius=max_radius, spacing=oversized, area=area
                )
                if split is not labels:
                    labels, area = split, None
            flat_out[i] = filter_sizes(
                labels, min_radius=min_radius, max_radius=max_radius, area=area
            )
    return out


#: :func:`split_oversized` takes peaks of light at least this fraction of the clump's
#: radius (a disc's of its area) apart.  On StarDist's 2D image at 0.8 µm per pixel (a
#: clump of four large textured nuclei): 0.3-0.5 split it into its nuclei (F1 0.927), 0.6
#: and more left it whole (0.914-0.915), 0.2 and ``min_radius`` alone cut its nuclei in
#: pieces (0.920).
OVERSIZED_SPACING = 0.4


def split_oversized(
    labels: np.ndarray,
    signal: np.ndarray,
    *,
    max_radius: float,
    spacing: float,
    area: np.ndarray | None = None,
) -> np.ndarray:
    """Split the regions of a plane as large as a disc of ``max_radius`` at their peaks of light.

    No nucleus is that large (:func:`filter_sizes` drops such a region): it is a clump of
    touching nuclei that the distance split left whole, three or more packed together
    with one distance peak (the gap between them filled as a hole).  The maxima of
    ``signal`` within such a region (``skimage.feature.peak_local_max``) become markers,
    ``spacing`` pixels apart or more, and :data:`OVERSIZED_SPACING` of the region's radius
    (a disc's of its area): a clump of large nuclei is not cut at the peaks of one
    nucleus's texture.  The region is flooded from them down the signal
    (``skimage.segmentation.watershed``).  A region with one peak is left whole.  Each
    region is split from its own pixels only; the first part keeps its label, the others
    take the next free ones.  Returns ``labels`` itself when no region is split, else a
    new array.  ``area``: :func:`region_areas` of ``labels``, where the caller has it.
    """
    top = int(labels.max(initial=0))
    if top == 0:
        return labels
    if area is None:
        area = region_areas(labels)
    large = np.flatnonzero(area >= np.pi * max_radius**2)
    large = large[large > 0]
    if large.size == 0:
        return labels
    out, new = labels, top + 1
    boxes = ndi.find_objects(labels, max_label=top)
    for v in large:
        box = boxes[v - 1]
        own = labels[box] == v
        light = np.where(own, np.asarray(signal[box], np.float32), np.float32(0))
        radius = np.sqrt(area[v] / np.pi)  # a disc's of the region's area
        peaks = peak_local_max(  # light is 0 outside the region: no labels needed
            light,
            min_distance=max(1, int(max(spacing, OVERSIZED_SPACING * radius))),
            threshold_abs=0.0,
            exclude_border=False,
        )
        peaks = peaks[own[tuple(peaks.T)]]
        if len(peaks) < 2:
            continue
        markers = np.zeros(own.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
        np.negative(light, out=light)  # flooded from the peaks down
        parts = watershed(light, markers, mask=own)
        if out is labels:
            out = labels.copy()
        later = parts > 1  # within the region (0 outside it)
        out[box][later] = parts[later] + (new - 2)
        new += len(peaks) - 1
    return out


def filled_plane(binary: np.ndarray, *, max_radius: float) -> np.ndarray:
    """Fill the holes of a binary plane smaller than a disc of ``max_radius`` (pixels).

    ``skimage.morphology.remove_small_holes(binary, max_size=int(pi * max_radius**2))``,
    exactly: the background's 4-connected components of at most that many pixels become
    foreground.  For a 2D boolean plane, where :func:`bigseg.kernels.filters.compiled_pays`,
    one compiled pass over the background's runs (:func:`bigseg.kernels._compiled.fill_holes`)
    rather than a labelling of the background, a ``bincount`` and two boolean indexings of
    the plane.
    """
    from .filters import compiled_pays

    max_size = int(np.pi * max_radius**2)
    if binary.ndim != 2 or binary.dtype != bool or max_size <= 0 or not compiled_pays(binary.size):
        return remove_small_holes(binary, max_size=max_size)
    from . import _compiled as compiled  # numba: imported (and its cache read) on first use

    out = np.empty(binary.shape, bool)
    compiled.fill_holes(np.ascontiguousarray(binary), max_size, out)
    return out
