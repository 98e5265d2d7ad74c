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
) -> np.ndarray:
    """Which labels ``0..n`` of a 2D plane :func:`cut_concave` looks at (bool per label).

    A region of ``min_area`` pixels or more, fewer than ``solidity`` times its convex
    hull's, with two notches or more (8-connected components of its hull less itself) of
    ``notch`` pixels or more whose deepest pixel lies ``depth`` pixels or more from the
    nearest pixel outside the hull.  The hull is scikit-image's ``convex_hull_image``: the
    pixels whose centres lie inside or on the hull of the midpoints of the region's pixels'
    edges.  One compiled pass (:func:`bigseg.kernels._compiled.concave_regions`) where the
    compiled kernels pay, scikit-image and SciPy per region otherwise, with the same answer.
    """
    from .filters import compiled_pays

    n = int(labels.max(initial=0))
    out = np.zeros(n + 1, bool)
    if labels.dtype.kind in "iu" and compiled_pays(labels.size):
        from . import _compiled as compiled  # numba: imported (and its cache read) on first use

        args = (float(solidity), float(min_area), float(depth), int(notch))
        if compiled.concave_regions(np.ascontiguousarray(labels), n, *args, out):
            return out
        out[:] = False
    for v, box in enumerate(ndi.find_objects(labels, max_label=n), start=1):
        if box is None:
            continue
        mask = labels[_grown(box, labels.shape)] == v
        area = int(mask.sum())
        if area < min_area:
            continue
        hull = convex_hull_image(mask)
        if area < solidity * hull.sum():
            sizes, depths = _notches(mask, hull)[2:]
            out[v] = np.count_nonzero((sizes >= notch) & (depths >= depth)) >= 2
    return out


def cut_concave(
    labels: np.ndarray,
    *,
    solidity: float,
    min_area: float,
    depth: float,
    notch: int = 0,
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
    marked = concave_regions(labels, solidity=solidity, min_area=min_area, depth=depth, notch=notch)
    if not marked.any():
        return labels
    out, new = labels, n + 1
    boxes = ndi.find_objects(labels, max_label=n)
    for v in np.flatnonzero(marked):
        box = _grown(boxes[v - 1], labels.shape)
        mask = labels[box] == v
        second = _second_part(mask, depth=depth, notch=notch, part=part)
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
    """Return ``mask``'s notches: labels, deepest pixels, sizes and depths (from the hull)."""
    notches, n = ndi.label(hull & ~mask, structure=_EIGHT)
    index = np.arange(1, n + 1)
    inside = ndi.distance_transform_edt(np.pad(hull, 1))[1:-1, 1:-1]
    deepest = ndi.maximum_position(inside, notches, index=index)
    depths = inside[tuple(np.transpose(deepest))] if n else np.zeros(0)
    sizes = np.bincount(notches.ravel(), minlength=n + 1)[1:]
    return notches, deepest, sizes, depths


def _second_part(mask: np.ndarray, *, depth: float, notch: int, part: float) -> np.ndarray | None:
    """Return the pixels of ``mask``'s second part once cut (see :func:`cut_concave`), or None."""
    _, deepest, sizes, depths = _notches(mask, convex_hull_image(mask))
    if depths.size < 2:
        return None
    two = np.argsort(-depths, kind="stable")[:2]
    if depths[two].min() < depth or sizes[two].min() < notch:
        return None
    cut = mask.copy()
    cut[line(*deepest[two[0]], *deepest[two[1]])] = False
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
