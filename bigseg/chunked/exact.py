"""Which regions of a block grown by its halo are provably those of whole planes.

The argument is in :mod:`bigseg.chunked.stitch` ("Exactness"); this module
checks it, plane by plane, on what the block's per-plane split was made from.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..kernels.watershed import distance_to_background

__all__ = ["unproven_components", "unproven_local"]

_EIGHT = np.ones((3, 3), bool)


def unproven_components(
    binary: np.ndarray,
    distance: np.ndarray,
    *,
    core: tuple[int, int, int, int],
    sides: tuple[bool, bool, bool, bool],
    reach: int,
    min_distance: int,
) -> int:
    """Count the foreground components of one grown plane not proven equal to whole planes.

    Parameters
    ----------
    binary, distance : (Y, X) ndarray
        The block's foreground (grown by its halo) and its distance transform
        (:func:`bigseg.kernels.watershed.split_plane`).
    core : (top, height, left, width)
        The block's core inside the grown plane.
    sides : (top, bottom, left, right) of bool
        Which sides of the grown plane are cut (not the plane's own edges).
    reach : int
        Pixels of raw data each foreground pixel depends on (Chebyshev), per side:
        ``2 * smooth_radius`` for the seed recipe, 0 when the foreground is exact.
    min_distance : int
        The markers' ``min_distance``.

    Returns
    -------
    int
        Components touching the core (or the row and column after it, which go
        into the face tables) whose regions are not proven.
    """
    ny, nx = binary.shape
    components, touching = _touching_core(binary, core, sides)
    if touching.size == 0:
        return 0
    if binary.all():  # no background: the peak threshold is not the whole plane's
        return int(touching.size)
    d = int(min_distance)
    # Pixels from the cut sides (h), from the plane's own edges (e), and from where
    # the foreground is exact (g).
    h = _from_sides((ny, nx), sides)
    e = _from_sides((ny, nx), tuple(not side for side in sides))
    g = h - int(reach)
    exact_fg = g >= 0
    # Exact distance: a component whose 4-neighbours all have exact foreground has
    # its nearest background among them; so has any pixel whose distance disk is exact.
    partial = np.zeros(components.max() + 1, bool)
    partial[components[binary & (g < 1)]] = True
    partial[0] = False
    exact_dist = exact_fg & (~partial[components] | (g >= np.floor(distance)))
    # Bounds on the whole plane's distance: exact, or at most the distance to the
    # nearest background known to be background.
    known_bg = exact_fg & ~binary
    if not known_bg.any():
        upper = np.full(binary.shape, np.inf)
    elif reach == 0:  # the whole block's foreground is exact: so are its distances' bounds
        upper = distance
    else:
        upper = distance_to_background(~known_bg)
    upper = np.where(exact_dist, distance, upper)
    upper[known_bg] = -1.0
    lower = np.where(exact_dist & binary, distance, -1.0)
    size = 2 * d + 1
    in_plane = e >= d  # outside the whole plane's excluded border
    inside = in_plane & (h >= d)  # outside the block's: where it looks for peaks
    masked = np.where(binary & inside, distance, -1.0)
    peak = binary & inside & (distance == ndi.maximum_filter(masked, size=size, mode="nearest"))
    plane_low = ndi.maximum_filter(
        np.where(in_plane, lower, -1.0), size=size, mode="constant", cval=-1.0
    )
    plane_high = ndi.maximum_filter(
        np.where(in_plane, upper, -1.0), size=size, mode="constant", cval=np.inf
    )
    plane_peak = in_plane & (plane_high <= distance)  # a peak of the whole plane, surely
    not_plane_peak = ~in_plane | (plane_low > distance)  # surely not
    status = known_bg | (binary & exact_dist & ((peak & plane_peak) | (~peak & not_plane_peak)))
    # Suppression (peaks less than d apart) chains through peaks: those connected to
    # a pixel of unknown status are not proven.
    unknown = ~status
    nodes = (peak & status) | unknown
    half = max((d - 1) // 2, 0)
    grown = ndi.maximum_filter(nodes, size=2 * half + 1) if half else nodes
    chains, _ = ndi.label(grown, structure=_EIGHT)
    open_chain = np.zeros(chains.max() + 1, bool)
    open_chain[chains[unknown]] = True
    open_chain[0] = False
    bad_pixel = binary & (~status | (peak & open_chain[chains]) | (g < 1))
    # scikit-image finds no peaks in a "trivial image", where every foreground pixel
    # it looks at is a peak: the block's, and maybe the plane's if none is surely not.
    block_trivial = not (binary & inside & ~peak).any()
    plane_trivial = not (binary & exact_dist & in_plane & (plane_low > distance)).any()
    if block_trivial or plane_trivial:
        return int(touching.size)
    bad = np.zeros(components.max() + 1, bool)
    bad[components[bad_pixel]] = True
    bad[0] = False
    return int(bad[touching].sum())


def _from_sides(shape: tuple[int, int], sides: tuple[bool, ...]) -> np.ndarray:
    """Pixels from the nearest of the given sides (top, bottom, left, right); large if none."""
    ny, nx = shape
    big = ny + nx
    hy, hx = np.full(ny, big), np.full(nx, big)
    rows, cols = np.arange(ny), np.arange(nx)
    if sides[0]:
        hy = np.minimum(hy, rows)
    if sides[1]:
        hy = np.minimum(hy, ny - 1 - rows)
    if sides[2]:
        hx = np.minimum(hx, cols)
    if sides[3]:
        hx = np.minimum(hx, nx - 1 - cols)
    return np.minimum.outer(hy, hx)


def unproven_local(
    binary: np.ndarray,
    *,
    core: tuple[int, int, int, int],
    sides: tuple[bool, bool, bool, bool],
) -> int:
    """Count the components of one grown plane that a component-local kernel may get wrong.

    For a kernel that decides everything within one connected component of an exact
    foreground (the default method's :func:`bigseg.kernels.watershed.split_plane_apart`
    after its holes are filled), a component touching the core (or the row and column
    after it) is the whole plane's when none of its pixels lies on a cut side's edge:
    then it, its holes, its distances (the nearest background of a component lies within
    its box grown by one pixel), its markers and its regions are the whole plane's.

    Parameters
    ----------
    binary : (Y, X) ndarray of bool
        The mask the kernel splits (after hole filling), grown by the halo.
    core, sides
        As :func:`unproven_components`.
    """
    ny, nx = binary.shape
    components, touching = _touching_core(binary, core, sides)
    if touching.size == 0:
        return 0
    edge = _from_sides((ny, nx), sides) < 1
    cut = np.zeros(components.max() + 1, bool)
    cut[components[binary & edge]] = True
    cut[0] = False
    return int(cut[touching].sum())


def _touching_core(
    binary: np.ndarray, core: tuple[int, int, int, int], sides: tuple[bool, bool, bool, bool]
) -> tuple[np.ndarray, np.ndarray]:
    """Label ``binary``'s components; return them and the ids touching the core or face rows."""
    components, _ = ndi.label(binary)
    top, cy, left, cx = core
    window = components[top : top + cy + sides[1], left : left + cx + sides[3]]
    return components, np.unique(window[window > 0])
