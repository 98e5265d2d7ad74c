"""Planes split into y/x chunks: segment with a halo, stitch labels, measure exactly.

When a stack's planes are split into y/x chunks, each block is segmented
together with a halo of neighbouring pixels (``dask.array.overlap`` with
depth 0 along t and z), trimmed back to its core, and its labels are made
unique by keeping them block-local: a label is the pair (block, local id).
Labels that continue across a block face are found from one row (column) of
pixels per face, where the lower block's halo and the upper block's core
overlap: every face gives one small table of label pairs, and one
``connected_components`` over all pairs gives each region its plane-wide id.
No graph over pairs of blocks is built: the task count is linear in the
number of blocks.

The ``default`` preset's foreground (3D smoothing, local maximum) is a
neighbourhood operation computed beforehand with its own halo in z, y and x
(the method's pre-pass, :mod:`bigseg.methods.default`), exact in every block; its blocks
then go through the per-plane part only (distance peaks, watershed, size
filter), with the halo below without its smoothing term,
and are measured on the stack's intensities.

Measurements of regions that span blocks are exact: every block gives
partial sums per label (pixel count, intensity sum, sums of y, x, y·I and
x·I), combined per stitched region by a groupby; centroids are ratios of the
sums.

Exactness
---------
The per-plane recipe is: foreground (for ``seed``, smoothing over a disk of
radius ``s`` and a threshold, so a pixel depends on the raw data within
``2 s``; for ``default`` the exact pre-pass, ``s = 0``); Euclidean distance
transform; markers at the distance peaks of ``peak_local_max(distance,
min_distance=d, labels=foreground)``; watershed of ``-distance`` from the
markers within the foreground; size filter.  A block grown by its halo
runs exactly that recipe, so its labels equal the whole plane's wherever
every step reads the same values.  The halo ``H = 2 s + d + 2 ceil(max_radius)
+ 2`` pixels makes that true for any cluster at most ``2 max_radius`` across,
but it is only a worst case: :mod:`bigseg.chunked.exact` checks each block's
foreground components one by one.  Distances below are in pixels from the
block's cut sides (not the plane's own edges, which block and plane share).

1. *Foreground.*  Exact at ``2 s`` pixels or more from the cut sides.
2. *Components.*  A component of the block's foreground whose pixels all lie
   at ``2 s + 1`` or more is a component of the plane's foreground, the same
   pixels.  Its distances are exact: the open disk around a pixel out to its
   nearest background is foreground, so inside the component, and that
   background pixel is a 4-neighbour of the disk.  Any other pixel's
   distance is exact when its distance disk lies where the foreground is
   exact; every distance is at most that to the nearest pixel known to be
   background, a bound on the plane's value.
3. *Peak candidates.*  ``peak_local_max`` ignores foreground within ``d`` of the
   image edge (the block's cut sides; the plane's own edges for both), then
   takes the pixels equal to the maximum of the distance over their
   ``(2 d + 1)`` square.  The block's candidates are known; a pixel is a
   candidate of the plane surely when the upper bounds over its square are at
   most its exact distance, and surely not when an exact value in it is
   larger.  Where the two agree the pixel's status is proven.
4. *Suppression.*  Candidates are taken by decreasing distance (ties in raster
   order, the same in block and plane) and dropped within Chebyshev distance
   ``< d`` of one kept: a candidate's fate depends only on its chain of
   candidates less than ``d`` apart.  A chain that holds no pixel of unproven
   status gives the same markers in block and plane.  ``peak_local_max`` finds
   no peak at all in a "trivial" image (every foreground pixel it looks at a
   candidate): that, for block or plane, leaves the whole plane unproven.
5. *Watershed.*  Flooding stays inside a component: its regions depend only on
   its own distances and markers, and on the order in which the heap pops
   them.  scikit-image gives every marker age 0, so markers of equal distance
   would leave its heap in an order set by the other markers of the image;
   bigseg floods :func:`bigseg.kernels.watershed.flood_levels` instead, which
   orders markers of equal height by position (row-major, which a block
   keeps) and changes no other comparison: a component's split depends on
   nothing outside it.
6. *Size filter, sums, stitching.*  Per region, so exact for proven regions;
   a region that continues across a face is proven in each block that holds
   part of it.

A component touching a block's core (or the row and column after it, which
go into the face tables) that fails 2-5 is counted in ``clusters_beyond_halo``:
for those, and only those, exactness is not proven.  Chains of touching
nuclei that reach out of the halo, the long bright bar (one cluster across
the plane, its markers placed differently in each block) are the usual ones.
The default method's kernel decides everything within one component of its
(exact) filled foreground; a component is proven when none of its pixels
lies on a cut side's edge (:func:`bigseg.chunked.exact.unproven_local`).
A method whose kernel is opaque (neither ``foreground`` nor ``components``,
see :class:`bigseg.methods.Method`) gets the older conservative proxy: clusters of
kept regions that touch a core and reach the outer ``2 s + d`` pixels of its
halo.  ``face_conflicts`` counts places where two neighbouring blocks label
the pixels of a face differently (one labels a pixel, the other not; or one
region meets two): there the result certainly differs from whole planes.
Zero conflicts do not prove exactness (the bar above has none).

:func:`bigseg.run` records both in ``run.json`` and warns when either is not
zero.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable

import dask.array as da
import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..kernels import LABEL_DTYPE
from ..kernels.regions import SUM_COLUMNS, block_sums
from ..kernels.watershed import filter_sizes, split_plane
from ..params import PixelParams
from ..tables import PEAK, empty_sums, sums_frame
from .exact import unproven_components, unproven_local
from .maps import map_with_halo
from .plan import block_starts
from .relabel import apply_luts, block_luts

__all__ = [
    "Block",
    "StitchCounts",
    "Stitched",
    "core_labels",
    "face_table",
    "face_pairs",
    "halo_of",
    "partial_sums",
    "segment_blocks",
    "segment_stitched",
    "side_tables",
    "stitch",
    "stitch_grid",
    "summaries",
    "warn_unproven",
]


def halo_of(px: PixelParams) -> int:
    """Halo in pixels (per side, along y and x) that makes stitching exact for a plane kernel.

    ``px`` are the sizes the block kernel sees (see the module doc).
    """
    return int(2 * px.smooth_radius + px.min_distance + 2 * math.ceil(px.max_radius) + 2)


@dataclasses.dataclass
class Block:
    """What segmenting one block (with its halo) gives; small except ``core``."""

    index: tuple[int, int, int, int]
    flat: int
    origin: tuple[int, int, int, int]
    core: np.ndarray | None  # (t, z, y, x) block-local labels
    after_y: np.ndarray | None  # (t, z, x) labels on the next block's first row
    after_x: np.ndarray | None  # (t, z, y) labels on the next block's first column
    sums: pd.DataFrame  # partial sums per (t, z, label) over the core
    beyond: int  # clusters whose regions are not proven equal to whole planes'
    first_y: np.ndarray | None = None  # (t, z, x) the core's first row (side tables only)
    first_x: np.ndarray | None = None  # (t, z, y) the core's first column (side tables only)


def segment_blocks(
    data: da.Array,
    thresholds: da.Array,
    px: PixelParams,
    block_fn: Callable[[np.ndarray, np.ndarray, PixelParams], np.ndarray],
    *,
    halo: int,
    image: da.Array | None = None,
    foreground: Callable[[np.ndarray, np.ndarray, PixelParams], np.ndarray] | None = None,
    components: Callable[[np.ndarray, np.ndarray, PixelParams], np.ndarray] | None = None,
    peaks: bool = False,
) -> da.Array:
    """Segment every block of a ``(t, z, y, x)`` array with its halo (lazy).

    Returns an object array with one :class:`Block` per block.
    ``block_fn(block, thresholds, px)`` is the method's block kernel, applied to the
    block extended by its halo.  ``image`` (same shape) holds the intensities to
    measure when they are not ``data`` itself.  ``data``'s y/x chunks must hold at
    least ``halo`` pixels (:func:`bigseg.chunked.plan.fit_to_halo`).  With
    ``foreground(block, thresholds, px)`` (the mask ``block_fn`` splits with
    :func:`bigseg.kernels.watershed.split_plane` and the size filter; the same
    labels), every block's regions are checked component by component (see
    "Exactness" above); with ``components(block, thresholds, px)`` (the mask a
    component-local kernel splits), component by component with
    :func:`bigseg.chunked.exact.unproven_local`; with neither, by the conservative proxy.
    With ``peaks``, each region's partial sums hold its largest value of ``data`` too
    (:data:`bigseg.tables.PEAK`).
    """
    thr = thresholds.reshape((-1, 1, 1, 1)).rechunk((data.chunks[0], 1, 1, 1))
    margin = 2 * px.smooth_radius + px.min_distance
    args: tuple[da.Array, ...] = (thr,)
    if image is not None:  # map_blocks pairs blocks by index: data's hold halos, image's not
        args = (thr, image.rechunk(data.chunks))
    return map_with_halo(
        data,
        (0, halo, halo),
        _block_record,
        *args,
        dtype=object,
        one_per_block=True,
        px=px,
        block_fn=block_fn,
        foreground=foreground,
        components=components,
        band=margin,
        chunks_all=data.chunks,
        peaks=peaks,
    )


def _block_record(
    ext: np.ndarray,
    thr: np.ndarray,
    core_image: np.ndarray | None = None,
    *,
    margin: tuple[tuple[int, int], ...],
    index: tuple[int, ...],
    numblocks: tuple[int, ...],
    px: PixelParams,
    block_fn: Callable,
    foreground: Callable | None,
    components: Callable | None,
    band: int,
    chunks_all: tuple[tuple[int, ...], ...],
    peaks: bool = False,
) -> Block:
    """Segment one block grown by its halo; keep its core, face rows and partial sums."""
    by, bx = index[2], index[3]
    top, left = margin[1][0], margin[2][0]
    cy, cx = chunks_all[2][by], chunks_all[3][bx]
    sides = (by > 0, by < numblocks[2] - 1, bx > 0, bx < numblocks[3] - 1)
    if foreground is not None:
        labels, beyond = _checked_labels(
            np.asarray(foreground(ext, thr, px), bool), px, (top, cy, left, cx), sides
        )
    else:
        labels = block_fn(ext, thr, px)
        if components is not None:
            mask = np.asarray(components(ext, thr, px), bool)
            beyond = sum(
                unproven_local(plane, core=(top, cy, left, cx), sides=sides)
                for plane in mask.reshape((-1, *mask.shape[-2:]))
            )
        else:
            beyond = _clusters_beyond(labels, (top, cy, left, cx), sides, band, px.min_distance)
    core = np.ascontiguousarray(labels[:, :, top : top + cy, left : left + cx])
    after_y = labels[:, :, top + cy, left : left + cx].copy() if by < numblocks[2] - 1 else None
    after_x = labels[:, :, top : top + cy, left + cx].copy() if bx < numblocks[3] - 1 else None
    origin = tuple(int(s[i]) for s, i in zip(block_starts(chunks_all), index))
    image = ext[:, :, top : top + cy, left : left + cx] if core_image is None else core_image
    flat = int(np.ravel_multi_index(index, numblocks))
    peak = ext[:, :, top : top + cy, left : left + cx] if peaks else None
    sums = partial_sums(core, image, origin, peak)
    sums.insert(0, "block", flat)
    return Block(
        index,  # type: ignore[arg-type]
        flat,
        origin,  # type: ignore[arg-type]
        core,
        after_y,
        after_x,
        sums,
        beyond,
    )


def _checked_labels(
    binary: np.ndarray,
    px: PixelParams,
    core: tuple[int, int, int, int],
    sides: tuple[bool, bool, bool, bool],
) -> tuple[np.ndarray, int]:
    """Split every plane of a grown foreground block; count the components not proven exact."""
    labels = np.zeros(binary.shape, LABEL_DTYPE)
    beyond = 0
    for index in np.ndindex(*binary.shape[:-2]):
        regions, distance, _ = split_plane(binary[index], min_distance=px.min_distance)
        labels[index] = filter_sizes(regions, min_radius=px.min_radius, max_radius=px.max_radius)
        beyond += unproven_components(
            binary[index],
            distance,
            core=core,
            sides=sides,
            reach=2 * px.smooth_radius,
            min_distance=px.min_distance,
        )
    return labels, beyond


def _clusters_beyond(
    labels: np.ndarray,
    core: tuple[int, int, int, int],
    sides: tuple[bool, bool, bool, bool],
    margin: int,
    min_distance: int,
) -> int:
    """Count clusters of kept regions that touch the core and reach the halo's outer margin."""
    top, cy, left, cx = core
    ny, nx = labels.shape[-2:]
    band = np.zeros((ny, nx), bool)
    if sides[0]:
        band[:margin] = True
    if sides[1]:
        band[ny - margin :] = True
    if sides[2]:
        band[:, :margin] = True
    if sides[3]:
        band[:, nx - margin :] = True
    if not band.any():
        return 0
    reach = 2 * math.ceil(min_distance / 2) + 1
    count = 0
    for plane in labels.reshape((-1, ny, nx)):
        fg = plane > 0
        if not fg[band].any():
            continue
        clusters, _ = ndi.label(ndi.maximum_filter(fg, size=reach), structure=np.ones((3, 3)))
        clusters = np.where(fg, clusters, 0)
        in_core = np.unique(clusters[top : top + cy, left : left + cx])
        in_band = np.unique(clusters[band])
        count += int(np.count_nonzero(np.intersect1d(in_core, in_band)))
    return count


