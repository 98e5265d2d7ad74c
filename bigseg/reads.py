"""Reads of files that can be made again: in other chunks, grown by a halo, as views.

A dask array read from a file (``da.from_array`` of a Zarr array or of a TIFF read
through tifffile's Zarr store) can be rechunked after reading, but a rechunk holds
every storage chunk until the last of its pieces is used, and a halo exchange
(``da.overlap``) holds every block until its neighbours are built.  A *read* made
again instead, each task reading its own region from the file, holds nothing but
its block (and the storage chunks it decodes, one at a time:
:func:`read_by_chunks`) and depends on no other task.

The readers (:mod:`bigseg.io`) remember their reads (:func:`remember_read`);
views of a read that keep it one (:func:`read_region`, :func:`read_with_axis`) are
remembered too, so that the passes can read work blocks (:func:`in_work_chunks`)
and grown blocks (:func:`read_grown`) from the file whatever was done to the stack
in between.  Nothing here computes.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np

__all__ = [
    "READ_BYTES",
    "decoding_bytes",
    "in_work_chunks",
    "is_read",
    "read_by_chunks",
    "read_grown",
    "read_region",
    "read_with_axis",
    "remember_read",
]

#: Bytes of storage chunks one call to the file may decode at once (a call decodes the
#: chunks it touches concurrently: zarr's ``async.concurrency``, 10 by default).
READ_BYTES = 4 * 2**20

#: Storage chunks zarr decodes at once in one call (its ``async.concurrency`` default).
DECODED_AT_ONCE = 10

#: Bytes a read holds per byte of the storage chunks it is decoding: the decoded chunk and
#: its compressed bytes (1.8 measured with tracemalloc for 32 MiB chunks, blosc zstd).
READ_COPIES = 2

#: The sources of reads: dask name -> weak references to the objects ``da.from_array``
#: reads (each array's graph holds its own).  Views made twice of one read (``as_4d`` of
#: a stack, say) are equal objects with one name: a name stays a read while any of them
#: lives.
_READS: dict[str, list[weakref.ref]] = {}


def remember_read(data: da.Array, source: Any) -> da.Array:
    """Note that ``data`` is ``da.from_array(source, ...)``, to be read again in other chunks.

    ``source`` must read any region (``source[slices]``, one slice of step 1 per
    axis), as a Zarr array does, and have ``shape``, ``dtype`` and ``ndim``.
    Returns ``data``.
    """
    name = data.name
    refs = [r for r in _READS.get(name, ()) if r() is not None]
    if not any(r() is source for r in refs):
        refs.append(weakref.ref(source, lambda ref, name=name: _forget(name, ref)))
    _READS[name] = refs
    return data


def _forget(name: str, ref: weakref.ref) -> None:
    refs = [r for r in _READS.get(name, ()) if r is not ref and r() is not None]
    if refs:
        _READS[name] = refs
    else:
        _READS.pop(name, None)


def _source(name: str) -> Any:
    """Return the object a read named ``name`` reads (None when it is not a remembered read)."""
    for ref in _READS.get(name, ()):
        source = ref()
        if source is not None:
            return source
    return None


def is_read(data: da.Array) -> bool:
    """Whether ``data`` is a read remembered by :func:`remember_read`."""
    return isinstance(data, da.Array) and _source(data.name) is not None


def read_by_chunks(array: Any, key: Any, chunks: Sequence[int]) -> np.ndarray:
    """Return ``array[key]``, decoding at most :data:`READ_BYTES` of storage chunks at a time.

    ``array`` is stored in ``chunks`` (one size per axis).  A region that spans
    many storage chunks is read in groups of them, each written into the result
    as soon as it is decoded: a call holds the result and one group, not every
    chunk it touches (zarr decodes up to ten at once: 2048² planes of uint16 in
    chunks of 4 planes took 300 MiB to read a 7 MiB block).  Keys other than
    slices of step 1 are read as they are.
    """
    shape = tuple(int(n) for n in array.shape)
    key = key if isinstance(key, tuple) else (key,)
    key = key + (slice(None),) * (len(shape) - len(key))
    if len(key) != len(shape) or not all(isinstance(k, slice) and k.step in (None, 1) for k in key):
        return np.asarray(array[key])
    box = [k.indices(n)[:2] for k, n in zip(key, shape)]
    box = [(a, max(a, b)) for a, b in box]
    chunks = tuple(int(c) for c in chunks)
    itemsize = np.dtype(array.dtype).itemsize
    per_group = max(READ_BYTES // max(int(np.prod(chunks)) * itemsize, 1), 1)
    grid = [range(a // c, -(-b // c)) if b > a else range(0) for (a, b), c in zip(box, chunks)]
    if int(np.prod([len(r) for r in grid])) <= per_group:
        return np.asarray(array[key])
    out = np.empty([b - a for a, b in box], np.dtype(array.dtype))
    for group in _groups(grid, per_group):
        region = tuple(
            slice(max(a, g.start * c), min(b, g.stop * c))
            for (a, b), c, g in zip(box, chunks, group)
        )
        local = tuple(slice(r.start - a, r.stop - a) for r, (a, _) in zip(region, box))
        out[local] = array[region]
    return out


def decoding_bytes(chunk_bytes: int) -> int:
    """Bytes a read of storage chunks of ``chunk_bytes`` holds besides its result, at most.

    :func:`read_by_chunks` decodes at most :data:`READ_BYTES` at a time (one chunk
    when a chunk is larger), of which zarr decodes :data:`DECODED_AT_ONCE` chunks at
    once, each held with its compressed bytes (:data:`READ_COPIES`).
    """
    chunk_bytes = max(int(chunk_bytes), 1)
    at_once = max(min(READ_BYTES // chunk_bytes, DECODED_AT_ONCE), 1)
    return READ_COPIES * at_once * chunk_bytes


def _groups(grid: list[range], per_group: int) -> list[tuple[range, ...]]:
    """Split a grid of chunk indices (a range per axis) into boxes of at most ``per_group``."""
    if not grid:
        return [()]
    inner = int(np.prod([len(r) for r in grid[1:]], dtype=np.int64))
    first = grid[0]
    if inner <= per_group:  # whole rows of the inner axes, as many as fit
        step = max(per_group // max(inner, 1), 1)
        return [
            (range(i, min(i + step, first.stop)), *grid[1:])
            for i in range(first.start, first.stop, step)
        ]
    return [(range(i, i + 1), *rest) for i in first for rest in _groups(grid[1:], per_group)]


class _View:
    """A box of a source (one slice of step 1 per axis), with new axes of length 1 inserted."""

    def __init__(self, source: Any, box: tuple[slice, ...], new_axes: tuple[int, ...] = ()):
        self.source = source
        self.box = box
        self.new_axes = new_axes
        inner = [b.stop - b.start for b in box]
        for axis in new_axes:
            inner.insert(axis, 1)
        self.shape = tuple(inner)
        self.dtype = source.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        box, rest = _bounding(key, self.shape)
        kept = [k for axis, k in enumerate(box) if axis not in self.new_axes]
        inner = tuple(slice(b.start + k.start, b.start + k.stop) for b, k in zip(self.box, kept))
        values = self.source[inner]
        for axis in self.new_axes:
            values = np.expand_dims(values, axis)
        return _apply(values[tuple(slice(0, k.stop - k.start) for k in box)], rest)


def _bounding(key: Any, shape: Sequence[int]) -> tuple[tuple[slice, ...], tuple]:
    """Return the box of slices of step 1 that ``key`` reads, and the index left to apply.

    Dask asks a source for slices of step 1, except where its graph optimisation has
    fused a later index (an integer, a step, a list) into the read.
    """
    key = key if isinstance(key, tuple) else (key,)
    key = key + (slice(None),) * (len(shape) - len(key))
    box, rest = [], []
    for k, n in zip(key, shape):
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            if step == 1:
                box.append(slice(start, max(start, stop)))
                rest.append(slice(None))
                continue
            k = np.arange(start, stop, step)
        if np.ndim(k) == 0:  # an integer
            i = int(k) % n
            box.append(slice(i, i + 1))
            rest.append(0)
            continue
        k = np.asarray(k) % n if np.asarray(k).dtype.kind in "iu" else np.flatnonzero(k)
        lo, hi = (int(k.min()), int(k.max()) + 1) if k.size else (0, 0)
        box.append(slice(lo, hi))
        rest.append(k - lo)
    return tuple(box), tuple(rest)


def _apply(values: np.ndarray, rest: tuple) -> np.ndarray:
    """Apply the index :func:`_bounding` left, axis by axis (lists never pointwise)."""
    for axis in reversed(range(len(rest))):  # the last first: earlier axes keep their place
        if not isinstance(rest[axis], slice):
            values = np.take(values, rest[axis], axis=axis)
    return values


def _read_of(data: da.Array, source: Any, chunks: tuple, what: str, *token: Any) -> da.Array:
    """``da.from_array(source)`` in ``chunks``, named after ``data`` and ``what`` (lazy).

    The read of another region, chunking or view of ``data``'s file: one task per
    chunk, each reading its own region (``source[slices]``), none depending on another.
    """
    from dask.base import tokenize

    name = f"{data.name.split('-')[0]}-{what}-{tokenize(data.name, *token)}"
    meta = np.empty((0,) * len(source.shape), data.dtype)
    return da.from_array(source, chunks=chunks, name=name, asarray=False, lock=False, meta=meta)


def read_region(data: da.Array, box: tuple[slice, ...]) -> da.Array:
    """Return ``data[box]`` (slices of step 1), itself a remembered read when ``data`` is one.

    So that a part of a file (some time points, say) is read in work blocks from
    the file too (:func:`in_work_chunks`), rather than rechunked.
    """
    part = data[box]
    source = _source(data.name)
    if source is None or any(s.step not in (None, 1) for s in box):
        return part
    full = tuple(slice(*s.indices(n)[:2]) for s, n in zip(box, data.shape))
    full += tuple(slice(0, n) for n in data.shape[len(full) :])
    view = _View(source, full)
    return remember_read(_read_of(data, view, part.chunks, "region", full), view)


def read_with_axis(data: da.Array, axis: int) -> da.Array:
    """Return ``np.expand_dims(data, axis)``, a remembered read when ``data`` is one (lazy)."""
    out = da.expand_dims(data, axis)
    source = _source(data.name)
    if source is None:
        return out
    axis = axis % out.ndim
    full = tuple(slice(0, n) for n in data.shape)
    view = _View(source, full, (axis,))
    return remember_read(_read_of(data, view, out.chunks, "axis", axis), view)


def in_work_chunks(data: da.Array, chunks: tuple[tuple[int, ...], ...]) -> da.Array:
    """Return ``data`` in ``chunks``, read again from its source when it is a read (lazy).

    Rechunking a read of whole-plane storage chunks into y/x blocks keeps every
    storage chunk in memory until the last of its pieces is used.  Reading every
    work block from the source instead (each task decodes the storage chunks it
    needs, keeps its block and frees them) holds no more than a block and a few
    storage chunks per task.  Arrays that are not a remembered read are rechunked.
    """
    chunks = tuple(tuple(int(c) for c in axis) for axis in chunks)
    if chunks == data.chunks:
        return data
    source = _source(data.name)
    if source is None:
        return data.rechunk(chunks)
    return remember_read(_read_of(data, source, chunks, "work", chunks), source)


class _Grown:
    """A source's blocks, each grown by ``depth`` voxels towards its neighbours, end to end.

    Block ``i`` along an axis of ``n`` blocks is the source's block grown by
    ``depth`` before it when ``i > 0`` and after it when ``i < n - 1`` (never past
    the edges), as ``da.overlap.overlap(..., boundary="none")`` grows it; dask asks
    for one grown block per task.
    """

    def __init__(self, source: Any, chunks: tuple[tuple[int, ...], ...], depth: Sequence[int]):
        self.source = source
        self.dtype = source.dtype
        self.ndim = len(chunks)
        self.starts: list[list[int]] = []  # per axis: where each grown block starts, here
        self.origins: list[list[int]] = []  # per axis: where it starts in the source
        grown: list[tuple[int, ...]] = []
        for axis_chunks, d in zip(chunks, depth):
            n = len(axis_chunks)
            begin = np.concatenate([[0], np.cumsum(axis_chunks)[:-1]]).astype(int)
            before = [d if i > 0 else 0 for i in range(n)]
            after = [d if i < n - 1 else 0 for i in range(n)]
            sizes = [c + b + a for c, b, a in zip(axis_chunks, before, after)]
            self.origins.append([int(s - b) for s, b in zip(begin, before)])
            self.starts.append([0, *np.cumsum(sizes)[:-1].astype(int).tolist()])
            grown.append(tuple(int(size) for size in sizes))
        self.chunks = tuple(grown)
        self.shape = tuple(sum(sizes) for sizes in grown)

    def __getitem__(self, key: Any) -> np.ndarray:
        grown, rest = _bounding(key, self.shape)  # within one grown block
        box = []
        for k, starts, origins in zip(grown, self.starts, self.origins):
            i = bisect.bisect_right(starts, k.start) - 1
            offset = origins[i] + k.start - starts[i]
            box.append(slice(offset, offset + k.stop - k.start))
        return _apply(self.source[tuple(box)], rest)


def read_grown(
    data: da.Array, chunks: tuple[tuple[int, ...], ...], depth: Sequence[int]
) -> da.Array:
    """``data``'s blocks in ``chunks``, each grown by ``depth`` voxels per axis, read from its file.

    The same array as ``da.overlap.overlap(data.rechunk(chunks), depth=...,
    boundary="none")``, but every grown block is read from the file by its own
    task: none waits for, or keeps, its neighbours.  ``data`` must be a remembered
    read (:func:`is_read`).
    """
    chunks = tuple(tuple(int(c) for c in axis) for axis in chunks)
    grown = _Grown(_source(data.name), chunks, tuple(map(int, depth)))
    return _read_of(data, grown, grown.chunks, "grown", chunks, tuple(depth))
