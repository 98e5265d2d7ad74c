"""Chain the stages lazily and compute once, at the sinks.

A run makes three passes over the data, each one dask computation:

1. **threshold**: one global statistic per time point (reads the stack once);
2. **segment + measure**: plane labels stream to a scratch Zarr store while
   their regions are measured, in the same tasks;
3. **relabel**: after linking (in memory, on the small detections table),
   plane labels are mapped to nucleus ids and streamed to ``labels.zarr``.

Outputs are written into a hidden scratch directory beside the output and
moved into place only when everything has been written, so a failed or
interrupted run never leaves an output that looks complete.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from . import _resume, _safety
from ._errors import InputError
from .cluster import link, nuclei_table
from .io import _regular_chunks, open_stack, scale_of, write_labels
from .measure import empty_detections, measure_delayed
from .params import Params
from .segment import as_4d, global_threshold, segment

__all__ = ["Result", "run"]

OUTPUT_FILES = ("nuclei.parquet", "nuclei.csv", "detections.parquet", "labels.zarr", "run.json")


@dataclass
class Result:
    """What one run produced.

    Attributes
    ----------
    nuclei : pandas.DataFrame
        One row per 3D nucleus.
    detections : pandas.DataFrame
        One row per region per plane, with its ``nucleus`` id.
    thresholds : numpy.ndarray
        The foreground threshold of each time point.
    output : Path or None
        The output directory.
    record : dict
        What ``run.json`` holds.
    """

    nuclei: pd.DataFrame
    detections: pd.DataFrame
    thresholds: np.ndarray
    output: Path | None
    record: dict = field(default_factory=dict)

    @property
    def labels_path(self) -> Path | None:
        """Path of ``labels.zarr``, when written."""
        return None if self.output is None else self.output / "labels.zarr"


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
    resume: bool = False,
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
        Replace an existing output directory (only once the new one is complete).
    progress : bool or callable
        Show progress bars; a callable is called with the futures of each pass
        (e.g. ``distributed.progress``).
    client : distributed.Client, optional
        Compute on this client; by default the current dask scheduler.
    resume : bool
        Keep the partial results (``.OUT.partial/`` beside the output) if this
        run fails or is interrupted, and reuse those of an earlier interrupted
        run: finished blocks are not computed again, and the result is the
        same as an uninterrupted run's.

    Returns
    -------
    Result
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    params = params or Params()
    if isinstance(source, xr.DataArray):
        stack = source
        source_name = str(stack.attrs.get("source", "<array>"))
    else:
        source_name = os.fspath(source)
        stack = open_stack(source, scale=scale, chunks=chunks, channel=channel)
    out = Path(output)
    check_output(out, source_name, overwrite, resume=resume)
    sc = scale_of(stack)
    px = params.in_pixels(sc)
    timings["open"] = time.perf_counter() - started

    fingerprint = _resume.fingerprint(stack, source_name, params.to_dict())
    with (
        _safety.output_errors(out, source_name),
        _resume.open_scratch(out, fingerprint, resume=resume) as scratch,
    ):
        work = scratch.path
        t0 = time.perf_counter()
        thresholds = scratch.thresholds()
        if thresholds is None:
            thresholds = _threshold_pass(stack, source_name, client, progress)
            scratch.save_thresholds(thresholds)
        timings["threshold"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        plane_labels = as_4d(segment(stack, params=params, threshold=thresholds))
        plane_labels = plane_labels.copy(data=_regular_chunks(plane_labels.data))
        tables = _resume.segment_blocks(
            plane_labels,
            measure_delayed(plane_labels, stack),
            scratch,
            lambda items: _compute(items, client, progress, "segment"),
        )
        detections = pd.concat([empty_detections(), *tables], ignore_index=True)
        timings["segment"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        linked = link(detections, link_distance=params.link_distance, max_gap=params.max_gap)
        nuclei = nuclei_table(linked, scale=sc)
        timings["link"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        planes = as_4d(open_stack(work / _resume.PLANES, scale=sc)).data
        labels = relabel(planes, linked)
        if "t" not in stack.dims:
            labels = labels[0]
        labels_da = xr.DataArray(labels, dims=stack.dims, attrs=dict(stack.attrs))
        _compute(
            write_labels(labels_da, work / "labels.zarr", source=source_name, compute=False),
            client,
            progress,
            "labels",
        )
        timings["labels"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        nuclei.to_parquet(work / "nuclei.parquet", index=False)
        nuclei.to_csv(work / "nuclei.csv", index=False)
        linked.to_parquet(work / "detections.parquet", index=False)
        timings["tables"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - started
        record = _record(stack, source_name, params, px, thresholds, nuclei, linked, timings)
        record["blocks"] = {"total": scratch.blocks_total, "reused": scratch.blocks_reused}
        (work / "run.json").write_text(json.dumps(record, indent=2, default=_json_default))
        _resume.finalise(scratch, out, overwrite)
    return Result(
        nuclei=nuclei, detections=linked, thresholds=thresholds, output=out, record=record
    )


def _threshold_pass(stack: xr.DataArray, source: str, client: Any, progress: Any) -> np.ndarray:
    """Compute the thresholds and, for float data, count NaN/inf voxels in the same pass."""
    threshold = global_threshold(stack).data
    bad = _safety.nonfinite_count(stack)
    try:
        values = _compute(
            (threshold,) if bad is None else (threshold, bad), client, progress, "threshold"
        )
    except Exception:
        if bad is not None:  # NaN/inf make the threshold fail: say so, in one sentence
            _safety.check_finite(_compute(bad, client, False, "finite")[0], source, stack.dtype)
        raise
    if bad is not None:
        _safety.check_finite(values[1], source, stack.dtype)
    return np.atleast_1d(values[0]).astype(np.float64)


def relabel(planes: da.Array, linked: pd.DataFrame) -> da.Array:
    """Map plane-local labels of a ``(t, z, y, x)`` array to nucleus ids (lazy).

    Each block gets only the slice of the lookup table for its own planes.
    """
    n_t, n_z = planes.shape[:2]
    max_label = int(linked["label"].max()) if len(linked) else 0
    lut = np.zeros((n_t, n_z, max_label + 1), np.uint32)
    if len(linked):
        lut[linked["t"].to_numpy(int), linked["z"].to_numpy(int), linked["label"].to_numpy(int)] = (
            linked["nucleus"].to_numpy(np.uint32)
        )
    lut_da = da.from_array(lut, chunks=(planes.chunks[0], planes.chunks[1], -1))
    return da.blockwise(
        _relabel_block,
        "tzyx",
        planes,
        "tzyx",
        lut_da,
        "tzl",
        dtype=np.uint32,
        concatenate=True,
        meta=np.empty((0, 0, 0, 0), np.uint32),
    )


def _relabel_block(block: np.ndarray, lut: np.ndarray) -> np.ndarray:
    out = np.empty(block.shape, np.uint32)
    for t in range(block.shape[0]):
        for z in range(block.shape[1]):
            out[t, z] = lut[t, z][block[t, z]]
    return out


# --------------------------------------------------------------------------- helpers


def _compute(collection: Any, client: Any, progress: Any, label: str) -> Any:
    """Compute one pass, on the client when there is one, with optional progress."""
    items = collection if isinstance(collection, tuple) else (collection,)
    if client is not None:
        futures = client.compute(list(items))
        if progress:
            show = progress if callable(progress) else _distributed_progress
            show(futures)
        return tuple(client.gather(futures))
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return dask.compute(*items)
    return dask.compute(*items)


def _distributed_progress(futures: Any) -> None:
    from distributed import progress

    progress(futures, notebook=False)
    print(file=sys.stdout, flush=True)


def check_output(out: Path, source: str, overwrite: bool, *, resume: bool = False) -> None:
    """Refuse an output that is the input, inside it, contains it, or exists.

    Also refuses to start over the partial results of an interrupted run
    unless ``resume``.
    """
    src = Path(source).resolve() if os.path.exists(source) else None
    target = out.resolve()
    if src is not None and (target == src or src in target.parents):
        raise InputError(
            f"Output {str(out)!r} is the input or inside it; choose an output outside {source!r}."
        )
    if src is not None and target in src.parents:
        raise InputError(
            f"Output {str(out)!r} contains the input {source!r}; replacing it would delete the "
            "input. Choose another output directory."
        )
    if out.exists() and not overwrite:
        raise InputError(
            f"Output {str(out)!r} already exists; choose another directory or pass --overwrite."
        )
    if out.exists() and not out.is_dir():
        raise InputError(f"Output {str(out)!r} exists and is not a directory.")
    parent = target.parent
    if not parent.exists():
        raise InputError(
            f"The parent of output {str(out)!r} does not exist; create {str(parent)!r} first."
        )
    if not os.access(parent, os.W_OK):
        raise InputError(f"Cannot write to {str(parent)!r}; choose a writable output location.")
    _resume.check_partial(out, resume)


def _record(
    stack: xr.DataArray,
    source: str,
    params: Params,
    px: Any,
    thresholds: np.ndarray,
    nuclei: pd.DataFrame,
    detections: pd.DataFrame,
    timings: dict,
) -> dict:
    import importlib.metadata as md

    versions = {}
    for name in (
        "bigseg",
        "numpy",
        "scipy",
        "scikit-image",
        "dask",
        "distributed",
        "xarray",
        "zarr",
        "tifffile",
        "pandas",
        "pyarrow",
    ):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:  # pragma: no cover
            versions[name] = None
    voxels = int(np.prod(stack.shape))
    return {
        "input": {
            "source": source,
            "format": stack.attrs.get("format"),
            "dims": list(stack.dims),
            "shape": list(stack.shape),
            "dtype": str(stack.dtype),
            "chunks": [list(c) for c in stack.data.chunks],
            "scale_um": stack.attrs.get("scale"),
            "translation_um": stack.attrs.get("translation"),
        },
        "parameters": {**params.to_dict(), "pixels": dataclasses.asdict(px)},
        "thresholds": [float(v) for v in thresholds],
        "counts": {
            "nuclei": int(len(nuclei)),
            "detections": int(len(detections)),
            "time_points": int(as_4d(stack).sizes["t"]),
        },
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "throughput_mvoxel_per_s": round(voxels / timings["total"] / 1e6, 4),
        "versions": {**versions, "python": platform.python_version()},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