def partial_sums(
    labels: np.ndarray,
    image: np.ndarray,
    origin: tuple[int, int, int, int],
    peak: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per ``(t, z, label)`` sums over a ``(t, z, y, x)`` block (:data:`bigseg.tables.SUM_DTYPES`).

    ``y`` and ``x`` sums are in stack index units, so blocks add up.  With ``peak`` (the
    method's signal of the block), each region's largest value of it too
    (:data:`bigseg.tables.PEAK`: blocks combine by their maximum).
    """
    return sums_frame(block_sums(labels, image, origin, peak))


# --------------------------------------------------------------------------- faces


def face_pairs(blocks: da.Array) -> list[da.Array]:
    """Label pairs across every block face, one small table per face (lazy object arrays).

    ``blocks`` are :func:`side_tables`: only their edge rows travel between workers.

    Each table has rows ``(block_lo, block_hi, t, z, label_lo, label_hi)``.
    """
    out = []
    if blocks.numblocks[2] > 1:
        out.append(
            da.map_blocks(
                _pairs, blocks[:, :, :-1], blocks[:, :, 1:], axis=2, dtype=object, meta=_OBJ
            )
        )
    if blocks.numblocks[3] > 1:
        out.append(
            da.map_blocks(
                _pairs, blocks[:, :, :, :-1], blocks[:, :, :, 1:], axis=3, dtype=object, meta=_OBJ
            )
        )
    return out


_OBJ = np.empty((0, 0, 0, 0), object)


def _pairs(lo: np.ndarray, hi: np.ndarray, axis: int) -> np.ndarray:
    out = np.empty((1, 1, 1, 1), object)
    out[0, 0, 0, 0] = face_table(lo[0, 0, 0, 0], hi[0, 0, 0, 0], axis)
    return out


def face_table(a: Block, b: Block, axis: int) -> tuple[np.ndarray, int]:
    """Label pairs across the face between block ``a`` and the next block ``b`` along ``axis``.

    Returns the table (rows ``block_lo, block_hi, t, z, label_lo, label_hi``) and the
    number of face pixels that one block labels and the other does not.
    """
    ring, first = (a.after_y, b.first_y) if axis == 2 else (a.after_x, b.first_x)
    both = (ring > 0) & (first > 0)  # type: ignore[operator]
    tt, zz, _ = np.nonzero(both)
    rows = np.column_stack(
        [tt + a.origin[0], zz + a.origin[1], ring[both], first[both]]  # type: ignore[index]
    ).astype(np.int64)
    rows = np.unique(rows, axis=0) if len(rows) else np.empty((0, 4), np.int64)
    table = np.column_stack([np.full(len(rows), a.flat), np.full(len(rows), b.flat), rows]).astype(
        np.int64
    )
    # Pixels that one block labels and the other does not: the two disagree.
    mismatch = int(np.count_nonzero((ring > 0) != (first > 0)))  # type: ignore[operator]
    return table, mismatch


def side_tables(blocks: da.Array) -> da.Array:
    """Drop the label arrays from the blocks, keeping what stitching needs (lazy).

    That is the sums, and the rows on both sides of each face.
    """
    return blocks.map_blocks(_side, dtype=object, meta=_OBJ)


def summaries(side: da.Array) -> da.Array:
    """Keep only the sums and bookkeeping of each block (what returns to the client)."""
    return side.map_blocks(_summary, dtype=object, meta=_OBJ)


def _summary(side: np.ndarray) -> np.ndarray:
    b: Block = side[0, 0, 0, 0]
    out = np.empty((1, 1, 1, 1), object)
    out[0, 0, 0, 0] = dataclasses.replace(b, after_y=None, after_x=None, first_y=None, first_x=None)
    return out


def _side(blocks: np.ndarray) -> np.ndarray:
    b: Block = blocks[0, 0, 0, 0]
    out = np.empty((1, 1, 1, 1), object)
    core = b.core
    out[0, 0, 0, 0] = dataclasses.replace(
        b, core=None, first_y=core[:, :, 0, :].copy(), first_x=core[:, :, :, 0].copy()
    )
    return out


def core_labels(blocks: da.Array, chunks: tuple[tuple[int, ...], ...]) -> da.Array:
    """Block-local core labels as a ``(t, z, y, x)`` int32 array (lazy)."""
    return blocks.map_blocks(
        _core, chunks=chunks, dtype=LABEL_DTYPE, meta=np.empty((0, 0, 0, 0), LABEL_DTYPE)
    )


def _core(blocks: np.ndarray) -> np.ndarray:
    return blocks[0, 0, 0, 0].core


# --------------------------------------------------------------------------- stitching


@dataclasses.dataclass
class Stitched:
    """Result of stitching: every block-local label's region, and the combined sums."""

    nodes: pd.DataFrame  # block, t, z, label (local) -> region (plane-wide label)
    sums: pd.DataFrame  # t, z, label (plane-wide), SUM_COLUMNS
    side: np.ndarray  # the blocks' Block records, without labels
    beyond: int  # clusters whose regions are not proven equal to whole planes'
    conflicts: int  # faces where neighbouring blocks disagree: results differ there

    def counts(self) -> StitchCounts:
        """Return what ``run.json`` counts of this stitching."""
        return StitchCounts(
            blocks=int(self.side.size),
            regions_across_faces=int((self.nodes.groupby(["t", "z", "region"]).size() > 1).sum()),
            beyond=self.beyond,
            conflicts=self.conflicts,
        )

    def record(self, halo: int) -> dict:
        """Return what ``run.json`` says about stitching."""
        return self.counts().record(halo)


@dataclasses.dataclass(frozen=True)
class StitchCounts:
    """The counts of a stitching, which add up over slabs stitched apart (:func:`stitch_grid`)."""

    blocks: int = 0
    regions_across_faces: int = 0
    beyond: int = 0  # clusters whose regions are not proven equal to whole planes'
    conflicts: int = 0  # faces where neighbouring blocks disagree

    def __add__(self, other: StitchCounts) -> StitchCounts:
        return StitchCounts(
            *(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other)))
        )

    def record(self, halo: int) -> dict:
        """Return what ``run.json`` says about stitching."""
        return {
            "halo_px": halo,
            "blocks": self.blocks,
            "regions_across_faces": self.regions_across_faces,
            "clusters_beyond_halo": self.beyond,
            "face_conflicts": self.conflicts,
        }


