"""The scratch directory of a run: completion markers, resume and atomic finalisation.

A run writes everything into a hidden directory beside its output,
``.OUT.partial/``, which holds an ``INCOMPLETE`` note until the very end and is
then renamed to ``OUT`` in one step, so an output that exists is always
complete.

The expensive pass (segment + measure) is cut into one task per label block.
Each task writes its block of plane labels into ``planes.zarr`` and then,
atomically, its detections table to ``blocks/<t>_<z>_<y>_<x>.parquet``: that
file is the block's completion marker.  Planes split into y/x blocks write
their stitching record instead (sums and face rows,
``blocks/<t>_<z>_<y>_<x>.side.npz``, NumPy arrays only).  A run started with ``resume=True``
keeps the scratch directory when it fails or is interrupted, and a rerun with
``resume=True`` skips every block that has a marker.  ``state.json`` holds a
fingerprint of the input, chunking and parameters (a mismatch is refused) and
the thresholds of the first pass once they are known.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd

from .._errors import InputError
from ..chunked.stitch import Block
from ..io import WRITE_CONFIG, writable, write_labels
from ..io.objstore import Remote
from . import outputs
from .layout import (
    BLOCKS,
    INCOMPLETE,
    KEPT,
    KEPT_DONE,
    KEPT_ZARR,
    LINKED,
    LOCK,
    PLANES,
    SIGNAL,
    SIGNAL_DONE,
    SLABS,
    STATE,
    TRACKING,
    ZLINK,
    scratch_path,
)
from .sink import block_boxes, box_region, culled


def check_partial(out: Path, resume: bool) -> None:
    """Refuse to start over a partial output that a ``resume=True`` run could continue."""
    work = scratch_path(out)
    if work.exists() and not resume:
        raise InputError(
            f"An interrupted run left partial results in {str(work)!r}; rerun with resume=True "
            "to continue it, or delete that directory to start again."
        )


def _stat_signature(path: str) -> list:
    """Sizes and modification times of a file, or of a Zarr store's metadata files."""
    p = Path(path)
    if p.is_file():
        st = p.stat()
        return [p.name, st.st_size, st.st_mtime_ns]
    names = ("zarr.json", ".zarray", ".zattrs", ".zgroup")
    out = []
    for meta in sorted(list(p.glob("*")) + list(p.glob("*/*"))):
        if meta.name in names:
            st = meta.stat()
            out.append([str(meta.relative_to(p)), st.st_size, st.st_mtime_ns])
    return out


def fingerprint(stack: Any, source: str, params: Mapping[str, Any]) -> dict:
    """Describe what must not change between an interrupted run and its resumption."""
    import importlib.metadata as md

    try:
        version = md.version("bigseg")
    except md.PackageNotFoundError:  # pragma: no cover - not installed
        version = None
    fp: dict[str, Any] = {
        "bigseg": version,
        "dims": list(stack.dims),
        "shape": list(stack.shape),
        "dtype": str(stack.dtype),
        "chunks": [list(c) for c in stack.data.chunks],
        "scale": stack.attrs.get("scale"),
        "translation": stack.attrs.get("translation"),
        "params": dict(params),
    }
    if os.path.exists(source):
        fp["source"] = os.path.abspath(source)
        fp["input"] = _stat_signature(source)
    else:
        fp["source"] = source
        fp["dask_name"] = stack.data.name
    if "files" in stack.attrs:  # a sequence of files: the name hashes their paths, sizes, mtimes
        fp["dask_name"] = stack.data.name
    return json.loads(json.dumps(fp, default=str))


def earlier_keep(out: Path) -> bool | None:
    """Whether the interrupted run that left ``out``'s scratch directory kept its signal.

    None when there is no such directory, or its state does not say.
    """
    try:
        state = json.loads((scratch_path(out) / STATE).read_text())
    except (OSError, ValueError):
        return None
    value = state.get("fingerprint", {}).get("keep_signal") if isinstance(state, dict) else None
    return value if isinstance(value, bool) else None


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=1, default=str))
    os.replace(tmp, path)


