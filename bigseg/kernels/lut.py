"""Lookup-table relabelling: build one table per block, map a block's labels through it."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["apply_lut", "lookup_tables"]


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
            plane = block[t, z]
            top = int(plane.max(initial=0))
            if top == 0:
                continue
            table = lut[t, z]
            if top >= table.size:  # labels of regions dropped after measuring map to 0
                table = np.concatenate([table, np.zeros(top + 1 - table.size, table.dtype)])
            out[t, z] = table[plane]
    return out
