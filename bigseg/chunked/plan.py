"""Work blocks: whole planes, or y/x blocks large enough for a halo."""

from __future__ import annotations

import dask.array as da
import numpy as np

from .._errors import InputError

__all__ = ["block_starts", "fit_to_halo", "fitted_chunks", "per_t", "planes_split", "whole_planes"]


def planes_split(data: da.Array) -> bool:
    """Whether a ``(..., y, x)`` dask array splits its planes into several chunks."""
    return len(data.chunks[-1]) > 1 or len(data.chunks[-2]) > 1


def whole_planes(data: da.Array) -> da.Array:
    """Rechunk so every chunk holds whole (y, x) planes."""
    if not planes_split(data):
        return data
    return data.rechunk({data.ndim - 2: -1, data.ndim - 1: -1})


def block_starts(chunks: tuple[tuple[int, ...], ...]) -> list[np.ndarray]:
    """Index of the first element of every chunk, per axis."""
    return [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int) for c in chunks]


def per_t(values: da.Array, chunks_t: tuple[int, ...]) -> da.Array:
    """One value per time point as a ``(t, 1, 1, 1)`` array chunked like the data along t."""
    return values.reshape((-1, 1, 1, 1)).rechunk((chunks_t, 1, 1, 1))


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