class Scratch:
    """An open scratch directory (see :func:`open_scratch`)."""

    def __init__(self, path: Path, state: dict):
        self.path = path
        self.state = state
        self.blocks_total = 0
        self.blocks_reused = 0

    def save_thresholds(self, thresholds: np.ndarray) -> None:
        """Record the first pass's result so that a resumed run skips it."""
        self.state["thresholds"] = [float(v) for v in np.atleast_1d(thresholds)]
        _write_json(self.path / STATE, self.state)

    def thresholds(self) -> np.ndarray | None:
        """Thresholds recorded by an earlier attempt, if any."""
        values = self.state.get("thresholds")
        return None if values is None else np.asarray(values, np.float64)


@contextlib.contextmanager
def open_scratch(out: Path, fp: dict, *, resume: bool) -> Iterator[Scratch]:
    """Create (or, with ``resume``, reopen) the scratch directory of ``out``.

    On an exception the directory is removed, unless ``resume`` is set: then
    it is kept, with its completion markers, for the next ``resume`` run.
    """
    work = scratch_path(out)
    check_partial(out, resume)
    out.parent.mkdir(parents=True, exist_ok=True)
    work.mkdir(exist_ok=True)
    lock = _lock(work)
    try:
        state = _load_state(work, fp)
        if state is None:  # fresh (or unusable leftovers): start clean
            for child in work.iterdir():
                if child.name != LOCK:
                    _remove(child)
            state = {"fingerprint": fp, "thresholds": None}
            (work / INCOMPLETE).write_text(
                "This bigseg run did not finish; its outputs are partial. Rerun the same "
                "command with --resume to continue it.\n"
            )
            _write_json(work / STATE, state)
        scratch = Scratch(work, state)
        try:
            yield scratch
        except BaseException:
            if not resume:
                _remove_scratch(work)
            raise
    finally:
        lock.close()


def _remove_scratch(work: Path) -> None:
    """Remove an abandoned scratch directory, also after tasks that were still running.

    When one task fails, a local scheduler raises at once while other tasks
    finish; a Zarr write recreates the directories it writes into.
    """
    for _ in range(20):
        shutil.rmtree(work, ignore_errors=True)
        time.sleep(0.05)
        if not work.exists():
            return


def _load_state(work: Path, fp: dict) -> dict | None:
    state_file = work / STATE
    if not state_file.exists() or not (work / PLANES).exists():
        return None
    try:
        state = json.loads(state_file.read_text())
    except ValueError:
        return None
    if state.get("fingerprint") != fp:
        changed = sorted(
            k
            for k in set(fp) | set(state.get("fingerprint", {}))
            if fp.get(k) != state.get("fingerprint", {}).get(k)
        )
        raise InputError(
            f"The partial results in {str(work)!r} come from a run with a different "
            f"{', '.join(changed)}; rerun with the same input and options, or delete that "
            "directory to start again."
        )
    return state


def _lock(work: Path) -> Any:
    handle = open(work / LOCK, "a")  # noqa: SIM115 - held for the whole run
    try:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # pragma: no cover - not POSIX
        pass
    except OSError:
        handle.close()
        raise InputError(
            f"Another bigseg run is writing {str(work)!r}; wait for it to finish or choose "
            "another output directory."
        ) from None
    return handle


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def block_marker(scratch: Scratch, index: Sequence[int]) -> Path:
    """Completion marker (the detections table) of one label block."""
    return scratch.path / BLOCKS / ("_".join(str(int(i)) for i in index) + ".parquet")


#: At most this many blocks per computation of the threshold and segment passes: long time
#: series are submitted in batches of whole t-chunks, each batch's graph built from its own
#: time points only, so neither the client nor the scheduler holds a graph of the whole
#: series (see :meth:`bigseg.pipeline.sink.Sink.batches`).
BATCH_BLOCKS = 200


