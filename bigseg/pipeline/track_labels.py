"""``track_labels.zarr``: the label volume by track id, beside ``labels.zarr`` (by nucleus id).

On request (``run(..., track_labels=True)``, ``bigseg segment --track-labels``,
``bigseg track OUT --track-labels``) a tracked output gains a second NGFF label image,
``track_labels.zarr``, with the same shape, chunks, physical metadata and pyramid as
``labels.zarr``, whose every voxel holds the ``track_id`` of its nucleus: a nucleus keeps
its label (and its colour in a viewer) from one time point to the next, and each
daughter of a division gets one of its own.  ``labels.zarr`` keeps the nucleus ids.

It is made from ``labels.zarr`` and the tracked nuclei table on the workers: each block
of ``labels.zarr`` is mapped through a lookup table (nucleus id -> track id) built by its
task from the part files of ``nuclei.parquet`` that hold its time points
(:func:`bigseg.kernels.lut.map_ids`); the blocks are written in batches of time points,
each batch's graph built when it is submitted, then the coarser levels are built from
the stored level before.  The client holds the series' time points only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from .._errors import InputError
from ..io import open_stack
from ..io.ngff import create_labels_like, writable
from ..kernels.lut import map_ids
from . import scratch as _scratch
from .partitions import _join, part_name
from .passes import pyramid_pass, store_by_t, time_points
from .sink import Sink

__all__ = ["TRACK_LABELS", "write_track_labels"]

#: The track-id label image of an output, beside ``labels.zarr``.
TRACK_LABELS = "track_labels.zarr"


def write_track_labels(
    labels_path: Any,
    nuclei_dir: Any,
    part_times: Sequence[Sequence[int]],
    target: Any,
    sink: Sink,
    per: int = 1,
) -> None:
    """Write ``labels.zarr`` relabelled by track id as a new NGFF label image.

    Parameters
    ----------
    labels_path : path
        ``labels.zarr`` of a run (nucleus ids; its first axis is time).
    nuclei_dir : path
        The tracked nuclei dataset (``nucleus``, ``t``, ``track_id``; one part file per
        t-chunk).
    part_times : sequence of sequences of int
        The time points of each part, in order: together, the time points of
        ``labels.zarr``'s first axis.
    target : path
        Where to write (replaced when it is a Zarr store, such as an earlier attempt's).
    sink : Sink
        Where the passes compute.
    per : int
        Part files of the nuclei dataset per part of ``part_times`` (its z-chunks, when
        detections are partitioned by z-chunk).
    """
    import zarr

    labels_path, nuclei_dir, target = (os.fspath(p) for p in (labels_path, nuclei_dir, target))
    nucleus_labels = open_stack(labels_path)
    if "t" not in nucleus_labels.dims:
        raise InputError(f"{labels_path!r} has one time point: there are no tracks to label it by.")
    times = np.asarray([t for p in part_times for t in p], np.int64)
    part_of = np.repeat(np.arange(len(part_times)), [len(p) for p in part_times])
    if times.size != nucleus_labels.sizes["t"]:
        raise InputError(
            f"{labels_path!r} has {nucleus_labels.sizes['t']} time points and the nuclei "
            f"table {times.size}; they are not of one run: segment again."
        )
    level0 = zarr.open_array(_join(labels_path, "0"), mode="r")
    data = da.from_zarr(level0)  # the stored chunks
    template = xr.DataArray(data, dims=nucleus_labels.dims, attrs=dict(nucleus_labels.attrs))
    # The levels, chunks and metadata of labels.zarr (no graph of the series on the client).
    create_labels_like(labels_path, target, dtype=np.uint32, overwrite=True)
    array = writable(_join(target, "0"))
    batches = _scratch.t_batches(data.chunks, sink.batch_blocks(_scratch.BATCH_BLOCKS))

    def by_track(c0: int, c1: int, t0: int, t1: int) -> da.Array:
        return da.map_blocks(
            _track_block,
            time_points(template, t0, t1).data,  # a graph of the batch only
            rows_of=partial(_track_rows, nuclei_dir, times[t0:t1], part_of[t0:t1], per),
            dtype=np.uint32,
            meta=np.empty((0,) * data.ndim, np.uint32),
        )

    store_by_t(array, batches, by_track, sink, "track labels")
    pyramid_pass(target, sink)


def _track_rows(
    nuclei_dir: str, times: np.ndarray, part_of: np.ndarray, per: int, first: int, end: int
) -> pd.DataFrame:
    """``nucleus`` and ``track_id`` of the time points at positions ``first:end`` of a batch."""
    wanted = [int(v) for v in times[first:end]]
    frames = [
        pd.read_parquet(
            _join(nuclei_dir, part_name(int(k))),
            columns=["nucleus", "track_id"],
            filters=[("t", "in", wanted)],
        )
        for i in np.unique(part_of[first:end])
        for k in range(int(i) * per, (int(i) + 1) * per)
    ]
    return pd.concat(frames, ignore_index=True)


def _track_block(block: np.ndarray, *, rows_of: Any, block_info: dict | None = None) -> np.ndarray:
    """Map one block of nucleus ids to track ids (its rows read by the worker)."""
    (first, end) = block_info[0]["array-location"][0]  # type: ignore[index]
    rows = rows_of(int(first), int(end))
    return map_ids(
        block,
        rows["nucleus"].to_numpy(np.int64),
        rows["track_id"].to_numpy(np.int64),
        np.uint32,
    )
