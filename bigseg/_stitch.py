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
(:func:`bigseg._local.split_foreground`), exact in every block; its blocks
then go through the per-plane part only (distance peaks, watershed, size
filter), with the halo below without its smoothing term (:func:`block_px`),
and are measured on the stack's intensities.

Measurements of regions that span blocks are exact: every block gives
partial sums per label (pixel count, intensity sum, sums of y, x, y·I and
x·I), combined per stitched region by a groupby; centroids are ratios of the
sums.

Exactness
---------
The per-plane recipe (smoothing over a disk of radius ``s``; threshold;
distance transform; distance peaks at least ``d`` = ``min_distance`` apart;
watershed; size filter) computes a region from its own foreground cluster:
the foreground components within ``d`` pixels (Chebyshev) of each other, and
the pixels within ``2 s + d`` of that cluster.  A block's halo is therefore
``H = 2 s + d + 2 ceil(max_radius) + 2`` pixels, so that any cluster that
touches a block's core and is at most ``2 max_radius`` pixels across (one
nucleus of the largest size kept, or a few smaller touching ones) is seen
whole, with its surroundings, by that block: its labels and measurements are
then identical to those of whole-plane chunks.  Larger clusters (chains of
touching nuclei, big bright debris) are common in dense tissue and are not
covered by this proof.  Two run-time checks say how a run fared:

* ``clusters_beyond_halo`` counts clusters of kept regions that touch a core
  and reach the outer ``2 s + d`` pixels of its halo: exactness is not proven
  for them (a conservative proxy: foreground dropped by the size filter is
  not seen).  On synthetic stacks dense with touching nuclei they came out
  identical for every chunking tested; a long bright bar (one cluster across
  the plane) does not: its markers are placed differently.
