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
``blocks/<t>_<z>_<y>_<x>.side.pkl``).  A run started with ``resume=True``
keeps the scratch directory when it fails or is interrupted, and a rerun with
``resume=True`` skips every block that has a marker.  ``state.json`` holds a
fingerprint of the input, chunking and parameters (a mismatch is refused) and
the thresholds of the first pass once they are known.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd

from .._errors import InputError
from ..io import write_labels
from ..io.objstore import Remote
from . import outputs
from .layout import BLOCKS, INCOMPLETE, LINKED, LOCK, PLANES, STATE, scratch_path


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


#: At most this many blocks per computation of the segment pass (very long time series are
#: submitted in batches, so the scheduler never holds millions of tasks).
BATCH_BLOCKS = 10_000


def segment_blocks(
    labels: Any,
    tables: Sequence[Any],
    scratch: Scratch,
    compute: Callable[[tuple], Any],
) -> None:
    """Write label blocks and their detections, skipping blocks already done.

    Parameters
    ----------
    labels : xarray.DataArray
        Lazy 4D ``(t, z, y, x)`` plane labels with regular chunks.
    tables : sequence of dask.delayed
        One detections table per label block, in ``numpy.ndindex`` order.
    scratch : Scratch
        Where ``planes.zarr`` and the markers live.
    compute : callable
        Computes a tuple of delayed objects (the pipeline's sink).

    The detections stay in the markers (read back on the workers, by
    :func:`bigseg.pipeline.partitions.detections_of_blocks`), so a resumed run and an
    uninterrupted one give the same tables.  Blocks are computed in batches of at most
    :data:`BATCH_BLOCKS`.
    """
    data = labels.data
    planes = scratch.path / PLANES
    if not planes.exists():
        write_labels(labels, planes, compute=False)  # creates the empty array only
    (scratch.path / BLOCKS).mkdir(exist_ok=True)
    _write_blocks(data, tables, planes, scratch, block_marker, _finish_block, compute)


def _write_blocks(
    data: Any,
    payloads: Sequence[Any],
    planes: Path,
    scratch: Scratch,
    marker_of: Callable[[Scratch, Sequence[int]], Path],
    finish: Callable[..., int],
    compute: Callable[[tuple], Any],
) -> None:
    """Store every label block not yet done with its payload (table or record) as marker.

    Blocks whose marker exists are skipped; the rest are computed in batches of
    :data:`BATCH_BLOCKS`, so the scheduler holds one batch at a time.
    """
    starts = [np.cumsum((0,) + c[:-1]) for c in data.chunks]
    indices = list(np.ndindex(*data.numblocks))
    task = dask.delayed(finish, pure=False)
    todo = []
    for index, block, payload in zip(indices, data.to_delayed().ravel(), payloads):
        marker = marker_of(scratch, index)
        if marker.exists():
            continue
        region = tuple(
            slice(int(starts[a][i]), int(starts[a][i]) + data.chunks[a][i])
            for a, i in enumerate(index)
        )
        todo.append(task(block, payload, str(planes / "0"), region, str(marker)))
    scratch.blocks_total = len(indices)
    scratch.blocks_reused = len(indices) - len(todo)
    for start in range(0, len(todo), BATCH_BLOCKS):
        compute(tuple(todo[start : start + BATCH_BLOCKS]))


def _finish_block(
    block: np.ndarray, table: pd.DataFrame, array_path: str, region: tuple, marker: str
) -> int:
    """Store one label block, then write its table atomically (the completion marker)."""
    if _store_then_mark(
        block, array_path, region, marker, lambda tmp: table.to_parquet(tmp, index=False)
    ):
        return len(table)
    return 0


def regular(chunks: Sequence[Sequence[int]]) -> bool:
    """Whether every chunk but the last along each axis has one size (Zarr's chunk grid)."""
    return all(len(set(c[:-1])) <= 1 and c[-1] <= c[0] for c in chunks)


def side_marker(scratch: Scratch, index: Sequence[int]) -> Path:
    """Completion marker (the stitching record) of one block of split planes."""
    return scratch.path / BLOCKS / ("_".join(str(int(i)) for i in index) + ".side.pkl")


def stitched_blocks(
    core: Any,
    side: Any,
    scratch: Scratch,
    compute: Callable[[tuple], Any],
) -> np.ndarray:
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
    compute : callable
        Computes a tuple of delayed objects (the pipeline's sink).

    Returns
    -------
    numpy.ndarray of object
        Every block's record, shaped like the block grid, read back from the markers
        (``blocks/<t>_<z>_<y>_<x>.side.pkl``), so a resumed run and an uninterrupted
        one stitch the same records.
    """
    data = core.data
    planes = scratch.path / PLANES
    if not planes.exists():
        write_labels(core, planes, compute=False)  # creates the empty array only
    (scratch.path / BLOCKS).mkdir(exist_ok=True)
    _write_blocks(
        data, side.to_delayed().ravel(), planes, scratch, side_marker, _finish_side, compute
    )
    records = np.empty(data.numblocks, object)
    for index in np.ndindex(*data.numblocks):
        with open(side_marker(scratch, index), "rb") as handle:
            records[index] = pickle.load(handle)
    return records


def _finish_side(
    block: np.ndarray, record: np.ndarray, array_path: str, region: tuple, marker: str
) -> int:
    """Store one block of labels, then pickle its record atomically (the completion marker)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            pickle.dump(record[0, 0, 0, 0], handle, protocol=pickle.HIGHEST_PROTOCOL)

    return int(_store_then_mark(block, array_path, region, marker, write))


def _store_then_mark(
    block: np.ndarray, array_path: str, region: tuple, marker: str, write: Callable[[str], Any]
) -> bool:
    """Store ``block`` into the scratch labels, then write its completion marker atomically.

    ``write(tmp)`` writes the marker under a temporary name, which is then moved into
    place. Returns False (and stores nothing) when the run was abandoned meanwhile.
    """
    import zarr

    if not os.path.isdir(os.path.dirname(marker)):
        return False  # the run was abandoned and its scratch directory removed
    array = zarr.open_array(array_path, mode="r+")
    array[region] = block
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
    for name in (STATE, PLANES, BLOCKS, LINKED, INCOMPLETE, LOCK):
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
