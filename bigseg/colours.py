"""Colours of nucleus ids, the same in figures, in ``labels.zarr`` and in napari.

Nucleus ``n`` has the colour ``PALETTE[n % len(PALETTE)]``; 0 (background) is
transparent.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PALETTE", "label_rgba"]

#: Colours of nucleus ids: matplotlib's ``tab20`` without its two greys.
PALETTE: tuple[str, ...] = (
    "#1f77b4",
    "#aec7e8",
    "#ff7f0e",
    "#ffbb78",
    "#2ca02c",
    "#98df8a",
    "#d62728",
    "#ff9896",
    "#9467bd",
    "#c5b0d5",
    "#8c564b",
    "#c49c94",
    "#e377c2",
    "#f7b6d2",
    "#bcbd22",
    "#dbdb8d",
    "#17becf",
    "#9edae5",
)
_PALETTE_RGB = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in PALETTE], np.uint8)


def label_rgba(ids: Any) -> np.ndarray:
    """Return the RGBA colour (uint8, shape ``(n, 4)``) of each nucleus id; 0 is transparent.

    Parameters
    ----------
    ids : array-like of int
        Nucleus (label) ids.

    Returns
    -------
    numpy.ndarray
        One ``(r, g, b, a)`` row per id, values 0 to 255.
    """
    ids = np.asarray(ids, np.int64).ravel()
    out = np.empty((ids.size, 4), np.uint8)
    out[:, :3] = _PALETTE_RGB[ids % len(PALETTE)]
    out[:, 3] = np.where(ids == 0, 0, 255)
    return out