* ``face_conflicts`` counts places where two neighbouring blocks label the
  pixels of a face differently (one labels a pixel, the other not; or one
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
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ._errors import InputError
from .params import PixelParams

LABEL_DTYPE = np.int32

#: Columns of the per-block partial sums (one row per label per plane per block).
SUM_COLUMNS = ("area_px", "sum_i", "sum_y", "sum_x", "sum_yi", "sum_xi")


def plan(
    data: da.Array, px: PixelParams, stitch: bool | None, preset: str = "seed"
) -> da.Array | None:
    """Return the ``(t, z, y, x)`` data rechunked for stitching, or None for whole planes.

    ``stitch=None`` stitches when the planes are split and the chunks allow
    the halo; ``True`` requires it (:class:`bigseg.InputError` naming the
    minimum chunk size otherwise); ``False`` never stitches.  Presets
    without a block kernel (:func:`block_kernel`) use whole planes.
    """
    if stitch is False or not planes_split(data):
        return None
    if block_kernel(preset) is None:
        if stitch:
            raise InputError(
                f"The {preset!r} preset cannot segment planes split into y/x chunks yet; "
                "use chunks=(z, -1, -1) (whole planes)."
            )
        return None
    return fit_to_halo(data, halo_px(px, preset), strict=bool(stitch))


def block_kernel(preset: str) -> Callable | None:
    """Return the block kernel that stitching runs on blocks with their halo, or None.

    The one place that pairs a preset's kernel with :func:`halo_px`, which is
    derived for the recipe's kernel (smoothing disks, distance peaks,
    watershed, size filter).  A preset whose kernel reaches further than that
    needs its own entry and halo here; without one, its split planes are
    segmented as whole planes.

    ``default``: its foreground (3D smoothing, local maximum) is computed
    beforehand with its own reach (:func:`block_input`), and the kernel
    splits the foreground's planes (distance peaks, watershed, size filter):
    the recipe's kernel without its smoothing (:func:`block_px`).
    """
    from ._local import _segment_foreground_block
    from .segment import _segment_block

    return {"seed": _segment_block, "default": _segment_foreground_block}.get(preset)


def block_px(px: PixelParams, preset: str = "seed") -> PixelParams:
    """Return the pixel sizes a preset's block kernel sees (no smoothing for ``default``)."""
    return dataclasses.replace(px, smooth_radius=0) if preset == "default" else px


def halo_px(px: PixelParams, preset: str = "seed") -> int:
    """Halo in pixels (per side, along y and x) that makes stitching exact (see module doc)."""
    px = block_px(px, preset)
    return int(2 * px.smooth_radius + px.min_distance + 2 * math.ceil(px.max_radius) + 2)


def block_input(
    data: da.Array, thresholds: da.Array, params: Any, scale: tuple[float, ...]
) -> tuple[da.Array, da.Array | None]:
    """Return what a preset's block kernel segments, and the intensities to measure.

    ``seed`` segments the stack itself; ``default`` its foreground
    (:func:`bigseg._local.split_foreground`, exact in every block), measured
    on the stack's intensities (None: measure what is segmented).
    """
    if params.preset == "default":
        from ._local import split_foreground

        return split_foreground(data, thresholds, params, scale), data
    return data, None


def planes_split(data: da.Array) -> bool:
    """Whether a ``(..., y, x)`` dask array splits its planes into several chunks."""
    return len(data.chunks[-1]) > 1 or len(data.chunks[-2]) > 1


def fitted_chunks(chunks: tuple[int, ...], halo: int, axis: str) -> tuple[int, ...] | None:
    """Chunk sizes along one plane axis with every chunk at least ``halo`` (None: too small).

    Chunks smaller than the halo (typically the remainder at the end of an
    axis) are merged into a neighbour; when no chunk reaches the halo, None.
    """
    if len(chunks) == 1:
        return chunks
    if max(chunks) < halo:
        return None
    merged: list[int] = []
    for c in chunks:
        if merged and merged[-1] < halo:
            merged[-1] += c
        else:
            merged.append(c)
    if len(merged) > 1 and merged[-1] < halo:
        last = merged.pop()
        merged[-1] += last
    return tuple(merged)


def fit_to_halo(data: da.Array, halo: int, *, strict: bool) -> da.Array | None:
    """Rechunk so every y/x chunk holds at least ``halo`` pixels.

    Returns None when the chunks are too small and ``strict`` is false;
    raises :class:`bigseg.InputError` naming the minimum when ``strict``.
    """
    new = list(data.chunks)
    for axis, name in ((data.ndim - 2, "y"), (data.ndim - 1, "x")):
        fitted = fitted_chunks(data.chunks[axis], halo, name)
        if fitted is None:
            if strict:
                raise InputError(
                    f"The {name} chunks ({max(data.chunks[axis])} px) are smaller than the "
                    f"{halo} px halo these parameters need; use y/x chunks of at least {halo} "
                    "px (or -1 for whole planes)."
                )
            return None
        new[axis] = fitted
    new_chunks = tuple(new)
    return data if new_chunks == data.chunks else data.rechunk(new_chunks)


# --------------------------------------------------------------------------- blocks


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
    beyond: int  # clusters that reach the outer margin of the halo
    first_y: np.ndarray | None = None  # (t, z, x) the core's first row (side tables only)
    first_x: np.ndarray | None = None  # (t, z, y) the core's first column (side tables only)


def _starts(chunks: tuple[tuple[int, ...], ...]) -> list[np.ndarray]:
    return [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int) for c in chunks]


def segment_blocks(
    data: da.Array,
    thresholds: da.Array,
    px: PixelParams,
    block_fn: Callable[[np.ndarray, np.ndarray, PixelParams], np.ndarray],
    *,
    halo: int,
    image: da.Array | None = None,
) -> da.Array:
    """Segment every block of a ``(t, z, y, x)`` array with its halo (lazy).

    Returns an object array with one :class:`Block` per block.
    ``block_fn(block, thresholds, px)`` is the whole-plane block kernel of
    :mod:`bigseg.segment`, applied to the block extended by its halo.
    ``image`` (same shape) holds the intensities to measure when they are
    not ``data`` itself (see :func:`block_input`).
    """
    ext = da.overlap.overlap(data, depth={0: 0, 1: 0, 2: halo, 3: halo}, boundary="none")
    thr = thresholds.reshape((-1, 1, 1, 1)).rechunk((data.chunks[0], 1, 1, 1))
    margin = 2 * px.smooth_radius + px.min_distance
    arrays: tuple[da.Array, ...] = (ext, thr)
    if image is not None:  # map_blocks pairs blocks by index: ext's hold halos, image's not
        arrays = (ext, thr, image.rechunk(data.chunks))
    return da.map_blocks(
        _segment_block,
        *arrays,
        px=px,
        block_fn=block_fn,
        halo=halo,
        margin=margin,
        chunks_all=data.chunks,
        chunks=tuple((1,) * n for n in data.numblocks),
        dtype=object,
        meta=np.empty((0, 0, 0, 0), object),
    )


