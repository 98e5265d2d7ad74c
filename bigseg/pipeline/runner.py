"""``run()``: a stack end to end, as a short sequence of passes.

A run makes three passes over the data, each one dask computation:

1. **threshold**: one global statistic per time point (reads the stack once);
2. **segment + measure**: plane labels stream to a scratch Zarr store while
   their regions are measured, in the same tasks;
3. **relabel**: plane labels are mapped to nucleus ids and streamed to
   ``labels.zarr``, each block through a lookup table built on its worker.

Between them, two passes over the detections (a dask DataFrame, one partition
per t-chunk, :mod:`bigseg.pipeline.partitions`) run on the workers: **link**
(each partition across z, stored with local ids; only counts come back) and
**tables** (global ids from the counts, ``nuclei.parquet`` and
``detections.parquet`` written as partitioned datasets).

Outputs are written into a hidden scratch directory beside the output and
moved into place only when everything has been written, so a failed or
interrupted run never leaves an output that looks complete.  The passes are
in :mod:`bigseg.pipeline.passes`, the scratch directory in
:mod:`bigseg.pipeline.scratch` and ``run.json`` in :mod:`bigseg.pipeline.record`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._errors import InputError
from ..chunked.plan import memory_budget
from ..io import objstore
from ..params import Params
from ..reads import is_read
from ..segment import plan_blocks, work_blocks
from ..stack import as_4d, scale_of
from ..track import TrackParams
from . import zparts
from .layout import BLOCKS, LINKED, scratch_path
from .partitions import SMALL_DETECTIONS, Parts, lazy_parts, read_parts
from .passes import (
    keeps_signal,
    kept_blocks,
    link_pass,
    part_times_of,
    relabel_pass,
    segment_pass,
    small_nuclei,
    threshold_pass,
    track_pass,
    write_tables,
)
from .preflight import check_output, check_resume, open_input
from .record import cluster_settings, run_record, stitching_record, throughput, write_record
from .safety import output_errors
from .scratch import (
    PLANES,
    earlier_keep,
    finalise,
    fingerprint,
    open_scratch,
    remote_scratch,
)
from .sink import Sink
from .track_labels import TRACK_LABELS, write_track_labels

__all__ = ["Result", "run"]


@dataclass
class Result:
    """What one run produced.

    Attributes
    ----------
    nuclei : pandas.DataFrame or dask.dataframe.DataFrame
        One row per 3D nucleus: a pandas DataFrame up to
        :data:`bigseg.pipeline.partitions.SMALL_NUCLEI` nuclei, else read lazily from
        ``nuclei.parquet`` (a dask DataFrame, one partition per t-chunk).
    detections : pandas.DataFrame or dask.dataframe.DataFrame
        One row per region per plane, with its ``nucleus`` id: pandas up to
        :data:`bigseg.pipeline.partitions.SMALL_DETECTIONS` rows, else read lazily
        from ``detections.parquet``.
    thresholds : numpy.ndarray
        The foreground threshold of each time point.
    output : Path or None
        The output directory.
    record : dict
        What ``run.json`` holds.
    tracks : pandas.DataFrame or dask.dataframe.DataFrame or None
        One row per track (``tracks.parquet``) when the run tracked nuclei across
        time; read lazily when the nuclei are.
    """

    nuclei: Any
    detections: Any
    thresholds: np.ndarray
    output: Path | None
    record: dict = field(default_factory=dict)
    tracks: Any = None

    @property
    def labels_path(self) -> Path | None:
        """Path of ``labels.zarr``, when written."""
        return None if self.output is None else self.output / "labels.zarr"

    @property
    def track_labels_path(self) -> Path | None:
        """Path of ``track_labels.zarr`` (the labels by track id), when written."""
        if self.output is None or not (self.record.get("tracking") or {}).get("track_labels"):
            return None
        return self.output / TRACK_LABELS


def run(
    source: str | os.PathLike | xr.DataArray,
    output: str | os.PathLike,
    *,
    scale: Sequence[float] | None = None,
    chunks: Sequence[int] | None = None,
    channel: int | None = None,
    params: Params | None = None,
    overwrite: bool = False,
    progress: bool | Callable[[Any], Any] = False,
    client: Any = None,
    stitch: bool | None = None,
    t: slice | int | None = None,
    resume: bool = False,
    command: Sequence[str] | None = None,
    track: bool | TrackParams | None = None,
    frame_interval: float | None = None,
    track_labels: bool = False,
) -> Result:
    """Segment a stack end to end and write the tables and the label volume.

    Parameters
    ----------
    source : path or xarray.DataArray
        An input path (see :func:`bigseg.open_stack`) or an opened stack.
    output : path
        Output directory; it must not exist unless ``overwrite``.
    scale, chunks, channel
        Passed to :func:`bigseg.open_stack` when ``source`` is a path.
    params : Params, optional
        Segmentation parameters (default preset when omitted).
    overwrite : bool
        Replace an existing output, only one that bigseg wrote and that holds nothing
        else, and only once the new one is complete. An empty directory is accepted
        without it.
    progress : bool or callable
        Show progress bars; a callable is called with the futures of each pass
        (e.g. ``distributed.progress``).
    client : distributed.Client, optional
        Compute on this client; by default the current dask scheduler.
    stitch : bool, optional
        How planes split into y/x chunks are handled (see :func:`bigseg.segment`);
        stitched runs stream block labels and record ``stitching`` in ``run.json``.
    t : slice or int, optional
        Segment only these time points of a ``(t, z, y, x)`` stack (e.g.
        ``slice(0, 10)``); tables keep the original time indices.
    resume : bool
        Keep the partial results (``.OUT.partial/`` beside the output) if this
        run fails or is interrupted, and reuse those of an earlier interrupted
        run: finished blocks are not computed again, and the result is the
        same as an uninterrupted run's.
        Local outputs only.
    command : sequence of str, optional
        The command line that started this run (the CLI passes ``sys.argv``),
        recorded in ``run.json``.
    track : bool or TrackParams, optional
        Link the nuclei across time into tracks (:mod:`bigseg.track`): by default
        (None) with :class:`bigseg.track.TrackParams` whenever the run has more than
        one time point; False turns it off, a ``TrackParams`` sets its parameters.
    frame_interval : float, optional
        Seconds between time points, for speeds in µm/min; by default from the
        input's metadata (ImageJ ``finterval``, OME ``TimeIncrement``, OME-Zarr ``t``
        scale), when it has one.
    track_labels : bool
        Also write ``track_labels.zarr``: the label volume by track id (an NGFF label
        image with the pyramid, beside ``labels.zarr``, which keeps the nucleus ids;
        :mod:`bigseg.pipeline.track_labels`).  Needs tracking.

    Returns
    -------
    Result
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    params = params or Params()
    stack, source_name, source_shape = open_input(
        source, scale=scale, chunks=chunks, channel=channel, t=t
    )
    out = objstore.location(output)
    remote = isinstance(out, objstore.Remote)
    check_output(out, source_name, overwrite, resume=resume)
    tracking = _tracking(track, as_4d(stack).sizes["t"])
    if track_labels and tracking is None:
        raise InputError(
            "track_labels=True needs tracks: a series of more than one time point, with "
            "tracking on."
        )
    interval = _frame_interval(frame_interval, stack)
    sc = scale_of(stack)
    px = params.in_pixels(sc, scale_source=stack.attrs.get("scale_source", "array"))
    timings["open"] = time.perf_counter() - started

    # Work blocks are bigseg's choice: storage chunks split to fit the workers' memory
    # per thread, or, read from a file as they are stored, tiny ones merged.
    # A run that keeps the method's signal (computed once, in blocks of its own) plans its
    # work blocks without the signal's reach and passes: decided here, before the
    # fingerprint, and as the interrupted run decided when resuming one.
    budget = memory_budget(client)
    storage_chunks = [list(c) for c in stack.data.chunks]
    merge = is_read(stack.data) and stack.attrs.get("chunks_source") == "storage"
    planned = work_blocks(stack, params, budget=budget, stitch=stitch, merge=merge, kept=True)
    keep = not remote and keeps_signal(
        planned, params, scratch_path(out), budget=budget, threads=_threads(client),
        earlier=earlier_keep(out) if resume else None,
    )  # fmt: skip
    if not keep:
        planned = work_blocks(stack, params, budget=budget, stitch=stitch, merge=merge)
    stack = planned
    split = plan_blocks(as_4d(stack).data, px, stitch, params.preset)
    check_resume(resume, remote=remote, split=split)
    if remote:
        scratch_ctx: Any = remote_scratch(out, overwrite)
    else:
        fp = fingerprint(stack, source_name, params.to_dict())
        fp["keep_signal"] = keep
        scratch_ctx = open_scratch(out, fp, resume=resume)

    sink = Sink(client, progress)
    with output_errors(out, source_name), scratch_ctx as scratch:
        work = scratch.path
        t0 = time.perf_counter()
        thresholds = scratch.thresholds()
        if thresholds is None:
            kept = scratch if keep else None  # the method's signal, kept there
            thresholds = threshold_pass(stack, source_name, params, sink, kept, budget=budget)
            scratch.save_thresholds(thresholds)
        timings["threshold"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        detections, (t_chunks, z_chunks), stitched, read = segment_pass(
            stack, split, thresholds, px, params, scratch, remote, sink
        )
        timings["segment"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        # Detections by t-chunk, or by z-chunk of time points too large for one table.
        plane = stack.sizes["y"] * stack.sizes["x"]
        parts = Parts(
            t_chunks, None if read is None else zparts.z_chunks(t_chunks, z_chunks, plane)
        )
        reach = None
        if parts.by_z:
            counts, reach = zparts.link_pass(
                read, parts, params=params, scale=sc, planar=False, work=work,
                sink=sink,
            )  # fmt: skip
        else:
            counts = link_pass(detections, len(t_chunks), stack, params, work, sink)
        offsets = np.cumsum(counts) - counts  # global ids: partition-local ids + offset
        timings["link"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        n_nuclei, n_detections, nuclei = write_tables(
            stack, parts, offsets, work, sink, read_back=tracking is None
        )
        timings["tables"] = time.perf_counter() - t0

        tracked = None
        if tracking is not None:
            t0 = time.perf_counter()
            tracked = track_pass(
                stack, parts, work, sink, params=tracking, frame_interval_s=interval[0]
            )
            nuclei = small_nuclei(work, n_nuclei)  # nuclei.csv, once, with the track ids
            timings["tracks"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        relabel_pass(stack, parts, offsets, reach, nuclei, split, stitched, work, source_name, sink)
        if remote:
            for name in (PLANES, BLOCKS, LINKED):
                objstore.rmtree(work / name)
        timings["labels"] = time.perf_counter() - t0

        if track_labels:
            t0 = time.perf_counter()
            write_track_labels(
                work / "labels.zarr",
                work / "nuclei.parquet",
                part_times_of(stack, Parts(t_chunks)),
                work / TRACK_LABELS,
                sink,
                per=parts.per_t,
            )
            timings["track_labels"] = time.perf_counter() - t0

        timings["total"] = time.perf_counter() - started
        record = run_record(
            stack, source_name, params, px, thresholds, n_nuclei, n_detections, timings
        )
        record["input"]["source_shape"] = source_shape
        record["input"]["frame_interval_s"], record["input"]["frame_interval_source"] = interval
        record["command"] = None if command is None else [str(a) for a in command]
        record["cluster"] = cluster_settings(client)
        if stitched is not None:
            record["stitching"] = stitching_record(stitched, px, params)
        record["blocks"] = {"total": scratch.blocks_total, "reused": scratch.blocks_reused}
        record["work_blocks"] = {
            "budget_bytes": budget,
            "storage_chunks": storage_chunks,
            "chunks": [list(c) for c in stack.data.chunks],
            "parts_per_t": parts.per_t,  # detections by t-chunk (1), or by its z-chunks
            "kept_signal": keep,  # the method's signal computed once, in blocks of its own
            "signal_blocks": (
                [list(c) for c in kept_blocks(as_4d(stack), params, budget, _threads(client))]
                if keep
                else None
            ),
        }
        record["tracking"] = tracking_record(tracking, tracked, interval)
        if record["tracking"] is not None:
            record["tracking"]["track_labels"] = bool(track_labels)
        throughput(record, scratch.blocks_total, scratch.blocks_reused, timings["total"])
        write_record(record, work / "run.json")
        if not remote:  # on object stores run.json, written last, marks completion
            finalise(scratch, out, overwrite)
    return Result(
        nuclei=lazy_parts(out / "nuclei.parquet") if nuclei is None else nuclei,
        detections=(
            read_parts(out / "detections.parquet")
            if n_detections <= SMALL_DETECTIONS
            else lazy_parts(out / "detections.parquet")
        ),
        thresholds=thresholds,
        output=out,
        record=record,
        tracks=None if tracking is None else _tracks_of(out, nuclei is not None),
    )


def _threads(client: Any) -> int | None:
    """Return ``client``'s threads in all (None without one: the machine's cores).

    As :func:`bigseg.pipeline.passes.signal_blocks` counts them from the run's sink.
    """
    return None if client is None else int(sum(client.nthreads().values())) or None


def _tracking(track: bool | TrackParams | None, n_times: int) -> TrackParams | None:
    """Return the tracking parameters of a run, or None when it does not track."""
    if track is False or n_times < 2:
        return None
    return track if isinstance(track, TrackParams) else TrackParams()


def _frame_interval(option: float | None, stack: xr.DataArray) -> tuple[float | None, str | None]:
    """Seconds between time points and where that came from (None, None: unknown)."""
    if option is not None:
        if not np.isfinite(option) or option <= 0:
            raise InputError(
                f"frame_interval={option} must be a positive number of seconds between time points."
            )
        return float(option), "option"
    value = stack.attrs.get("frame_interval_s")
    if value:
        return float(value), f"metadata:{stack.attrs.get('frame_interval_source', 'input')}"
    return None, None


def tracking_record(
    params: TrackParams | None, counts: dict | None, interval: tuple[float | None, str | None]
) -> dict | None:
    """``run.json``'s ``tracking`` entry (None when the run did not track)."""
    if params is None:
        return None
    return {
        "parameters": params.to_dict(),
        "frame_interval_s": interval[0],
        "frame_interval_source": interval[1],
        "counts": counts,
    }


def _tracks_of(out: Any, small: bool) -> Any:
    from .tracking import read_tracks

    return read_tracks(out / "tracks.parquet") if small else lazy_parts(out / "tracks.parquet")
