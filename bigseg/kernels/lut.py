"""Lookup-table relabelling: build one table per block, map a block's labels through it."""

from __future__ import annotations

from typing import Any

import numpy as np

from .filters import compiled_plane

__all__ = ["apply_lut", "lookup_tables", "map_ids"]


def lookup_tables(
    grid: tuple[int, ...],
    block: np.ndarray,
    t: np.ndarray,
    z: np.ndarray,
    label: np.ndarray,
    value: np.ndarray,
    dtype: Any,
) -> np.ndarray:
    """One lookup table per block of a grid: ``lut[t, z, label] = value``.

    Parameters
    ----------
    grid : tuple of int
        Shape of the block grid.
    block : (n,) int array
        Flat (C order) index in ``grid`` of the block of each row.
    t, z : (n,) int arrays
        Block-local time and plane index of each row.
    label : (n,) int array
        The label to map.
    value : (n,) array
        What it maps to.
    dtype : numpy dtype
        dtype of the tables.

    Returns
    -------
    numpy.ndarray of object, shape ``grid``
        A ``(T, Z, L)`` table per block, sized by that block's own rows (its largest label,
        its last plane), so the tables add up to O(rows); ``(0, 0, 1)`` zeros for a block
        without rows.
    """
    block = np.asarray(block, np.int64)
    t, z, label = (np.asarray(a, np.int64) for a in (t, z, label))
    value = np.asarray(value)
    size = int(np.prod(grid))
    order = np.argsort(block, kind="stable")
    bounds = np.searchsorted(block[order], np.arange(size + 1))
    out = np.empty(size, object)
    for b in range(size):
        rows = order[bounds[b] : bounds[b + 1]]
        if rows.size == 0:
            out[b] = np.zeros((0, 0, 1), dtype)
            continue
        lut = np.zeros(
            (int(t[rows].max()) + 1, int(z[rows].max()) + 1, int(label[rows].max()) + 1), dtype
        )
        lut[t[rows], z[rows], label[rows]] = value[rows]
        out[b] = lut
    return out.reshape(grid)


def apply_lut(block: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Map the labels of a ``(t, z, y, x)`` block through its ``(T, Z, L)`` table.

    Planes and labels beyond the table map to 0 (regions dropped after measuring).
    """
    out = np.zeros(block.shape, lut.dtype)
    for t in range(min(block.shape[0], lut.shape[0])):
        for z in range(min(block.shape[1], lut.shape[1])):
            plane, table = block[t, z], lut[t, z]
            # One compiled pass, no maximum first, where the background maps to 0 (an empty
            # plane stays 0 either way).
            fast = plane.dtype.kind in "iu" and not table[:1].any()
            compiled = compiled_plane(plane) if fast else None
            if compiled is not None:
                compiled.take(np.ascontiguousarray(table), np.ascontiguousarray(plane), out[t, z])
                continue
            top = int(plane.max(initial=0))
            if top == 0:
                continue
            if top >= table.size:  # labels of regions dropped after measuring map to 0
                table = np.concatenate([table, np.zeros(top + 1 - table.size, table.dtype)])
            out[t, z] = table[plane]
    return out


def map_ids(block: np.ndarray, ids: np.ndarray, values: np.ndarray, dtype: Any) -> np.ndarray:
    """Map the ids of a label block to ``values`` (``ids[i] -> values[i]``), plane by plane.

    Ids not in ``ids`` (and 0, the background) map to 0.  The table spans the ids
    given, from the smallest to the largest (bigseg numbers nuclei by time point, so a
    block's nuclei are about a range of ids), not every id up to the largest.

    Parameters
    ----------
    block : int array
        Labels, any shape.
    ids : (n,) int array
        The ids to map, without repeats.
    values : (n,) int array
        What each maps to.
    dtype : numpy dtype
        dtype of the result.

    Returns
    -------
    numpy.ndarray
        ``block``'s shape, ``dtype``.
    """
    ids = np.asarray(ids, np.int64)
    out = np.zeros(block.shape, dtype)
    ids_ok = ids > 0
    if block.size == 0 or not ids_ok.any():
        return out
    ids, values = ids[ids_ok], np.asarray(values)[ids_ok]
    low, high = int(ids.min()), int(ids.max())
    table = np.zeros(high - low + 1, dtype)
    table[ids - low] = values
    planes = block.reshape(-1, *block.shape[-2:]) if block.ndim >= 2 else block.reshape(1, 1, -1)
    mapped = out.reshape(planes.shape)
    for k, plane in enumerate(planes):
        index = plane.astype(np.int64) - low
        inside = (index >= 0) & (index <= high - low)
        mapped[k][inside] = table[index[inside]]
    return out