def t_batches(chunks: Sequence[Sequence[int]], max_blocks: int | None = None) -> list[tuple]:
    """Cut the t-chunks of a ``(t, z, y, x)`` chunking into batches of whole t-chunks.

    Parameters
    ----------
    chunks : sequence of sequences of int
        The chunks of the array, per axis.
    max_blocks : int, optional
        At most this many blocks per batch (default :data:`BATCH_BLOCKS`); a batch holds
        at least one t-chunk.  A run passes ``sink.batch_blocks(BATCH_BLOCKS)``
        (:meth:`bigseg.pipeline.sink.Sink.batch_blocks`): larger on large clusters.

    Returns
    -------
    list of tuple of int
        ``(first_chunk, end_chunk, first_t, end_t)`` of every batch, in order.
    """
    per_chunk = int(np.prod([len(c) for c in chunks[1:]], dtype=np.int64))
    step = max(1, (max_blocks or BATCH_BLOCKS) // max(per_chunk, 1))
    edges = np.cumsum((0, *chunks[0]))
    n = len(chunks[0])
    return [
        (c, min(c + step, n), int(edges[c]), int(edges[min(c + step, n)]))
        for c in range(0, n, step)
    ]


def segment_blocks(
    labels: Any,
    build: Callable[[int, int], tuple[Any, Sequence[Any]]],
    scratch: Scratch,
    sink: Any,
) -> None:
    """Write label blocks and their detections, skipping blocks already done.

    Parameters
    ----------
    labels : xarray.DataArray
        Lazy 4D ``(t, z, y, x)`` plane labels with regular chunks: the shape, chunk grid
        and metadata of ``planes.zarr`` (never computed).
    build : callable
        ``build(first_t, end_t)`` returns the lazy labels of those time points (a dask
        array chunked as ``labels`` there, built from those time points only) and their
        detections tables, one delayed object per block in ``numpy.ndindex`` order.
    scratch : Scratch
        Where ``planes.zarr`` and the markers live.
    sink : bigseg.pipeline.sink.Sink
        Computes the batches.

    The detections stay in the markers (read back on the workers, by
    :func:`bigseg.pipeline.partitions.detections_of_blocks`), so a resumed run and an
    uninterrupted one give the same tables.  Blocks are computed in batches of whole
    t-chunks (:func:`t_batches`), each built only when it is submitted; a batch whose
    blocks are all done is never built.
    """
    data = labels.data
    planes = scratch.path / PLANES
    if not planes.exists():
        write_labels(labels, planes, pyramid=False, create_only=True)  # the empty array only
    (scratch.path / BLOCKS).mkdir(exist_ok=True)
    done = _count_done(scratch, data.numblocks, block_marker)

    def parts() -> Iterator[tuple]:
        for c0, c1, t0, t1 in t_batches(data.chunks, sink.batch_blocks(BATCH_BLOCKS)):
            if done[c0:c1].all():
                continue
            block_data, tables = build(t0, t1)
            # a batch's tables count time from its first time point
            finish = partial(_finish_block, t_offset=t0) if t0 else _finish_block
            yield (c0, 0, 0, 0), (t0, 0, 0, 0), block_data, tables, finish

    _write_blocks(parts(), planes, scratch, block_marker, sink)


def _count_done(
    scratch: Scratch,
    numblocks: Sequence[int],
    marker_of: Callable[..., Path],
    *,
    by_block: bool = False,
) -> np.ndarray:
    """Record the numbers of blocks and of blocks done; return whether each t-chunk is done.

    With ``by_block``, whether each block is done.
    """
    done = np.zeros(tuple(numblocks), bool)
    for index in np.ndindex(*numblocks):
        done[index] = marker_of(scratch, index).exists()
    scratch.blocks_total = int(done.size)
    scratch.blocks_reused = int(done.sum())
    return done if by_block else done.reshape(done.shape[0], -1).all(axis=1)


def _write_blocks(
    parts: Iterable[tuple],
    planes: Path,
    scratch: Scratch,
    marker_of: Callable[[Scratch, Sequence[int]], Path],
    sink: Any,
) -> None:
    """Store every label block not yet done with its payload (table or record) as marker.

    ``parts`` yields ``(first, start, data, payloads, finish)``: lazy blocks whose first
    is block ``first`` of the run's block grid (at voxel ``start``), one payload per
    block, and the function that stores a block and writes its payload.  Blocks whose
    marker exists are skipped; the rest are computed in batches of at most
    :data:`BATCH_BLOCKS` (more on large clusters), at most
    :data:`bigseg.pipeline.sink.IN_FLIGHT` at a time.
    """
    size = sink.batch_blocks(BATCH_BLOCKS)

    def batches() -> Iterator[tuple]:
        for first, start, data, payloads, finish in parts:
            task = dask.delayed(finish, pure=False)
            starts = [np.cumsum((s0,) + c[:-1]) for s0, c in zip(start, data.chunks)]
            todo = []
            blocks = data.to_delayed(optimize_graph=False).ravel()
            for index, block, payload in zip(np.ndindex(*data.numblocks), blocks, payloads):
                marker = marker_of(scratch, tuple(f + i for f, i in zip(first, index)))
                if marker.exists():
                    continue
                region = tuple(
                    slice(int(starts[a][i]), int(starts[a][i]) + data.chunks[a][i])
                    for a, i in enumerate(index)
                )
                todo.append(task(block, payload, str(planes / "0"), region, str(marker)))
            for a in range(0, len(todo), size):
                yield tuple(todo[a : a + size])

    for _ in sink.batches(batches(), "segment"):
        pass


def _finish_block(
    block: np.ndarray,
    table: pd.DataFrame,
    array_path: str,
    region: tuple,
    marker: str,
    t_offset: int = 0,
) -> int:
    """Store one label block, then write its table atomically (the completion marker).

    ``t_offset`` is added to the table's ``t`` (the first time point of the block's batch).
    """
    if t_offset:
        table = table.assign(t=table["t"] + float(t_offset))
    if _store_then_mark(
        block, array_path, region, marker, lambda tmp: table.to_parquet(tmp, index=False)
    ):
        return len(table)
    return 0


def regular(chunks: Sequence[Sequence[int]]) -> bool:
    """Whether every chunk but the last along each axis has one size (Zarr's chunk grid)."""
    return all(len(set(c[:-1])) <= 1 and c[-1] <= c[0] for c in chunks)


def stored_signal(source: Any, scratch: Scratch, sink: Any, scale: Sequence[float]) -> Any:
    """Write a pre-pass's output to ``signal.zarr`` (once); return it read from there (lazy).

    A block of split planes is segmented with its neighbours' pre-pass output (its
    halo): read from memory, by a halo exchange, a worker holds every finished block
    whose neighbours are not all done (a wavefront across the plane, which took
    512 MiB workers past their limit on 2048² planes). Stored first, every block is
    read back from the file grown by the halo (:func:`bigseg.reads.read_grown`),
    depending on no other task. ``source`` (a lazy ``(t, z, y, x)`` dask array) must
    have regular chunks (:func:`regular`): they become the store's.  It is stored in
    batches of blocks, each computed from a graph of its own blocks
    (:func:`bigseg.pipeline.sink.culled`).  A resumed run reads a store that was
    finished (``signal.done``) rather than compute it again.
    """
    import dask.array as da
    import zarr

    from ..io import open_stack

    path = scratch.path / SIGNAL
    done = scratch.path / SIGNAL_DONE
    if not done.exists():
        array = zarr.create_array(
            os.fspath(path),
            shape=source.shape,
            chunks=tuple(int(c[0]) for c in source.chunks),
            dtype=source.dtype,
            dimension_names=("t", "z", "y", "x"),
            overwrite=True,  # an interrupted attempt's, in bigseg's own scratch directory
            config=WRITE_CONFIG,  # none compared with the fill value first
        )
        stores = (
            (da.store(culled(source[region]), array, regions=region, lock=False, compute=False),)
            for region in (
                box_region(source.chunks, box)
                for box in block_boxes(source.numblocks, sink.batch_blocks(BATCH_BLOCKS))
            )
        )
        for _ in sink.batches(stores, "foreground"):
            pass
        done.write_text("")
    return open_stack(path, scale=scale).data


def kept_signal(scratch: Scratch) -> Path | None:
    """Where a method's signal kept by the threshold pass is, when it was stored in full.

    None too where only an earlier version's (``kept.zarr``) was: it is never read.
    """
    path = scratch.path / KEPT
    return path if (scratch.path / KEPT_DONE).exists() and path.exists() else None


def drop_kept_signal(scratch: Scratch) -> None:
    """Remove the kept signal once every block that reads it is done (its marker first)."""
    for name in (KEPT_DONE, KEPT, KEPT_ZARR):
        if (scratch.path / name).exists():
            _remove(scratch.path / name)


def side_marker(scratch: Scratch, index: Sequence[int]) -> Path:
    """Completion marker (the stitching record) of one block of split planes."""
    return side_path(scratch.path, index)


def side_path(work: Path, index: Sequence[int]) -> Path:
    """Return the stitching record of block ``index`` in the scratch directory ``work``."""
    return work / BLOCKS / ("_".join(str(int(i)) for i in index) + ".side.npz")


def stitched_blocks(core: Any, side: Any, scratch: Scratch, sink: Any) -> None:
    """Write the blocks of split planes and their stitching records, skipping blocks done.

    Parameters
    ----------
    core : xarray.DataArray
        Lazy 4D block-local core labels (:func:`bigseg.chunked.stitch.core_labels`), with
        regular chunks: each block is one region of ``planes.zarr``'s chunk grid.
    side : dask.array.Array
        The blocks' records (:func:`bigseg.chunked.stitch.side_tables`), one per block.
    scratch : Scratch
        Where ``planes.zarr`` and the markers live.
    sink : bigseg.pipeline.sink.Sink
        Computes the batches.

    The records stay in the markers (``blocks/<t>_<z>_<y>_<x>.side.npz``), where the
    workers stitch them slab by slab (:mod:`bigseg.pipeline.slabs`), so a resumed run
    and an uninterrupted one stitch the same records.
    """
    data = core.data
    planes = scratch.path / PLANES
    if not planes.exists():
        write_labels(core, planes, pyramid=False, create_only=True)  # the empty array only
    (scratch.path / BLOCKS).mkdir(exist_ok=True)
    done = _count_done(scratch, data.numblocks, side_marker, by_block=True)

    def parts() -> Iterator[tuple]:
        # Boxes of blocks, each computed from a graph of its own blocks (culled): a
        # pass over every block of one time point is never one graph.
        for box in block_boxes(data.numblocks, sink.batch_blocks(BATCH_BLOCKS)):
            if done[box].all():
                continue
            region = box_region(data.chunks, box)
            first = tuple(b.start for b in box)
            start = tuple(r.start for r in region)
            # Unoptimised: fusing would rename the segment tasks that labels and records share.
            records = culled(side[box]).to_delayed(optimize_graph=False).ravel()
            yield first, start, culled(data[region]), records, _finish_side

    _write_blocks(parts(), planes, scratch, side_marker, sink)


def _finish_side(
    block: np.ndarray, record: np.ndarray, array_path: str, region: tuple, marker: str
) -> int:
    """Store one block of labels, then its record atomically (the completion marker)."""
    return int(
        _store_then_mark(block, array_path, region, marker, partial(write_side, record[0, 0, 0, 0]))
    )


_SIDE_ARRAYS = ("after_y", "after_x", "first_y", "first_x")


def write_side(side: Block, path: str) -> None:
    """Write a block's stitching record (labels dropped) as an ``.npz`` of plain arrays."""
    arrays: dict[str, np.ndarray] = {
        "index": np.asarray(side.index, np.int64),
        "flat": np.asarray(side.flat, np.int64),
        "origin": np.asarray(side.origin, np.int64),
        "beyond": np.asarray(side.beyond, np.int64),
        "sums_columns": np.asarray([str(c) for c in side.sums.columns], dtype=str),
    }
    for name in _SIDE_ARRAYS:
        value = getattr(side, name)
        if value is not None:
            arrays[name] = np.asarray(value)
    for i, column in enumerate(side.sums.columns):
        arrays[f"sums_{i}"] = side.sums[column].to_numpy()
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def read_side(path: str | os.PathLike) -> Block:
    """Read a record written by :func:`write_side` (never unpickles anything)."""
    with np.load(path, allow_pickle=False) as f:
        columns = [str(c) for c in f["sums_columns"]]
        sums = pd.DataFrame({c: f[f"sums_{i}"] for i, c in enumerate(columns)}, columns=columns)
        return Block(
            index=tuple(int(v) for v in f["index"]),
            flat=int(f["flat"]),
            origin=tuple(int(v) for v in f["origin"]),
            core=None,
            sums=sums,
            beyond=int(f["beyond"]),
            **{name: (f[name] if name in f.files else None) for name in _SIDE_ARRAYS},
        )


def _store_then_mark(
    block: np.ndarray, array_path: str, region: tuple, marker: str, write: Callable[[str], Any]
) -> bool:
    """Store ``block`` into the scratch labels, then write its completion marker atomically.

    ``write(tmp)`` writes the marker under a temporary name, which is then moved into
    place. Returns False (and stores nothing) when the run was abandoned meanwhile.
    """
    if not os.path.isdir(os.path.dirname(marker)):
        return False  # the run was abandoned and its scratch directory removed
    writable(array_path)[region] = block  # every chunk written, none compared with 0
    tmp = f"{marker}.tmp-{os.getpid()}-{threading.get_ident()}"
    write(tmp)
    os.replace(tmp, marker)
    return True


def finalise(scratch: Scratch, out: Path, overwrite: bool) -> None:
    """Drop the resume machinery and move the finished scratch directory to ``out``.

    ``state.json`` goes first, so an interruption during clean-up leaves a
    directory that a resumed run starts afresh rather than trusts.  An
    existing ``out`` is replaced only if :func:`bigseg.pipeline.outputs.check_replaceable`
    still allows it, and then only the entries bigseg writes are deleted.
    """
    # Checked again: the output may have appeared, or been added to, during the run.
    outputs.check_replaceable(out, overwrite)
    work = scratch.path
    scratch_names = (STATE, PLANES, SIGNAL, SIGNAL_DONE, BLOCKS, SLABS, LINKED, ZLINK, TRACKING)
    scratch_names += (KEPT_DONE, KEPT, KEPT_ZARR)
    for name in (*scratch_names, INCOMPLETE, LOCK):
        if (work / name).exists():
            _remove(work / name)
    for leftover in work.glob("*.tmp-*"):
        _remove(leftover)
    old = None
    if out.exists():  # an earlier bigseg output (or an empty directory)
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    work.rename(out)
    if old is not None:
        outputs.remove_local(old)


class RemoteScratch:
    """Where a run writes on an object store: the output prefix itself.

    It has the interface of :class:`Scratch` without resuming:
    no thresholds are kept between attempts and no block is reused.
    """

    blocks_total = 0
    blocks_reused = 0

    def __init__(self, path: Remote):
        self.path = path

    def thresholds(self) -> None:
        """Nothing is kept between attempts on an object store."""
        return None

    def save_thresholds(self, thresholds: Any) -> None:
        """Keep nothing (see :meth:`thresholds`)."""


@contextlib.contextmanager
def remote_scratch(out: Remote, overwrite: bool) -> Iterator[RemoteScratch]:
    """Yield the output prefix to write into; ``run.json`` written last marks completion."""
    old = outputs.check_remote(out, overwrite)  # again: it may have changed since the first check
    if old:
        (out / "run.json").rmtree()  # the old output stops looking complete first
        rest = [f"{out.key}/{name}" for name in old if name != "run.json"]
        if rest:
            out.fs.rm(rest)
        out.fs.invalidate_cache()
    try:
        yield RemoteScratch(out)
    except BaseException:
        with contextlib.suppress(Exception):
            out.rmtree()
        raise