def stitch(side: np.ndarray, pairs: list[np.ndarray]) -> Stitched:
    """Union the labels that continue across faces; combine the partial sums (NumPy/pandas).

    Parameters
    ----------
    side : object ndarray of :class:`Block`
        Computed :func:`side_tables`.
    pairs : list of object ndarrays
        Computed :func:`face_pairs`.
    """
    blocks = list(side.ravel())
    sums = pd.concat([empty_sums().assign(block=0)] + [b.sums for b in blocks], ignore_index=True)
    faces = [item for arr in pairs for item in arr.ravel()]
    pair = np.concatenate([np.empty((0, 6), np.int64)] + [table for table, _ in faces])
    # Where two blocks agree, labels continue one-to-one across a face.
    lo_key = pd.DataFrame(pair[:, [0, 1, 2, 3, 4]]).duplicated().sum()
    hi_key = pd.DataFrame(pair[:, [0, 1, 2, 3, 5]]).duplicated().sum()
    conflicts = int(lo_key + hi_key) + sum(1 for _, m in faces if m)
    keys = np.concatenate(
        [
            sums[["block", "t", "z", "label"]].to_numpy(np.int64),
            pair[:, [0, 2, 3, 4]],
            pair[:, [1, 2, 3, 5]],
        ]
    )
    nodes, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    n_sums, n_pair = len(sums), len(pair)
    a = inverse[n_sums : n_sums + n_pair]
    b = inverse[n_sums + n_pair :]
    graph = coo_matrix((np.ones(n_pair), (a, b)), shape=(len(nodes), len(nodes)))
    _, component = connected_components(graph, directed=False)
    node_df = pd.DataFrame(nodes, columns=["block", "t", "z", "label"])
    node_df["component"] = component
    # Plane-wide ids 1..n per (t, z), in order of each region's first node.
    first = node_df.drop_duplicates("component")[["component", "t", "z"]]
    first = first.assign(region=first.groupby(["t", "z"]).cumcount() + 1)
    node_df["region"] = first.set_index("component")["region"].reindex(component).to_numpy()
    # Combine the partial sums per region.
    sums = sums.assign(region=node_df["region"].to_numpy()[inverse[:n_sums]])
    spec = dict.fromkeys(SUM_COLUMNS, "sum")
    if PEAK in sums.columns:  # the method's signal peak: the largest of the blocks'
        spec[PEAK] = "max"
    combined = sums.groupby(["t", "z", "region"], sort=True).agg(spec).reset_index()
    combined = combined.rename(columns={"region": "label"})
    return Stitched(
        nodes=node_df.drop(columns="component"),
        sums=combined,
        side=side,
        beyond=int(sum(b.beyond for b in blocks)),
        conflicts=conflicts,
    )


