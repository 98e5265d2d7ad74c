"""The passes of a run: threshold, segment + measure, link, relabel, write the tables.

Each pass takes the stack and what earlier passes produced; the three that
read the data (threshold, segment + measure, relabel) are one dask computation
each, run through ``sink`` (a :class:`bigseg.pipeline.sink.Sink` bound to the
run's client and progress display).  Long time series go through every pass in
batches of whole t-chunks
(:func:`bigseg.pipeline.scratch.t_batches`): each batch's graph is built from the
stack's time points of that batch only, so the client never holds a graph of
the whole series.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import xarray as xr
from dask.base import tokenize

from .. import methods
from ..chunked import stitch as _stitch
from ..chunked.plan import memory_budget, stored_pass_chunks
from ..chunked.relabel import relabel_partitioned, relabel_planes, relabel_stitched
from ..io import (
    nearest_levels,
    objstore,
    open_stack,
    pyramid_levels,
    regular_chunks,
    writable,
    write_labels,
)
from ..io.raw import RawArray
from ..measure import measure_delayed
from ..params import Params
from ..reads import in_work_chunks, is_read, read_region, remember_read
from ..segment import global_threshold, segment, segment_whole_planes, stitched_blocks
from ..stack import as_4d, scale_of, translation_of
from ..tables import detections_from_sums
from ..track import TrackParams
from . import partitions as _parts
from . import safety
from . import scratch as _scratch
from . import slabs as _slabs
from . import zparts as _zparts
from .layout import BLOCKS, KEPT, KEPT_DONE, TRACKING
from .sink import Sink, block_boxes, box_region, culled
from .tracking import track_parts


def threshold_pass(
    stack: xr.DataArray,
    source: str,
    params: Params,
    sink: Sink,
    scratch: Any = None,
    *,
    budget: int | None = None,
) -> np.ndarray:
    """Compute the thresholds and, for float data, count NaN/inf voxels in the same pass.

    When each time point's statistic depends on that time point alone
    (:attr:`bigseg.methods.Method.statistic_by_t`), long series are computed in
    batches of whole t-chunks, each from its own time points (the same values).
    With a local ``scratch`` (given only where the run keeps the signal:
    :func:`keeps_signal`), a method that declares its signal
    (:attr:`bigseg.methods.Method.signal`) has it computed once and kept there for
    the segment pass too (:func:`keep_signal`, in blocks planned for ``budget`` bytes
    per task).
    """
    bad = safety.nonfinite_count(stack)
    if bad is None and scratch is not None:
        return kept_thresholds(stack, params, scratch, sink, budget=budget)
    if bad is None and "t" in stack.dims and methods.get(params.preset).statistic_by_t(stack.dtype):
        batches = _scratch.t_batches(stack.data.chunks, sink.batch_blocks(_scratch.BATCH_BLOCKS))
        if len(batches) > 1:
            graphs = (
                (global_threshold(time_points(stack, t0, t1), params=params).data,)
                for _, _, t0, t1 in batches
            )
            values = [np.atleast_1d(v) for (v,) in sink.batches(graphs, "threshold")]
            return np.concatenate(values).astype(np.float64)
    threshold = global_threshold(stack, params=params).data
    try:
        values = sink((threshold,) if bad is None else (threshold, bad), "threshold")
    except Exception:
        if bad is not None:  # NaN/inf make the threshold fail: say so, in one sentence
            safety.check_finite(sink(bad, "finite")[0], source, stack.dtype)
        raise
    if bad is not None:
        safety.check_finite(values[1], source, stack.dtype)
    return np.atleast_1d(values[0]).astype(np.float64)


def keeps_signal(
    stack: xr.DataArray,
    params: Params,
    work: Any = None,
    *,
    budget: int | None = None,
    threads: int | None = None,
    earlier: bool | None = None,
) -> bool:
    """Whether a run keeps ``params.preset``'s signal (:func:`keep_signal`).

    Where the method declares it, the stack holds integers (float stacks have their
    NaN/inf counted in the threshold pass instead), its work blocks (planned for a run
    that keeps it: :func:`bigseg.segment.work_blocks` with ``kept=True``) lie on a
    regular grid, and, with a ``budget`` per task, blocks of its own fit that budget
    (:func:`signal_blocks` on ``threads`` threads).  With the scratch directory
    ``work`` (or the directory it will be made in): and only where the signal (float32,
    4 bytes per voxel at most) fits in :data:`KEEP_DISK_FRACTION` of its disk's free
    space; ``earlier``, the decision of an interrupted run this one resumes, stands for
    that check (``kept.f32`` itself takes disk space, and so do the outputs: a resumed
    run must make the plan it fingerprinted).  Otherwise the signal is computed twice,
    as the floor pass and the pre-pass need it.
    """
    four = as_4d(stack)
    data = four.data
    if not (
        methods.get(params.preset).signal is not None
        and np.dtype(data.dtype).kind != "f"  # float stacks count NaN/inf in the floor pass
        and _scratch.regular(data.chunks)
    ):
        return False
    if budget is not None and kept_blocks(four, params, int(budget), threads) is None:
        return False
    if earlier is not None:
        return bool(earlier)
    if work is None:
        return True
    return 4 * data.size <= KEEP_DISK_FRACTION * shutil.disk_usage(_existing(work)).free


def _existing(path: Any) -> Any:
    """Return ``path``, or the nearest of its parents that exists."""
    from pathlib import Path

    path = Path(path).absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


#: The signal is kept (:func:`keeps_signal`) only where it takes at most this fraction of
#: the free space of the scratch directory's disk: the outputs need room too.
KEEP_DISK_FRACTION = 0.5


def keep_signal(
    stack: xr.DataArray, params: Params, scratch: Any, sink: Sink, *, budget: int | None = None
) -> tuple[da.Array, np.ndarray | None]:
    """Store the method's signal of the whole stack in the scratch directory (once); return it.

    ``kept.f32`` (float32, uncompressed: :class:`bigseg.io.raw.RawArray`; compression
    saved a tenth of its bytes and cost more than the reads and writes themselves) is
    written in batches of whole t-chunks, each computed from a graph of its own time
    points, in blocks of their own (:func:`signal_blocks`: deeper than the stack's chunks
    and cut in y, so that less of the signal's halo is computed); it is read back in the
    stack's chunks; ``kept.done`` marks it finished, and a resumed run reads it rather
    than compute it again.  Returns it read from there (lazy)
    and, when each time point's statistic depends on its own data alone and the signal was
    computed here, the statistics, counted from each batch's signal as it is stored (None
    otherwise).
    """
    m = methods.get(params.preset)
    four = as_4d(stack)
    scale = scale_of(stack)
    path, done = scratch.path / KEPT, scratch.path / KEPT_DONE
    values = None
    if not (done.exists() and path.exists()):  # (an earlier version kept it in kept.zarr)
        blocks = signal_blocks(four, params, sink, budget)
        # An interrupted attempt's is replaced: bigseg's own, in its scratch directory.
        array = RawArray.create(path, four.shape, np.float32)
        batches = _scratch.t_batches(four.data.chunks, sink.batch_blocks(_scratch.BATCH_BLOCKS))
        by_t = m.statistic_by_t(stack.dtype)

        def graphs() -> Any:
            for _, _, t0, t1 in batches:
                data = time_points(four, t0, t1).data
                work = in_work_chunks(data, (data.chunks[0], *blocks[1:]))
                signal = m.signal(work, params, scale)
                region = (slice(t0, t1),)
                store = da.store(signal, array, regions=region, lock=False, compute=False)
                # One graph: each block's signal is computed once, stored and counted.
                # (``work``: the noise is counted from the reads the signal makes, once.)
                statistic = m.statistic_of_signal(signal, work, params, scale)
                yield (store, statistic) if by_t else (store,)

        found = [np.atleast_1d(v[1]) for v in sink.batches(graphs(), "threshold") if by_t]
        values = np.concatenate(found).astype(np.float64) if by_t else None
        done.write_text("")
    return read_kept(path, four), values


def read_kept(path: Any, four: xr.DataArray, chunks: tuple | None = None) -> da.Array:
    """Read the kept signal at ``path`` in ``chunks``, by default the 4D ``four``'s (lazy).

    A remembered read (:func:`bigseg.reads.remember_read`): grown and other blocks of it
    are read from the file too.
    """
    source = RawArray(path, four.shape, np.float32)
    chunks = four.data.chunks if chunks is None else chunks
    signal = da.from_array(
        source,
        chunks=chunks,
        name=f"kept-{tokenize(source, chunks)}",  # reads in other chunks: other keys
        asarray=False,
        lock=False,
        meta=np.empty((0,) * four.ndim, np.float32),
    )
    return remember_read(signal, source)


def signal_blocks(
    four: xr.DataArray, params: Params, sink: Sink, budget: int | None = None
) -> tuple[tuple[int, ...], ...]:
    """Return the blocks in which :func:`keep_signal` computes the signal of the 4D ``four``.

    Whole storage chunks merged along z and planes cut in y (or y and x), planned for
    ``budget`` bytes per task (by default the run's
    :func:`bigseg.chunked.plan.memory_budget`) and the cluster's threads
    (:func:`kept_blocks`).
    """
    if budget is None:
        budget = memory_budget(sink.client)
    threads = sum(sink.client.nthreads().values()) if sink.client is not None else None
    blocks = kept_blocks(four, params, int(budget), threads)
    if blocks is None:  # keeps_signal() plans the same blocks first: never a silent overrun
        raise RuntimeError(
            f"No blocks of the signal fit the memory budget of {int(budget)} bytes per task; "
            "the run should not have kept it (keeps_signal)."
        )
    return blocks


def kept_blocks(
    four: xr.DataArray, params: Params, budget: int, threads: int | None = None
) -> tuple[tuple[int, ...], ...] | None:
    """Blocks of the method's signal of the 4D ``four`` that fit ``budget`` (None: none do).

    With the method's ``floor`` pass memory model
    (:func:`bigseg.chunked.plan.stored_pass_chunks`) on ``threads`` threads (by default
    the machine's cores); the stack's chunks where the method declares no such pass.
    """
    m = methods.get(params.preset)
    passes = [p for p in m.memory(params, scale_of(four), 0) if p.name == "floor"]
    if not passes:
        return four.data.chunks
    return stored_pass_chunks(
        four.shape, four.data.chunks, passes[0], int(budget),
        itemsize=four.dtype.itemsize, threads=int(threads or os.cpu_count() or 1),
    )  # fmt: skip


def kept_thresholds(
    stack: xr.DataArray, params: Params, scratch: Any, sink: Sink, *, budget: int | None = None
) -> np.ndarray:
    """Return the thresholds of :func:`threshold_pass` from the signal :func:`keep_signal` kept.

    Counted as the signal is stored, or from the kept signal read back (in batches of whole
    t-chunks when each time point's statistic depends on its own data alone): the same
    values.
    """
    m = methods.get(params.preset)
    four = as_4d(stack)
    scale = scale_of(stack)
    signal, values = keep_signal(stack, params, scratch, sink, budget=budget)
    if values is not None:
        return values
    if m.statistic_by_t(stack.dtype):
        batches = _scratch.t_batches(four.data.chunks, sink.batch_blocks(_scratch.BATCH_BLOCKS))
    else:
        batches = [(0, four.data.numblocks[0], 0, four.sizes["t"])]
    graphs = (
        (
            m.statistic_of_signal(
                read_region(signal, (slice(t0, t1),)),
                time_points(four, t0, t1).data,
                params,
                scale,
            ),
        )
        for _, _, t0, t1 in batches
    )
    found = [np.atleast_1d(v) for (v,) in sink.batches(graphs, "threshold")]
    return np.concatenate(found).astype(np.float64)


def segment_pass(
    stack: xr.DataArray,
    split: Any,
    thresholds: np.ndarray,
    px: Any,
    params: Params,
    scratch: Any,
    remote: bool,
    sink: Sink,
) -> tuple[Callable[[int, int], dd.DataFrame], tuple, Any, Any]:
    """Segment and measure every block; plane labels stream to the scratch ``planes.zarr``.

    Returns the detections, as ``detections(first, end)``: a dask DataFrame of
    t-chunks ``first`` to ``end``, one partition each (built per batch); the sizes
    of the t-chunks and z-chunks of the blocks; for planes split into y/x chunks, the
    stitching of their blocks (its counts, or all of it when stitched in memory; None
    otherwise); and ``read(i, z)``, the detections of t-chunk ``i``, z-chunk ``z``, when
    the blocks' detections are stored by block or by slab (None otherwise).
    """
    planes_path = scratch.path / _scratch.PLANES
    if split is not None:  # planes split into y/x chunks: halo, stitch, exact sums
        kept = None if remote else _scratch.kept_signal(scratch)
        signal = None if kept is None else read_kept(kept, as_4d(stack), split.chunks)
        detections, stitched = stitched_pass(
            stack, split, thresholds, px, None if remote else scratch, planes_path, sink, params,
            signal=signal,
        )  # fmt: skip
        if not remote:
            _scratch.drop_kept_signal(scratch)
        read = (
            _slabs.slab_reader(scratch.path)
            if not remote and not isinstance(stitched, _stitch.Stitched)
            else None
        )
        return detections, split.chunks[:2], stitched, read
    if remote:  # no completion markers on object stores: one pass
        plane_labels, peak = segment_whole_planes(stack, params=params, threshold=thresholds)
    else:  # built in batches: only the shape, chunks and metadata are needed here
        plane_labels = planes_like(as_4d(stack), thresholds, params)
    plane_labels = plane_labels.copy(data=regular_chunks(plane_labels.data))
    chunks = plane_labels.data.chunks[:2]
    if remote:
        tables = measure_delayed(plane_labels, stack, peak)
        store = write_labels(
            plane_labels, planes_path, compute=False, overwrite=True, pyramid=False
        )
        # each block's table is written by its worker; only the row counts come back
        blocks = scratch.path / BLOCKS
        written = [
            _write_table(table, os.fspath(blocks / _parts.block_name(index)))
            for table, index in zip(tables, np.ndindex(*plane_labels.data.numblocks))
        ]
        sink((store, *written), "segment")
        return partial(_parts.detections_of_blocks, scratch.path), chunks, None, None
    # one completion marker per block, so that resume=True can skip it; batches of
    # time points, each segmented and measured from its own time points (and from the
    # method's signal where the threshold pass kept it)
    kept = _scratch.kept_signal(scratch)
    four = as_4d(stack)
    # whole planes, as the labels are (y/x chunks smaller than the halo are not stitched)
    whole = (*four.data.chunks[:2], (four.shape[2],), (four.shape[3],))
    signal = None if kept is None else read_kept(kept, four, whole)
    build = partial(
        _segment_batch, as_4d(stack), thresholds, params, plane_labels.data.chunks, signal=signal
    )
    _scratch.segment_blocks(plane_labels, build, scratch, sink)
    _scratch.drop_kept_signal(scratch)
    return (
        partial(_parts.detections_of_blocks, scratch.path),
        chunks,
        None,
        _parts.block_reader(scratch.path),
    )


_write_table = dask.delayed(_parts.write_table, pure=False)


def planes_like(four: xr.DataArray, thresholds: np.ndarray, params: Params) -> xr.DataArray:
    """Return a stand-in for the plane labels of a whole-plane 4D stack, without their graph.

    It has the shape, chunks, dtype, dims, coordinates and metadata of
    :func:`bigseg.segment`'s labels (its data are lazy zeros): every method segments
    each time point alone and keeps the stack's chunks along t, so the labels of the
    first t-chunk give the rest.  The graph of the whole series' labels costs the client
    ~4 KB per block to build.
    """
    end = int(four.data.chunks[0][0])
    first = as_4d(
        segment(time_points(four, 0, end), params=params, threshold=thresholds[:end], stitch=False)
    )
    chunks = (four.data.chunks[0], *first.data.chunks[1:])
    data = da.zeros(four.shape, chunks=chunks, dtype=first.dtype)
    return xr.DataArray(
        data, dims=first.dims, coords=four.coords, attrs=dict(first.attrs), name=first.name
    )


def _segment_batch(
    four: xr.DataArray,
    thresholds: np.ndarray,
    params: Params,
    chunks: tuple,
    t0: int,
    t1: int,
    signal: da.Array | None = None,
) -> tuple[da.Array, list]:
    """Plane labels of time points ``t0`` to ``t1`` (chunked as ``chunks`` there), and their tables.

    Built from those time points of the stack only (and of the method's ``signal``,
    when kept: :func:`keep_signal`); the same labels as the whole stack's there (every
    method's labels are independent of t and of the chunking).
    """
    part = time_points(four, t0, t1)
    kept = None if signal is None else read_region(signal, (slice(t0, t1),))
    labels, peak = segment_whole_planes(
        part, params=params, threshold=thresholds[t0:t1], signal=kept
    )
    edges = np.cumsum((0, *chunks[0]))
    first, end = np.searchsorted(edges, (t0, t1))
    target = (tuple(chunks[0][first:end]), *chunks[1:])
    if labels.data.chunks != target:
        labels = labels.copy(data=labels.data.rechunk(target))
    return labels.data, measure_delayed(labels, part, peak)


def time_points(stack: xr.DataArray, t0: int, t1: int) -> xr.DataArray:
    """Time points ``t0`` to ``t1`` of a 4D stack, lazy, with a graph of those time points only.

    (A plain slice keeps the graph of the whole series: its input layer, at least.)
    """
    part = stack.isel(t=slice(t0, t1))
    if is_read(stack.data):  # still read from the file (in work blocks, grown blocks)
        return part.copy(data=read_region(stack.data, (slice(t0, t1),)))
    return part.copy(data=culled(part.data))


def link_pass(
    detections: Callable[[int, int], dd.DataFrame],
    n: int,
    stack: xr.DataArray,
    params: Params,
    work: Any,
    sink: Sink,
) -> np.ndarray:
    """Link each partition across z on the workers; return each one's nucleus count.

    ``detections(first, end)`` gives partitions ``first`` to ``end`` of the ``n``
    (:func:`segment_pass`): they are linked in batches, each graph built from its
    own partitions.  The linked partitions (partition-local ids) are stored in the
    scratch directory.
    """
    planar = stack.sizes["z"] == 1  # 2D: no result may depend on the z size
    step = sink.batch_blocks(_scratch.BATCH_BLOCKS)
    batches = (
        (
            _parts.link_partitions(
                detections(a, min(a + step, n)), work, params=params,
                scale=scale_of(stack), planar=planar, first=a,
            ),
        )
        for a in range(0, n, step)
    )  # fmt: skip
    counts = pd.concat([c for (c,) in sink.batches(batches, "link")], ignore_index=True)
    return counts["nuclei"].to_numpy(np.int64)


def relabel_pass(
    stack: xr.DataArray,
    parts: _parts.Parts,
    offsets: np.ndarray,
    reach: np.ndarray | None,
    nuclei: pd.DataFrame | None,
    split: Any,
    stitched: Any,
    work: Any,
    source: str,
    sink: Sink,
) -> None:
    """Map the scratch plane labels to nucleus ids and write ``labels.zarr``.

    Each block builds its lookup table on the worker from its partition's linked
    detections (ids shifted by ``offsets``), through its slab's label nodes when planes
    are split (:func:`bigseg.pipeline.slabs.slab_rows`); long local series are written
    in batches of time points, each relabelled from its own planes.  Split planes
    stitched in memory (object stores, blocks of several sizes) are relabelled from
    their stitching.  Detections partitioned by z-chunk (``parts.by_z``): each block
    reads the linked parts that ``reach`` its planes (:func:`bigseg.pipeline.zparts.
    part_rows`), with global ids.
    """
    four = as_4d(open_stack(work / _scratch.PLANES, scale=scale_of(stack)))
    planes = four.data
    if isinstance(stitched, _stitch.Stitched):  # stitched in memory: so is its table
        frames = [_parts.read_linked(work, i, o) for i, o in enumerate(offsets)]
        linked = pd.concat(frames, ignore_index=True)
        labels = relabel_stitched(planes.rechunk(split.chunks), linked, stitched)
        rows_of = None
    elif split is not None:  # stitched slab by slab: each block's rows from its slab
        planes = planes.rechunk(split.chunks)
        rows_of = partial(
            _slabs.slab_rows, os.fspath(work), planes.numblocks,
            linked_rows=_by_z_rows(work, parts, offsets, reach, planes.chunks),
        )  # fmt: skip
    elif parts.by_z:
        rows_of = _by_z_rows(work, parts, offsets, reach, planes.chunks)
    else:
        rows_of = partial(_parts.relabel_rows, os.fspath(work / _parts.LINKED))
    if parts.by_z:  # the rows carry global ids
        offsets = np.zeros(len(parts.t_chunks), np.int64)
    size = sink.batch_blocks(_scratch.BATCH_BLOCKS)
    batches = _scratch.t_batches(planes.chunks, size)
    many = len(batches) > 1 or planes.npartitions > size  # a long series, or a large t-chunk
    batched = rows_of is not None and many and _local(work)
    if batched:  # only the array's shape, chunks and dtype are needed here
        labels = planes.astype(np.uint32)
    elif rows_of is not None:
        labels = relabel_partitioned(planes, rows_of, offsets, np.uint32)
    if "t" not in stack.dims:
        labels = labels[0]
    labels_da = xr.DataArray(labels, dims=stack.dims, attrs=dict(stack.attrs))
    if (work / "labels.zarr").exists():  # partial, from an interrupted attempt
        objstore.rmtree(work / "labels.zarr")
    store = write_labels(
        labels_da,
        work / "labels.zarr",
        source=source,
        nuclei=nuclei,
        compute=False,
        overwrite=True,  # the scratch directory is bigseg's: an interrupted run's is replaced
        create_only=batched,  # no graph of the whole series on the client
    )
    if not batched:
        # The coarser levels in the same graph, from the same blocks: nothing read back.
        sink((store, *nearest_levels(labels_da.data, work / "labels.zarr")), "labels")
        return
    # Long series or large time points: the array is created; its blocks are written in
    # batches of time points (or boxes of blocks of one), each relabelled from its own planes.
    del labels, labels_da
    array = writable(work / "labels.zarr" / "0")

    def relabelled(c0: int, c1: int, t0: int, t1: int) -> da.Array:
        return relabel_partitioned(
            time_points(four, t0, t1).data.rechunk((planes.chunks[0][c0:c1], *planes.chunks[1:])),
            partial(_batch_rows, rows_of, c0, t0),
            offsets[c0:c1],
            np.uint32,
        )

    store_by_t(array, batches, relabelled, sink, "labels", size=size)
    pyramid_pass(work / "labels.zarr", sink)


def store_by_t(
    array: Any,
    batches: list[tuple],
    build: Callable[[int, int, int, int], da.Array],
    sink: Sink,
    label: str,
    *,
    size: int | None = None,
) -> None:
    """Write a Zarr ``array`` in batches of time points, each computed from its own graph.

    ``batches`` are :func:`bigseg.pipeline.scratch.t_batches`; ``build(c0, c1, t0, t1)``
    returns the lazy values of t-chunks ``c0:c1`` (time points ``t0:t1``), built from a
    graph of those time points only.  A batch of more than ``size`` blocks (one large
    t-chunk) is written in boxes of at most ``size`` blocks, each from a graph of its own
    blocks (:func:`bigseg.pipeline.sink.block_boxes`).  An ``array`` without the time
    axis (one time point) takes the values of time point 0.
    """
    squeeze = array.ndim == 3

    def graphs() -> Iterator[tuple]:
        for c0, c1, t0, t1 in batches:
            values = build(c0, c1, t0, t1)
            boxes = [tuple(slice(0, n) for n in values.numblocks)]
            if size is not None and values.npartitions > size:
                boxes = block_boxes(values.numblocks, size)
            for box in boxes:
                region = box_region(values.chunks, box)
                part = culled(values[region]) if len(boxes) > 1 else values
                where = (slice(t0 + region[0].start, t0 + region[0].stop), *region[1:])
                if squeeze:
                    part, where = part[0], where[1:]
                yield (_store(part, array, where),)

    for _ in sink.batches(graphs(), label):
        pass


def _store(values: da.Array, array: Any, region: tuple[slice, ...]) -> Any:
    return da.store(values, array, regions=region, lock=False, compute=False)


def pyramid_pass(path: Any, sink: Sink) -> None:
    """Build the coarser levels of ``labels.zarr`` on the workers, each from the one before."""
    for store in pyramid_levels(path):
        sink(store, "pyramid")


def _by_z_rows(
    work: Any, parts: _parts.Parts, offsets: np.ndarray, reach: Any, chunks: tuple
) -> Callable[[tuple[int, ...]], pd.DataFrame] | None:
    """Return ``rows_of`` of label blocks from parts by z-chunk (None: parts by t-chunk)."""
    if not parts.by_z:
        return None
    return partial(
        _zparts.part_rows,
        os.fspath(work / _parts.LINKED),
        parts,
        tuple(int(o) for o in offsets),
        tuple(int(r) for r in reach),
        tuple(int(e) for e in np.cumsum((0, *chunks[1]))),
    )


def _local(path: Any) -> bool:
    return not isinstance(path, objstore.Remote)


def _batch_rows(
    rows_of: Callable[[tuple[int, ...]], pd.DataFrame],
    first_chunk: int,
    first_t: int,
    location: tuple[int, ...],
) -> pd.DataFrame:
    """Relabelling rows of the block at ``location`` of a batch, ``t`` counted from its start.

    The batch starts at t-chunk ``first_chunk`` (time point ``first_t``) of the stack;
    ``rows_of`` gives the rows of a block located in the whole stack.
    """
    rows = rows_of((first_chunk + location[0], *location[1:]))
    rows["t"] = rows["t"].to_numpy(np.int64) - first_t
    return rows


def relabel(planes: Any, linked: pd.DataFrame) -> Any:
    """Map plane-local labels of a ``(t, z, y, x)`` array to nucleus ids (lazy)."""
    t, z, label = (linked[c].to_numpy(np.int64) for c in ("t", "z", "label"))
    return relabel_planes(planes, t, z, label, linked["nucleus"].to_numpy(np.uint32), np.uint32)


def stitched_pass(
    stack: Any,
    data: da.Array,
    thresholds: np.ndarray,
    px: Any,
    scratch: Any,
    planes_path: Any,
    sink: Sink,
    params: Params,
    *,
    signal: da.Array | None = None,
) -> tuple[Callable[[int, int], dd.DataFrame], _stitch.Stitched | _stitch.StitchCounts]:
    """Segment + measure pass for split planes; returns the detections as :func:`segment_pass`.

    Block-local labels stream to ``planes_path``.  With a local ``scratch`` (and blocks
    on one grid) the method's pre-pass is stored first (``signal.zarr``,
    :func:`bigseg.pipeline.scratch.stored_signal`) and each block reads its halo from
    there; each block leaves its stitching record as its completion marker, so that
    ``resume=True`` skips it; the workers then stitch slab by slab
    (:mod:`bigseg.pipeline.slabs`) and only the counts come back.  Otherwise (object
    stores, blocks of several sizes) the per-block sums and the per-face pair tables
    come back, and are stitched in memory.  ``signal``: the method's signal the
    threshold pass kept (:func:`keep_signal`), in ``data``'s chunks; the pre-pass reads
    it instead of computing it again.
    """
    thr = da.from_array(np.asarray(thresholds, np.float64), chunks=-1)
    on_disk = scratch is not None and _scratch.regular(data.chunks)
    keep = None
    if on_disk:  # the pre-pass, stored first
        keep = partial(_scratch.stored_signal, scratch=scratch, sink=sink, scale=scale_of(stack))
    blocks = stitched_blocks(data, thr, params, px, scale_of(stack), keep=keep, signal=signal)
    raw = xr.DataArray(
        _stitch.core_labels(blocks, data.chunks), dims=("t", "z", "y", "x"), attrs=dict(stack.attrs)
    )
    side = _stitch.side_tables(blocks)
    if on_disk:
        _scratch.stitched_blocks(raw, side, scratch, sink)
        counts = _slabs.stitch_slabs(
            data.numblocks, scratch, sink, scale=scale_of(stack), translation=translation_of(stack)
        )
        return partial(_slabs.detections_of_slabs, scratch.path), counts
    store = write_labels(raw, planes_path, compute=False, overwrite=True, pyramid=False)
    _, side, *pairs = sink((store, _stitch.summaries(side), *_stitch.face_pairs(side)), "segment")
    stitched = _stitch.stitch(side, pairs)
    frame = detections_from_sums(
        stitched.sums, scale=scale_of(stack), translation=translation_of(stack)
    )
    parts = _parts.split_by_t(frame, data.chunks[0])
    return partial(_parts.detections_of_frames, parts), stitched


def write_tables(
    stack: xr.DataArray,
    parts: _parts.Parts,
    offsets: np.ndarray,
    work: Any,
    sink: Sink,
    *,
    read_back: bool = True,
) -> tuple[int, int, pd.DataFrame | None]:
    """Write the tables on the workers; return the numbers of nuclei and detections.

    ``nuclei.parquet`` and ``detections.parquet`` are partitioned Parquet datasets, one
    file per part of the detections (``parts``: by t-chunk, or by z-chunk of large time
    points); tables keep the original time indices (when ``t`` selects a range), as
    integers.  ``nuclei.csv`` is written (from the client) only up to
    :data:`bigseg.pipeline.partitions.SMALL_NUCLEI` nuclei; the nuclei table is then
    returned too (None for larger runs).  With ``read_back`` False neither is done (a
    run that tracks does it once its nuclei have track ids).
    """
    t_values = as_4d(stack)["t"].to_numpy().astype(np.int64)
    edges = np.cumsum((0, *parts.t_chunks))
    chunk = [parts.t_chunk(p) for p in range(len(parts))]
    n = len(parts)
    step = sink.batch_blocks(_scratch.BATCH_BLOCKS)
    _parts.reset_tables(work)
    batches = (
        (
            _parts.write_partitions(
                work, offsets[a:b], [edges[chunk[p]] for p in range(a, b)],
                [t_values[edges[chunk[p]]:edges[chunk[p] + 1]] for p in range(a, b)],
                scale=scale_of(stack), planar=stack.sizes["z"] == 1, first=a,
            ),
        )
        for a, b in ((a, min(a + step, n)) for a in range(0, n, step))
    )  # fmt: skip
    counts = pd.concat([c for (c,) in sink.batches(batches, "tables")], ignore_index=True)
    n_nuclei, n_detections = int(counts["nuclei"].sum()), int(counts["detections"].sum())
    return n_nuclei, n_detections, small_nuclei(work, n_nuclei) if read_back else None


def small_nuclei(work: Any, n_nuclei: int) -> pd.DataFrame | None:
    """Write ``nuclei.csv`` and return the nuclei table, up to :data:`SMALL_NUCLEI` nuclei."""
    if n_nuclei > _parts.SMALL_NUCLEI:
        return None
    nuclei = _parts.read_parts(work / "nuclei.parquet")
    nuclei.to_csv(work / "nuclei.csv", index=False, float_format=_parts.CSV_FLOAT_FORMAT)
    return nuclei


def part_times_of(stack: xr.DataArray, parts: _parts.Parts) -> list[list[int]]:
    """Return the time points (as the tables number them) of each part: its t-chunk's."""
    t_values = as_4d(stack)["t"].to_numpy().astype(np.int64)
    edges = np.cumsum((0, *parts.t_chunks))
    return [
        [int(v) for v in t_values[edges[i] : edges[i + 1]]]
        for i in (parts.t_chunk(p) for p in range(len(parts)))
    ]


def track_pass(
    stack: xr.DataArray,
    parts: _parts.Parts,
    work: Any,
    sink: Sink,
    *,
    params: TrackParams,
    frame_interval_s: float | None,
) -> dict:
    """Track the nuclei across time on the workers (:mod:`bigseg.pipeline.tracking`).

    ``nuclei.parquet`` gains ``track_id`` and ``parent_track_id``; ``tracks.parquet`` is
    written beside it.  Returns the counts.
    """
    counts = track_parts(
        work / "nuclei.parquet",
        work / "tracks.parquet",
        work,
        part_times_of(stack, _parts.Parts(parts.t_chunks)),  # tracks read t-chunks whole
        sink,
        params=params,
        frame_interval_s=frame_interval_s,
        per=parts.per_t,
    )
    if not _local(work):
        objstore.rmtree(work / TRACKING)
    return counts