def _segment_block(
    ext: np.ndarray,
    thr: np.ndarray,
    core_image: np.ndarray | None = None,
    *,
    px: PixelParams,
    block_fn: Callable,
    halo: int,
    margin: int,
    chunks_all: tuple[tuple[int, ...], ...],
    block_id: tuple[int, ...] | None = None,
) -> np.ndarray:
    index = tuple(int(i) for i in block_id)  # type: ignore[union-attr]
    numblocks = tuple(len(c) for c in chunks_all)
    by, bx = index[2], index[3]
    top = halo if by > 0 else 0
    left = halo if bx > 0 else 0
    cy, cx = chunks_all[2][by], chunks_all[3][bx]
    labels = block_fn(ext, thr, px)
    core = np.ascontiguousarray(labels[:, :, top : top + cy, left : left + cx])
    after_y = labels[:, :, top + cy, left : left + cx].copy() if by < numblocks[2] - 1 else None
    after_x = labels[:, :, top : top + cy, left + cx].copy() if bx < numblocks[3] - 1 else None
    origin = tuple(int(s[i]) for s, i in zip(_starts(chunks_all), index))
    image = ext[:, :, top : top + cy, left : left + cx] if core_image is None else core_image
    flat = int(np.ravel_multi_index(index, numblocks))
    sums = partial_sums(core, image, origin)
    sums.insert(0, "block", flat)
    sides = (by > 0, by < numblocks[2] - 1, bx > 0, bx < numblocks[3] - 1)
    beyond = _clusters_beyond(labels, (top, cy, left, cx), sides, margin, px.min_distance)
    out = np.empty((1, 1, 1, 1), object)
    out[0, 0, 0, 0] = Block(index, flat, origin, core, after_y, after_x, sums, beyond)  # type: ignore[arg-type]
    return out


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
    labels: np.ndarray, image: np.ndarray, origin: tuple[int, int, int, int]
) -> pd.DataFrame:
    """Per ``(t, z, label)`` sums over a ``(t, z, y, x)`` block (NumPy kernel).

    Columns ``t, z, label`` (stack indices) and :data:`SUM_COLUMNS`; ``y``
    and ``x`` sums are in stack index units, so blocks add up.
    """
    frames = []
    ny, nx = labels.shape[-2:]
    yy = np.broadcast_to((np.arange(ny, dtype=np.float64) + origin[2])[:, None], (ny, nx)).ravel()
    xx = np.broadcast_to((np.arange(nx, dtype=np.float64) + origin[3])[None, :], (ny, nx)).ravel()
    for ti in range(labels.shape[0]):
        for zi in range(labels.shape[1]):
            lab = labels[ti, zi].ravel()
            if not lab.any():
                continue
            img = image[ti, zi].ravel().astype(np.float64)
            n = int(lab.max()) + 1
            area = np.bincount(lab, minlength=n)
            present = np.flatnonzero(area)
            present = present[present > 0]
            cols = {
                "area_px": area[present].astype(np.int64),
                "sum_i": np.bincount(lab, img, n)[present],
                "sum_y": np.bincount(lab, yy, n)[present],
                "sum_x": np.bincount(lab, xx, n)[present],
                "sum_yi": np.bincount(lab, yy * img, n)[present],
                "sum_xi": np.bincount(lab, xx * img, n)[present],
            }
            frames.append(
                pd.DataFrame(
                    {
                        "t": np.int64(origin[0] + ti),
                        "z": np.int64(origin[1] + zi),
                        "label": present.astype(np.int64),
                        **cols,
                    }
                )
            )
    if not frames:
        return empty_sums()
    return pd.concat(frames, ignore_index=True)


def empty_sums() -> pd.DataFrame:
    """Return an empty partial-sums table with the right dtypes."""
    cols = {"t": "int64", "z": "int64", "label": "int64", "area_px": "int64"}
    cols.update({c: "float64" for c in SUM_COLUMNS[1:]})
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in cols.items()})


