"""Work blocks: planned from a memory budget; whole planes, or y/x blocks large enough for a halo.

A task's memory is modelled per pass (:class:`PassMemory`): bytes per voxel of the
block grown by the pass's reach, bytes per voxel of one grown plane (the working set
of a kernel that goes plane by plane) and fixed bytes.  :func:`work_chunks` splits the
storage chunks into t, z and y/x work blocks (y/x blocks at least the stitching halo
wide) until every pass's modelled peak fits the budget, and merges whole storage
chunks along z and t when they are tiny.  Nothing here knows a method: the methods
declare their passes (:attr:`bigseg.methods.Method.memory`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.utils import format_bytes, parse_bytes

from .._errors import InputError
from ..reads import decoding_bytes

__all__ = [
    "INPUT_COPIES",
    "RELABEL",
    "WORKER_SHARE",
    "PassMemory",
    "block_starts",
    "fit_to_halo",
    "fitted_chunks",
    "memory_budget",
    "per_t",
    "planes_split",
    "stored_pass_chunks",
    "task_peak",
    "whole_planes",
    "work_chunks",
]

#: Copies of the input (in its own dtype) a task holds per grown voxel: the grown block
#: and the neighbours' pieces it was concatenated from.
INPUT_COPIES = 2

#: Share of a worker's free memory (per thread) that one task may plan to use: the rest
#: holds the finished chunks it keeps for neighbours.  A worker's free memory is what its
#: limit leaves below :data:`WORKER_CEILING` once the libraries the passes import are
#: loaded (:data:`WORKER_LIBRARIES`).
WORKER_SHARE = 0.6

#: Share of a worker's memory limit the plan keeps below (distributed's default pause
#: threshold, whether or not the worker pauses).
WORKER_CEILING = 0.8

#: What the passes import on a worker: their memory is measured on each worker before
#: planning and is not the tasks' to use (about 200 MiB, 290 MiB with numba).
WORKER_LIBRARIES = (
    "numba",
    "pandas",
    "pyarrow.parquet",
    "scipy.ndimage",
    "skimage.measure",
    "skimage.segmentation",
    "zarr",
)


@dataclass(frozen=True)
class PassMemory:
    """Memory model of one pass over work blocks (what one task allocates).

    A task on a block of ``(t, z, y, x)`` voxels, grown by ``reach`` voxels per side
    along each of ``(z, y, x)`` that has neighbours, peaks at::

        per_voxel * grown voxels + per_plane * voxels of one grown plane + fixed

    besides its input (see :data:`INPUT_COPIES`).

    Attributes
    ----------
    name : str
        The pass, as ``run.json`` names it (``floor``, ``foreground``, ``kernel``).
    reach : tuple of int
        Voxels of context per side along ``(z, y, x)``.
    per_voxel : float
        Bytes per voxel of the grown block (results, whole-block working arrays).
    per_plane : float
        Bytes per voxel of one grown plane (a plane kernel's working arrays).
    fixed : int
        Bytes independent of the block size (strip buffers, tables).
    split_only : bool
        The pass runs only on planes split into y/x blocks (the stitched block's
        exactness check): it does not count for whole planes.
    kept : bool or None
        For a method that can keep its signal (:attr:`bigseg.methods.Method.signal`):
        the pass runs only where the signal is computed in every work block (False),
        or only where the work blocks read the signal a run kept (True); None, always.
    """

    name: str
    reach: tuple[int, int, int] = (0, 0, 0)
    per_voxel: float = 0.0
    per_plane: float = 0.0
    fixed: int = 0
    split_only: bool = False
    kept: bool | None = None


#: Tiny storage chunks are merged (``work_chunks(merge=True)``) into blocks of at most this
#: many voxels (8 MiB of uint16, a few seconds of the default method on one core): enough
#: that a task is worth scheduling, few enough that a stack still makes many tasks.
MERGE_VOXELS = 1 << 22

#: Relabelling plane labels to nucleus ids: int32 labels in, uint32 ids out.
RELABEL = PassMemory("relabel", per_voxel=8.0)


def task_peak(
    block: Sequence[int],
    passes: Sequence[PassMemory],
    *,
    itemsize: int,
    shape: Sequence[int],
    neighbours: Sequence[bool] = (True, True, True),
) -> int:
    """Largest modelled peak (bytes) of a task on a ``(t, z, y, x)`` block, over ``passes``.

    ``neighbours`` says, per axis of ``(z, y, x)``, whether blocks have neighbours
    there (the block is grown by the reach only then, never past ``shape``).
    """
    nt = int(block[0])
    peak = 0
    split = bool(neighbours[1] or neighbours[2])
    for p in passes:
        if p.split_only and not split:
            continue
        # A block thinner than the reach is merged with its neighbours until it is not
        # (a halo reaches one block each way): it counts as at least ``reach`` thick.
        grown = [
            min(max(int(n), int(r)) + 2 * int(r), int(s)) if has else int(n)
            for n, r, s, has in zip(block[1:], p.reach, shape[1:], neighbours)
        ]
        voxels = nt * grown[0] * grown[1] * grown[2]
        cost = (p.per_voxel + INPUT_COPIES * itemsize) * voxels
        peak = max(peak, int(math.ceil(cost + p.per_plane * grown[1] * grown[2] + p.fixed)))
    return peak


def _split(chunks: Sequence[int], size: int) -> tuple[int, ...]:
    """Split every chunk into the fewest parts of at most ``size``, equal but the last.

    Equal parts (a regular grid, as Zarr stores it: the blocks can be written to
    scratch and read back grown by a halo) unless the last would be under half
    the others; then near-equal parts.
    """
    out: list[int] = []
    for c in map(int, chunks):
        parts = -(-c // max(int(size), 1))
        part = -(-c // parts)
        last = c - part * (parts - 1)
        if 2 * last >= part:
            out.extend([part] * (parts - 1) + [last])
        else:
            out.extend(c // parts + (1 if i < c % parts else 0) for i in range(parts))
    return tuple(out)


def _merge(chunks: Sequence[int], k: int) -> tuple[int, ...]:
    """Merge every ``k`` consecutive chunks into one."""
    return tuple(int(sum(chunks[i : i + k])) for i in range(0, len(chunks), k))


def work_chunks(
    shape: Sequence[int],
    chunks: tuple[tuple[int, ...], ...],
    passes: Sequence[PassMemory],
    budget: int,
    *,
    itemsize: int,
    min_side: int = 1,
    split_planes: bool = True,
    merge: bool = False,
) -> tuple[tuple[int, ...], ...]:
    """Work chunks of a ``(t, z, y, x)`` array whose every task fits ``budget`` bytes.

    Storage chunks that fit are kept (with ``merge``, whole storage chunks are merged
    along y and x, z, then t, while a block holds at most :data:`MERGE_VOXELS` voxels
    and its task needs at most half the budget beyond the buffers every task holds,
    the passes' ``fixed`` bytes).  Otherwise they are
    split: one time point per block, then the plan of fewest tasks among splits of
    every z chunk (or merges of whole z chunks up to the passes' z reach) and of
    every y/x chunk into near-equal parts (y/x blocks at least ``min_side`` wide,
    the stitching halo; none with ``split_planes`` false), so that no block
    straddles a storage chunk.  The model is :func:`task_peak`, and for split
    chunks the reading too: a block read from part of a storage chunk holds the
    decoded chunk and the block (:func:`in_work_chunks`).  Planes that must stay
    whole and do not fit get blocks of one plane.

    Raises
    ------
    bigseg.InputError
        When not even the smallest block fits: names the budget and the fix.
    """
    shape = tuple(int(n) for n in shape)
    chunks = tuple(tuple(int(c) for c in axis) for axis in chunks)

    # A block read from a part of a storage chunk decodes the whole chunk first (and a few
    # at once: reads.decoding_bytes). Decoding over half the budget is done by every
    # task whatever the blocks: no plan helps, so it is left out (such inputs want
    # smaller storage chunks).
    chunk_bytes = int(np.prod([max(axis) for axis in chunks], dtype=np.int64)) * int(itemsize)
    storage_bytes = decoding_bytes(chunk_bytes)
    if storage_bytes > budget // 2:
        storage_bytes = 0
    reading = PassMemory("read", reach=tuple(max(p.reach[i] for p in passes) for i in range(3)))

    def peak(new: tuple[tuple[int, ...], ...]) -> int:
        block = [max(axis) for axis in new]
        neighbours = [len(axis) > 1 for axis in new[1:]]
        kernels = task_peak(block, passes, itemsize=itemsize, shape=shape, neighbours=neighbours)
        if new == chunks:
            return kernels
        # reading: the grown block filled from the chunks, a few decoded at a time
        read = task_peak(block, [reading], itemsize=itemsize, shape=shape, neighbours=neighbours)
        return max(kernels, read // INPUT_COPIES + storage_bytes)

    if peak(chunks) <= budget:
        if not merge:
            return chunks
        # Half of what the budget leaves beyond the buffers a task holds whatever its block.
        fixed = max((int(p.fixed) for p in passes), default=0)
        return _merged(chunks, peak, fixed + max(budget - fixed, 0) // 2)
    one_t = (_split(chunks[0], 1), *chunks[1:])
    if peak(one_t) <= budget:
        return one_t
    zmax, ymax, xmax = (max(axis) for axis in chunks[1:])
    best: tuple[int, tuple[tuple[int, ...], ...]] | None = None
    smallest = None  # the least any plan tried needs (reading included), when none fits
    z_reach = min(max((int(p.reach[0]) for p in passes), default=0), shape[1])
    for z_chunks in _z_choices(chunks[1], z_reach):
        bz = max(z_chunks)
        for n in range(1, max(ymax, xmax) + 1):
            by, bx = -(-ymax // n), -(-xmax // n)
            if n > 1 and (not split_planes or min(by, bx) < min_side):
                break
            new = (one_t[0], z_chunks, _split(chunks[2], by), _split(chunks[3], bx))
            need = peak(new)
            if need <= budget:
                core = bz * by * bx
                if best is None or core > best[0]:
                    best = (core, new)
                break
            smallest = need if smallest is None else min(smallest, need)
    if best is None and not split_planes:  # whole planes asked for: the smallest there is
        return (one_t[0], _split(chunks[1], 1), chunks[2], chunks[3])
    if best is None:
        raise InputError(
            f"The memory budget of {format_bytes(int(budget))} per task is below the "
            f"{format_bytes(int(smallest or 0))} the smallest work block needs; raise the "
            "workers' memory limit or give them fewer threads."
        )
    return best[1]


def stored_pass_chunks(
    shape: Sequence[int],
    chunks: tuple[tuple[int, ...], ...],
    p: PassMemory,
    budget: int,
    *,
    itemsize: int,
    threads: int,
    max_parts: int = 8,
) -> tuple[tuple[int, ...], ...] | None:
    """Blocks of a neighbourhood pass over whole planes whose result is stored, not kept.

    A pass that reads ``p.reach`` voxels per side and whose every block is stored to disk
    (the default method's signal above its background, counted and kept once) need not
    compute in the stack's ``chunks``: the blocks here are whole storage chunks merged
    along z (up to the whole time point) and planes cut into near-equal y parts (at
    most ``max_parts`` of whole rows, or, where no such block fits the budget, into y
    and x parts as many as it takes; every block along an axis at least the reach, so
    that no block is merged with a neighbour for its halo), chosen so that every task's
    modelled peak (:func:`task_peak` of ``p``, and the read of part of a storage chunk)
    fits ``budget`` and the halo computed besides the blocks is least: the fewest
    voxels on ``threads`` threads (the longest of the blocks dealt largest first), then
    in all.  A z reach of 20 planes on 48 planes of storage chunks of 4 (blocks of 20
    and 28, each grown by 20: 88 planes for 48) becomes the whole time point in two y
    parts grown by the y reach.  Returns None when no block fits the budget.  Every
    block starts at a storage chunk along t and z and its y/x extent is the parts': a
    Zarr array chunked ``(t, z of chunks, y of the parts, x of the parts)`` stores them
    aligned.
    """
    shape = tuple(int(n) for n in shape)
    chunks = tuple(tuple(int(c) for c in axis) for axis in chunks)
    nt, nz, ny, nx = shape
    tc, zc = max(chunks[0]), max(chunks[1])
    rz, ry, rx = (int(r) for r in p.reach)
    chunk_bytes = int(np.prod([max(axis) for axis in chunks], dtype=np.int64)) * int(itemsize)
    storage_bytes = decoding_bytes(chunk_bytes)
    if storage_bytes > budget // 2:
        storage_bytes = 0
    reading = PassMemory("read", reach=p.reach)
    workers = max(int(threads), 1)

    def grown(size: int, n: int, r: int) -> list[int]:
        if size >= n:
            return [n]
        edges = list(range(0, n, size)) + [n]
        return [min(b + r, n) - max(a - r, 0) for a, b in zip(edges[:-1], edges[1:])]

    def longest(axes: list[list[int]]) -> tuple[int, int, int]:
        count = int(np.prod([len(a) for a in axes], dtype=np.int64))
        total = int(np.prod([sum(a) for a in axes], dtype=np.int64))
        if count > 64 * workers:
            top = int(np.prod([max(a) for a in axes], dtype=np.int64))
            return max(top, -(-total // workers)), total, count
        costs = [int(np.prod(c, dtype=np.int64)) for c in itertools.product(*axes)]
        loads = [0] * workers
        for c in sorted(costs, reverse=True):
            loads[loads.index(min(loads))] += c
        return max(loads), total, count

    def parts_of(n: int, parts: int, r: int) -> tuple[int, ...] | None:
        size = -(-n // parts)
        count = -(-n // size)
        last = n - size * (count - 1)
        if count != parts or (count > 1 and last < r):
            return None
        return (size,) * (count - 1) + (last,)

    def fits(block: tuple[int, int, int, int], around: tuple[bool, bool, bool]) -> bool:
        kernel = task_peak(block, [p], itemsize=itemsize, shape=shape, neighbours=around)
        read = task_peak(block, [reading], itemsize=itemsize, shape=shape, neighbours=around)
        return max(kernel, read // INPUT_COPIES + storage_bytes) <= budget

    # y parts of whole rows first (the blocks the threads share); then y and x parts
    # alike, only where none of those fits the budget.
    rows = [(parts, 1) for parts in range(1, max_parts + 1)]
    most = max(1, min(ny // max(ry, 1), nx // max(rx, 1), 256))
    tiles = [(n, n) for n in range(2, most + 1)]
    best: tuple | None = None
    for shapes in (rows, tiles):
        for k in range(1, -(-nz // zc) + 1):
            bz = min(k * zc, nz)
            last_z = nz - bz * (-(-nz // bz) - 1)
            if bz < nz and last_z < rz:
                continue
            n_z = -(-nz // bz)
            for py, px in shapes:
                ys, xs = parts_of(ny, py, ry), parts_of(nx, px, rx)
                if ys is None or xs is None:
                    continue
                block = (tc, bz, ys[0], xs[0])
                if not fits(block, (bz < nz, ys[0] < ny, xs[0] < nx)):
                    continue
                new = (chunks[0], (bz,) * (n_z - 1) + (last_z,), ys, xs)
                axes = [list(chunks[0]), grown(bz, nz, rz), grown(ys[0], ny, ry),
                        grown(xs[0], nx, rx)]  # fmt: skip
                key = longest(axes)
                if best is None or key < best[0]:
                    best = (key, new)
                if shapes is tiles:  # more tiles only add halo
                    break
        if best is not None:
            break
    return None if best is None else best[1]


def _z_choices(z: tuple[int, ...], reach: int) -> list[tuple[int, ...]]:
    """Chunkings along z to try, thickest first.

    Splits of every chunk into near-equal parts, and first, when the chunks are
    thinner than the passes' ``reach`` in z, the fewest whole chunks merged that
    are not (a block thinner than the reach would be merged with its neighbours
    for the halo all the same, see :func:`task_peak`).
    """
    zmax = max(z)
    splits = [_split(z, bz) for bz in sorted({-(-zmax // k) for k in range(1, zmax + 1)})[::-1]]
    if zmax >= reach or len(z) == 1:
        return splits
    return [_merge(z, -(-reach // zmax)), *splits]


def _merged(chunks, peak, limit: int) -> tuple[tuple[int, ...], ...]:
    """Merge whole chunks along y and x, then z, then t, into blocks of few voxels.

    At most :data:`MERGE_VOXELS` voxels a block, and a task that needs at most ``limit``
    bytes (:func:`work_chunks`: its fixed buffers and half of the rest of the budget).
    Planes first: the halo of a small y/x block is most of what it computes.
    """
    out = chunks
    for axes in ((2, 3), (1,), (0,)):
        k = 1
        while any(k < len(out[a]) for a in axes):
            trial = tuple(_merge(c, 2 * k) if a in axes else c for a, c in enumerate(out))
            voxels = int(np.prod([max(c) for c in trial], dtype=np.int64))
            if voxels > MERGE_VOXELS or peak(trial) > limit:
                break
            k *= 2
        if k > 1:
            out = tuple(_merge(c, k) if a in axes else c for a, c in enumerate(out))
    return out


def memory_budget(client: Any = None, *, share: float = WORKER_SHARE) -> int:
    """Bytes one task may plan to use on ``client``'s workers.

    A worker's limit up to :data:`WORKER_CEILING`, less its memory once the passes'
    libraries are loaded (:data:`WORKER_LIBRARIES`, measured on every worker), per
    thread, times ``share``; the smallest worker counts.  ``client`` is a
    ``distributed.Client`` (by default the current one, if any).  Without a client,
    or when its workers have no limit, dask's ``array.chunk-size``.
    """
    if client is None:
        try:
            from distributed import default_client  # optional: only when a client exists

            client = default_client()
        except (ImportError, ValueError):
            client = None
    if client is not None:
        try:
            workers = client.scheduler_info().get("workers", {})
            limited = {a: w for a, w in workers.items() if w.get("memory_limit")}
            loaded = client.run(_loaded_memory, workers=list(limited)) if limited else {}
        except Exception:  # noqa: BLE001 - no worker information: dask's chunk size
            limited, loaded = {}, {}
        # A worker in the client's process (processes=False) measures the client too: what
        # is left out is capped at half the usable memory.
        usable = {a: int(w["memory_limit"]) * WORKER_CEILING for a, w in limited.items()}
        per_thread = [
            (usable[a] - min(int(loaded.get(a, 0)), usable[a] / 2))
            / max(int(w.get("nthreads") or 1), 1)
            for a, w in limited.items()
        ]
        if per_thread:
            return max(int(min(per_thread) * share), 0)
    return int(parse_bytes(str(dask.config.get("array.chunk-size"))))


def _loaded_memory() -> int:
    """Return the resident memory of this process once the passes' libraries are loaded."""
    import importlib

    import psutil

    from ..kernels.filters import compiled_kernels

    for name in WORKER_LIBRARIES:
        if name == "numba" and not compiled_kernels():
            continue
        try:
            importlib.import_module(name)
        except ImportError:  # an optional library (numba for some kernels only)
            pass
    return int(psutil.Process().memory_info().rss)


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