def stitch_grid(records: np.ndarray) -> Stitched:
    """Stitch a grid of block records (:func:`side_tables`, computed) whose faces all lie in it.

    ``records`` is an object array shaped like a part of the block grid that holds
    whole planes: a slab of one t-chunk and one z-chunk, say.  Planes are stitched
    independently, so slabs can be stitched apart, each by its own task.
    """
    pairs = []
    for axis in (2, 3):
        lo = np.moveaxis(records, axis, 0)[:-1].ravel()
        hi = np.moveaxis(records, axis, 0)[1:].ravel()
        faces = np.empty(len(lo), object)
        for k, (a, b) in enumerate(zip(lo, hi)):
            faces[k] = face_table(a, b, axis)
        pairs.append(faces)
    return stitch(records, pairs)


def segment_stitched(
    data: da.Array,
    thresholds: da.Array,
    px: PixelParams,
    block_fn: Callable,
    *,
    halo: int,
    image: da.Array | None = None,
    foreground: Callable | None = None,
    components: Callable | None = None,
) -> da.Array:
    """Plane-wide labels (1..n per plane) of a y/x-chunked ``(t, z, y, x)`` array (lazy).

    Faces are stitched per slab of planes (one t chunk by one z chunk): the
    block labels of a slab are held until its stitching is done.  To stream
    labels of stacks whose slabs do not fit in memory use :func:`bigseg.run`.
    ``foreground`` and ``components`` as :func:`segment_blocks`.
    """
    blocks = segment_blocks(
        data,
        thresholds,
        px,
        block_fn,
        halo=halo,
        image=image,
        foreground=foreground,
        components=components,
    )
    raw = core_labels(blocks, data.chunks)
    side = side_tables(blocks)
    summ = summaries(side)
    pairs = face_pairs(side)
    # One task per slab: rechunk the small per-block tables to one chunk per slab.
    per_slab = {0: 1, 1: 1, 2: -1, 3: -1}
    luts = da.map_blocks(
        _slab_luts,
        summ.rechunk(per_slab),
        *[p.rechunk(per_slab) for p in pairs],
        chunks=tuple((1,) * n for n in blocks.numblocks[:2])
        + tuple((n,) for n in blocks.numblocks[2:]),
        dtype=object,
        meta=_OBJ,
    ).rechunk(1)
    return apply_luts(raw, luts, LABEL_DTYPE)


def _slab_luts(side: np.ndarray, *pairs: np.ndarray) -> np.ndarray:
    return _plane_luts(side, list(pairs))


def _plane_luts(side: np.ndarray, pairs: list[np.ndarray]) -> np.ndarray:
    st = stitch(side, pairs)
    return block_luts(st.nodes, side, st.nodes["region"].to_numpy(), LABEL_DTYPE)


def warn_unproven(stitched: Stitched | StitchCounts, halo: int) -> None:
    """Warn when some clusters are not proven equal to whole planes, or blocks disagree."""
    if stitched.beyond or stitched.conflicts:
        warnings.warn(
            f"{stitched.beyond} foreground cluster(s) are not proven identical to whole-plane "
            "segmentation: they are not seen whole, with the margin the recipe needs, within "
            f"the {halo} px halo of their block ({stitched.conflicts} disagreement(s) seen on "
            "block faces). Use larger y/x chunks (or whole planes) where that matters.",
            UserWarning,
            stacklevel=3,
        )