def detections_from_sums(
    sums: pd.DataFrame,
    *,
    scale: tuple[float, float, float],
    translation: tuple[float, float, float],
) -> pd.DataFrame:
    """Turn summed partial sums (one row per region) into the detections table."""
    from .measure import detections_table
    from .tables import empty_detections

    if len(sums) == 0:
        return empty_detections()
    area = sums["area_px"].to_numpy(np.int64)
    s_i = sums["sum_i"].to_numpy(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = np.where(s_i > 0, sums["sum_yi"] / s_i, sums["sum_y"] / area)
        cx = np.where(s_i > 0, sums["sum_xi"] / s_i, sums["sum_x"] / area)
    return detections_table(
        t=sums["t"].to_numpy(np.float64),
        z=sums["z"].to_numpy(np.float64),
        y=cy,
        x=cx,
        label=sums["label"].to_numpy(),
        area=area,
        intensity_sum=s_i,
        scale=scale,
        translation=translation,
    )


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
    a: Block = lo[0, 0, 0, 0]
    b: Block = hi[0, 0, 0, 0]
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
    out = np.empty((1, 1, 1, 1), object)
    out[0, 0, 0, 0] = (table, mismatch)
    return out


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
    beyond: int  # clusters wider than the halo allows: exactness not proven for them
    conflicts: int  # faces where neighbouring blocks disagree: results differ there

    def record(self, halo: int) -> dict:
        """Return what ``run.json`` says about stitching."""
        return {
            "halo_px": halo,
            "blocks": int(self.side.size),
            "regions_across_faces": int(
                (self.nodes.groupby(["t", "z", "region"]).size() > 1).sum()
            ),
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
    combined = sums.groupby(["t", "z", "region"], sort=True)[list(SUM_COLUMNS)].sum().reset_index()
    combined = combined.rename(columns={"region": "label"})
    return Stitched(
        nodes=node_df.drop(columns="component"),
        sums=combined,
        side=side,
        beyond=int(sum(b.beyond for b in blocks)),
        conflicts=conflicts,
    )


def block_luts(nodes: pd.DataFrame, side: np.ndarray, value: np.ndarray, dtype: Any) -> np.ndarray:
    """One lookup table per block: ``lut[t, z, local label] = value`` of its region.

    ``value`` holds one value per row of ``nodes``.  Returns an object array
    shaped like ``side`` (the block grid, or a part of it).
    """
    out = np.empty(side.shape, object)
    groups = nodes.assign(value=value).groupby("block", sort=False)
    members = {int(k): g for k, g in groups}
    for pos, blk in np.ndenumerate(side):
        g = members.get(blk.flat)
        if g is None:
            out[pos] = np.zeros((0, 0, 1), dtype)
            continue
        t = g["t"].to_numpy(np.int64) - blk.origin[0]
        z = g["z"].to_numpy(np.int64) - blk.origin[1]
        lab = g["label"].to_numpy(np.int64)
        lut = np.zeros((int(t.max()) + 1, int(z.max()) + 1, int(lab.max()) + 1), dtype)
        lut[t, z, lab] = g["value"].to_numpy()
        out[pos] = lut
    return out


def apply_luts(raw: da.Array, luts: da.Array, dtype: Any) -> da.Array:
    """Map block-local labels through one lookup table per block (lazy)."""
    return da.map_blocks(
        _apply_lut,
        raw,
        luts,
        dtype=dtype,
        chunks=raw.chunks,
        meta=np.empty((0, 0, 0, 0), dtype),
    )


def _apply_lut(block: np.ndarray, luts: np.ndarray) -> np.ndarray:
    lut = luts[0, 0, 0, 0]
    out = np.zeros(block.shape, lut.dtype)
    for t in range(min(block.shape[0], lut.shape[0])):
        for z in range(min(block.shape[1], lut.shape[1])):
            plane = block[t, z]
            top = int(plane.max(initial=0))
            if top == 0:
                continue
            table = lut[t, z]
            if top >= table.size:  # labels of regions dropped after measuring map to 0
                table = np.concatenate([table, np.zeros(top + 1 - table.size, table.dtype)])
            out[t, z] = table[plane]
    return out


def luts_array(luts: Any, numblocks: tuple[int, ...]) -> da.Array:
    """Return an object dask array with one lookup table per block (from array or Delayed)."""
    if isinstance(luts, np.ndarray):
        return da.from_array(luts, chunks=1, asarray=False)
    whole = da.from_delayed(luts, shape=numblocks, dtype=object, meta=_OBJ)
    return whole.rechunk(1)


# --------------------------------------------------------------------------- lazy API


def segment_stitched(
    data: da.Array,
    thresholds: da.Array,
    px: PixelParams,
    block_fn: Callable,
    *,
    halo: int,
    image: da.Array | None = None,
) -> da.Array:
    """Plane-wide labels (1..n per plane) of a y/x-chunked ``(t, z, y, x)`` array (lazy).

    Faces are stitched per slab of planes (one t chunk by one z chunk): the
    block labels of a slab are held until its stitching is done.  To stream
    labels of stacks whose slabs do not fit in memory use :func:`bigseg.run`.
    """
    blocks = segment_blocks(data, thresholds, px, block_fn, halo=halo, image=image)
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


def measure_split(
    labels: da.Array,
    image: da.Array,
    *,
    scale: tuple[float, float, float],
    translation: tuple[float, float, float],
) -> Any:
    """Exact detections of plane-wide labels in y/x-chunked ``(t, z, y, x)`` arrays (lazy).

    Partial sums per block, summed per ``(t, z, label)`` with a groupby; returns
    a dask DataFrame.
    """
    import dask.dataframe as dd  # on first use: a CLI run never needs it

    from .tables import empty_detections

    image = image.rechunk(labels.chunks)
    starts = _starts(labels.chunks)
    part = dask.delayed(partial_sums, pure=True)
    parts = [
        part(lb, ib, tuple(int(starts[axis][i]) for axis, i in enumerate(index)))
        for index, lb, ib in zip(
            np.ndindex(*labels.numblocks),
            labels.to_delayed().ravel(),
            image.to_delayed().ravel(),
        )
    ]
    table = dd.from_delayed(parts, meta=empty_sums(), verify_meta=False)
    summed = table.groupby(["t", "z", "label"]).sum().reset_index()
    return summed.map_partitions(
        detections_from_sums, scale=scale, translation=translation, meta=empty_detections()
    )


# --------------------------------------------------------------------------- pipeline


def run_pass(
    stack: Any,
    data: da.Array,
    thresholds: np.ndarray,
    px: PixelParams,
    planes_path: Any,
    compute: Callable[[tuple, str], tuple],
    params: Any,
) -> tuple[pd.DataFrame, Stitched]:
    """Segment + measure pass of :func:`bigseg.run` for split planes.

    Block-local labels stream to ``planes_path``; only the per-block sums and
    the per-face pair tables come back, and are stitched in memory.
    """
    import xarray as xr

    from .io import write_labels
    from .stack import scale_of

    preset = params.preset
    halo = halo_px(px, preset)
    thr = da.from_array(np.asarray(thresholds, np.float64), chunks=-1)
    source, image = block_input(data, thr, params, scale_of(stack))
    kernel = block_kernel(preset)
    blocks = segment_blocks(source, thr, block_px(px, preset), kernel, halo=halo, image=image)  # type: ignore[arg-type]
    raw = xr.DataArray(
        core_labels(blocks, data.chunks), dims=("t", "z", "y", "x"), attrs=dict(stack.attrs)
    )
    store = write_labels(raw, planes_path, compute=False)
    side = side_tables(blocks)
    _, side, *pairs = compute((store, summaries(side), *face_pairs(side)), "segment")
    stitched = stitch(side, pairs)
    tr = stack.attrs.get("translation", {})
    detections = detections_from_sums(
        stitched.sums,
        scale=scale_of(stack),
        translation=(tr.get("z", 0.0), tr.get("y", 0.0), tr.get("x", 0.0)),
    )
    return detections, stitched


def warn_unproven(stitched: Stitched, halo: int) -> None:
    """Warn when some clusters were wider than the halo: exactness is not proven there."""
    if stitched.beyond or stitched.conflicts:
        warnings.warn(
            f"{stitched.beyond} foreground cluster(s) are wider than the {halo} px halo of "
            f"their block ({stitched.conflicts} disagreement(s) seen on block faces); regions "
            "there may differ from whole-plane segmentation. Use larger y/x chunks (or whole "
            "planes) where that matters.",
            UserWarning,
            stacklevel=3,
        )


def relabel_nuclei(planes: da.Array, linked: pd.DataFrame, stitched: Stitched) -> da.Array:
    """Map stored block-local labels to nucleus ids (lazy); ``planes`` as stored by run_pass."""
    nodes = stitched.nodes
    key = linked[["t", "z", "label", "nucleus"]].astype(np.int64)
    key = key.rename(columns={"label": "region"})
    nucleus = nodes.merge(key, on=["t", "z", "region"], how="left")["nucleus"]
    values = nucleus.fillna(0).to_numpy(np.uint32)
    luts = block_luts(nodes, stitched.side, values, np.uint32)
    return apply_luts(planes, luts_array(luts, stitched.side.shape), np.uint32)
