"""Regions of a plane cut between the two notches of their outline.

Two oval nuclei that touch side by side make one region whose distance to the background
peaks once, at their contact, and whose smoothed light does not dip there: no marker of
:func:`bigseg.kernels.watershed.split_plane_apart` separates them.  What the pair has is
its outline's two notches.  :func:`cut_concave` finds such regions by their solidity (their
area over their convex hull's) and their notches, and cuts each along the line between the
deepest points of its two deepest notches.  Everything is decided within one region, so a
plane's regions never depend on the rest of the plane (the exactness of split planes holds).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import line
from skimage.morphology import convex_hull_image
from skimage.segmentation import expand_labels

__all__ = ["concave_regions", "cut_concave"]

_EIGHT = np.ones((3, 3), bool)


def concave_regions(
    labels: np.ndarray, *, solidity: float, min_area: float, depth: float, notch: int
) -> tuple[np.ndarray, np.ndarray]:
    """Which labels ``0..n`` of a 2D plane :func:`cut_concave` cuts, and between which pixels.

    A region of ``min_area`` pixels or more, fewer than ``solidity`` times its convex
    hull's, whose two deepest notches (8-connected components of its hull less itself,
    ranked by depth) are ``notch`` pixels large or more and ``depth`` pixels deep or more:
    their deepest pixel that far from the nearest pixel outside the hull.  The hull is
    scikit-image's ``convex_hull_image`` (the pixels whose centres lie inside or on the hull
    of the midpoints of the region's pixels' edges), the depths SciPy's Euclidean distance
    transform of it.  One compiled pass (:func:`bigseg.kernels._compiled.concave_regions`)
    where the compiled kernels pay, scikit-image and SciPy per region otherwise, with the
    same answer.

    Returns
    -------
    marked : (n + 1,) ndarray of bool
    points : (n + 1, 4) ndarray of int
        For a marked label, the deepest pixels of its two deepest notches, ``y0, x0, y1,
        x1`` in ``labels``.
    """
    from .filters import compiled_pays

    n = int(labels.max(initial=0))
    marked = np.zeros(n + 1, bool)
    points = np.zeros((n + 1, 4), np.intp)
    if labels.dtype.kind in "iu" and compiled_pays(labels.size):
        from . import _compiled as compiled  # numba: imported (and its cache read) on first use

        args = (float(solidity), float(min_area), float(depth), int(notch))
        if compiled.concave_regions(np.ascontiguousarray(labels), n, *args, marked, points):
            return marked, points
        marked[:], points[:] = False, 0
    for v, box in enumerate(ndi.find_objects(labels, max_label=n), start=1):
        if box is None:
            continue
        box = _grown(box, labels.shape)
        mask = labels[box] == v
        area = int(mask.sum())
        if area < min_area:
            continue
        hull = convex_hull_image(mask)
        if not area < solidity * hull.sum():
            continue
        deepest, sizes, depths = _notches(mask, hull)
        if depths.size < 2:
            continue
        two = np.argsort(-depths, kind="stable")[:2]
        if depths[two].min() < depth or sizes[two].min() < notch:
            continue
        marked[v] = True
        points[v] = np.concatenate([np.add(deepest[i], [s.start for s in box]) for i in two])
    return marked, points


def cut_concave(
    labels: np.ndarray,
    *,
    solidity: float,
    min_area: float,
    depth: float,
    notch: int,
    part: float,
) -> np.ndarray:
    """Cut each concave region of a 2D plane in two between its two deepest notches.

    A region :func:`concave_regions` marks is cut along the line between the deepest
    pixels of its two deepest notches, when both are ``depth`` deep and ``notch`` pixels
    large or more and the cut leaves two parts of ``part`` of the region or more; the
    line's pixels, and any smaller piece, go to the nearer part.  The first part keeps the
    region's label, the second gets the next free one, so other regions keep theirs.

    Returns ``labels`` itself when no region is cut, else a new array.
    """
    n = int(labels.max(initial=0))
    if n == 0:
        return labels
    marked, points = concave_regions(
        labels, solidity=solidity, min_area=min_area, depth=depth, notch=notch
    )
    if not marked.any():
        return labels
    out, new = labels, n + 1
    boxes = ndi.find_objects(labels, max_label=n)
    for v in np.flatnonzero(marked):
        box = _grown(boxes[v - 1], labels.shape)
        origin = np.array([s.start for s in box] * 2)
        second = _second_part(labels[box] == v, points[v] - origin, part=part)
        if second is None:
            continue
        if out is labels:
            out = labels.copy()
        out[box][second] = new
        new += 1
    return out


def _grown(box: tuple[slice, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    """``box`` grown by one pixel on each side, within ``shape``."""
    return tuple(
        slice(max(s.start - 1, 0), min(s.stop + 1, size))
        for s, size in zip(box, shape, strict=True)
    )


def _notches(mask: np.ndarray, hull: np.ndarray):
    """Return ``mask``'s notches' deepest pixels, sizes and depths (from the hull's edge).

    Notches are numbered in raster order of their first pixel; a notch's deepest pixel is
    its first in raster order among ties.
    """
    notches, n = ndi.label(hull & ~mask, structure=_EIGHT)
    inside = ndi.distance_transform_edt(np.pad(hull, 1))[1:-1, 1:-1].ravel()
    at = [np.flatnonzero(notches.ravel() == k) for k in range(1, n + 1)]
    deepest = [np.unravel_index(i[np.argmax(inside[i])], mask.shape) for i in at]
    depths = np.array([inside[i].max() for i in at])
    sizes = np.array([i.size for i in at])
    return deepest, sizes, depths


def _second_part(mask: np.ndarray, ends: np.ndarray, *, part: float) -> np.ndarray | None:
    """Return the pixels of ``mask``'s second part, cut from ``ends[:2]`` to ``ends[2:]``.

    None when the cut leaves fewer than two parts of ``part`` of ``mask`` or more; the
    line's pixels and any smaller piece go to the nearer part (see :func:`cut_concave`).
    """
    cut = mask.copy()
    cut[line(*ends)] = False
    parts, m = ndi.label(cut)
    if m < 2:
        return None
    counts = np.bincount(parts.ravel())[1:]
    big = np.argsort(-counts, kind="stable")[:2] + 1
    if counts[big - 1].min() < part * mask.sum():
        return None
    grown = expand_labels(np.where(np.isin(parts, big), parts, 0), 3) * mask
    grown[mask & (grown == 0)] = big[0]
    return grown == big[1]
