"""Per-block lookup-table relabelling of label arrays (lazy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd

from ..kernels.lut import apply_lut, lookup_tables

__all__ = ["apply_luts", "block_luts", "luts_array", "relabel_partitioned", "relabel_planes"]

_OBJ = np.empty((0, 0, 0, 0), object)


def block_luts(nodes: pd.DataFrame, side: np.ndarray, value: np.ndarray, dtype: Any) -> np.ndarray:
    """One lookup table per block: ``lut[t, z, local label] = value`` of its region.

    ``nodes`` has columns ``block`` (flat index), ``t``, ``z`` (stack indices) and
    ``label`` (block-local); ``value`` holds one value per row of ``nodes``; ``side``
    holds the blocks' records (:class:`bigseg.chunked.stitch.Block`).  Returns an
    object array shaped like ``side`` (the block grid, or a part of it).
    """
    records = list(side.ravel())
    position = {blk.flat: i for i, blk in enumerate(records)}
    origins = np.array([blk.origin[:2] for blk in records], np.int64).reshape(-1, 2)
    where = nodes["block"].map(position)
    keep = where.notna().to_numpy()
    pos = where[keep].to_numpy(np.int64)
    return lookup_tables(
        side.shape,
        pos,
        nodes["t"].to_numpy(np.int64)[keep] - origins[pos, 0],
        nodes["z"].to_numpy(np.int64)[keep] - origins[pos, 1],
        nodes["label"].to_numpy(np.int64)[keep],
        np.asarray(value)[keep],
        dtype,
    )


def relabel_planes(
    planes: da.Array, t: Any, z: Any, label: Any, value: Any, dtype: Any
) -> da.Array:
    """Map the plane-local labels of a ``(t, z, y, x)`` array through per-row values (lazy).

    Row ``i`` maps ``label[i]`` of plane ``(t[i], z[i])`` to ``value[i]``; other labels
    map to 0.  Each block gets only the table of its own planes, sized by its own
    largest label: the tables add up to O(rows), not O(planes x labels).
    """
    edges = [np.cumsum((0,) + c) for c in planes.chunks[:2]]
    t = np.asarray(t, np.int64)
    z = np.asarray(z, np.int64)
    bt = np.searchsorted(edges[0], t, side="right") - 1
    bz = np.searchsorted(edges[1], z, side="right") - 1
    grid = planes.numblocks[:2]
    luts = lookup_tables(
        grid,
        np.ravel_multi_index((bt, bz), grid) if len(t) else np.empty(0, np.int64),
        t - edges[0][bt],
        z - edges[1][bz],
        label,
        value,
        dtype,
    )
    every = np.empty(planes.numblocks, object)  # the same tables for every y/x block
    every[...] = luts[(...,) + (None,) * (planes.ndim - 2)]
    return apply_luts(planes, luts_array(every, planes.numblocks), dtype)


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


def luts_array(luts: Any, numblocks: tuple[int, ...]) -> da.Array:
    """Return an object dask array with one lookup table per block (from array or Delayed)."""
    if isinstance(luts, np.ndarray):
        return da.from_array(luts, chunks=1, asarray=False)
    whole = da.from_delayed(luts, shape=numblocks, dtype=object, meta=_OBJ)
    return whole.rechunk(1)


def _apply_lut(block: np.ndarray, luts: np.ndarray) -> np.ndarray:
    return apply_lut(block, luts[0, 0, 0, 0])


def relabel_stitched(planes: da.Array, linked: pd.DataFrame, stitched: Any) -> da.Array:
    """Map stored block-local labels to nucleus ids (lazy).

    ``planes`` are the block-local core labels of :func:`bigseg.chunked.stitch.core_labels`,
    ``stitched`` their :class:`~bigseg.chunked.stitch.Stitched`.
    """
    nodes = stitched.nodes
    key = linked[["t", "z", "label", "nucleus"]].astype(np.int64)
    key = key.rename(columns={"label": "region"})
    nucleus = nodes.merge(key, on=["t", "z", "region"], how="left")["nucleus"]
    values = nucleus.fillna(0).to_numpy(np.uint32)
    luts = block_luts(nodes, stitched.side, values, np.uint32)
    return apply_luts(planes, luts_array(luts, stitched.side.shape), np.uint32)


def relabel_partitioned(
    planes: da.Array,
    rows_of: Callable[[tuple[int, ...]], pd.DataFrame],
    offsets: Any,
    dtype: Any,
) -> da.Array:
    """Map plane-local labels through tables read on the workers, one per t-chunk (lazy).

    ``rows_of(location)`` returns the rows (columns ``t, z, label, value``, stack
    indices) for the block at ``location`` (its index in the block grid of ``planes``);
    rows of other planes are ignored.  ``offsets[i]`` is added to the values of the
    blocks of t-chunk ``i``.  Each block builds its own lookup table from the rows of its
    planes: nothing O(rows) is held by the client or embedded in the graph.
    """
    offsets = np.asarray(offsets, np.int64)
    per_t = np.repeat(offsets, planes.chunks[0]).reshape(-1, 1, 1, 1)
    shifts = da.from_array(per_t, chunks=(planes.chunks[0], 1, 1, 1))
    return da.map_blocks(
        _relabel_block,
        planes,
        shifts,
        rows_of=rows_of,
        out_dtype=np.dtype(dtype),
        dtype=dtype,
        chunks=planes.chunks,
        meta=np.empty((0, 0, 0, 0), dtype),
    )


def _relabel_block(
    block: np.ndarray,
    shift: np.ndarray,
    *,
    rows_of: Callable[[tuple[int, ...]], pd.DataFrame],
    out_dtype: np.dtype,
    block_info: dict | None = None,
) -> np.ndarray:
    info = block_info[0]  # type: ignore[index]
    (t0, _), (z0, z1) = info["array-location"][:2]
    rows = rows_of(tuple(int(i) for i in info["chunk-location"]))
    z = rows["z"].to_numpy(np.int64)
    keep = (z >= z0) & (z < z1)
    value = rows["value"].to_numpy(np.int64)[keep] + int(shift.flat[0]) if shift.size else 0
    lut = lookup_tables(
        (1,),
        np.zeros(int(keep.sum()), np.int64),
        rows["t"].to_numpy(np.int64)[keep] - t0,
        z[keep] - z0,
        rows["label"].to_numpy(np.int64)[keep],
        np.asarray(value, out_dtype),
        out_dtype,
    )[0]
    return apply_lut(block, lut)
