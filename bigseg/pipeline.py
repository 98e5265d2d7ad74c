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
import glob
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

from . import _outputs, _resume, _safety, _stitch
from ._errors import InputError
from .cluster import drop_small, link, nuclei_table
from .io import objstore as _objstore
from .io import open_stack, write_labels
from .io import regular_chunks as _regular_chunks
from .measure import measure_delayed
from .params import Params
from .segment import global_threshold, segment
from .stack import as_4d, scale_of
from .tables import empty_detections

__all__ = ["Result", "run"]


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
    stitch: bool | None = None,
    t: slice | int | None = None,
    resume: bool = False,
    command: Sequence[str] | None = None,
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
    source_shape = list(stack.shape)
    if t is not None:
        stack = select_t(stack, t)
    out = _objstore.location(output)
    remote = isinstance(out, _objstore.Remote)
    if remote and resume:
        raise InputError(
            "--resume needs a local output directory; an object-store output is written "
            "from the start (drop --resume)."
        )
    check_output(out, source_name, overwrite, resume=resume)
    sc = scale_of(stack)
    px = params.in_pixels(sc, scale_source=stack.attrs.get("scale_source", "array"))
    timings["open"] = time.perf_counter() - started

    split = _stitch.plan(as_4d(stack).data, px, stitch, params.preset)
    if split is not None and resume:
        raise InputError(
            "--resume does not support planes split into y/x chunks yet; use whole-plane "
            "chunks (--chunks Z,-1,-1) or drop --resume."
        )
    if remote:
        scratch_ctx: Any = _objstore.scratch(out, overwrite)
    else:
        fingerprint = _resume.fingerprint(stack, source_name, params.to_dict())
        scratch_ctx = _resume.open_scratch(out, fingerprint, resume=resume)
    with _safety.output_errors(out, source_name), scratch_ctx as scratch:
        work = scratch.path
        t0 = time.perf_counter()
        thresholds = scratch.thresholds()
        if thresholds is None:
            thresholds = _threshold_pass(stack, source_name, params, client, progress)
            scratch.save_thresholds(thresholds)
        timings["threshold"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        planes_path = work / _resume.PLANES
        if split is not None:  # planes split into y/x chunks: halo, stitch, exact sums
            detections, stitched = _stitch.run_pass(
                stack, split, thresholds, px, planes_path,
                lambda items, label: _compute(items, client, progress, label), params,
            )  # fmt: skip
        else:
            plane_labels = as_4d(segment(stack, params=params, threshold=thresholds, stitch=False))
            plane_labels = plane_labels.copy(data=_regular_chunks(plane_labels.data))
            tables = measure_delayed(plane_labels, stack)
            if remote:  # no completion markers on object stores: one pass
                store = write_labels(plane_labels, planes_path, compute=False)
                _, *tables = _compute((store, *tables), client, progress, "segment")
            else:  # one completion marker per block, so that --resume can skip it
                tables = _resume.segment_blocks(
                    plane_labels,
                    tables,
                    scratch,
                    lambda items: _compute(items, client, progress, "segment"),
                )
            detections = pd.concat([empty_detections(), *tables], ignore_index=True)
        timings["segment"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        linked = link(
            detections,
            link_distance=params.link_distance,
            max_gap=params.max_gap,
            neck_ratio=params.neck_ratio if params.preset == "default" else None,
        )
        planar = stack.sizes["z"] == 1  # 2D: no result may depend on the z size
        if params.preset == "default":
            linked = drop_small(linked, scale=sc, min_radius=params.min_radius, planar=planar)
        nuclei = nuclei_table(linked, scale=sc, planar=planar)
        timings["link"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        planes = as_4d(open_stack(planes_path, scale=sc)).data
        if split is not None:
            labels = _stitch.relabel_nuclei(planes.rechunk(split.chunks), linked, stitched)
        else:
            labels = relabel(planes, linked)
        if "t" not in stack.dims:
            labels = labels[0]
        labels_da = xr.DataArray(labels, dims=stack.dims, attrs=dict(stack.attrs))
        _compute(
            write_labels(
                labels_da, work / "labels.zarr", source=source_name, nuclei=nuclei, compute=False
            ),
            client,
            progress,
            "labels",
        )
        if remote:
            _objstore.rmtree(planes_path)
        timings["labels"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        # Tables keep the original time indices (when t selects a range), as integers.
        t_values = as_4d(stack)["t"].to_numpy().astype(np.int64)
        linked, nuclei = (_integer_columns(table, t_values) for table in (linked, nuclei))
        nuclei.to_parquet(work / "nuclei.parquet", index=False)
        nuclei.to_csv(work / "nuclei.csv", index=False, float_format=CSV_FLOAT_FORMAT)
        linked.to_parquet(work / "detections.parquet", index=False)
        timings["tables"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - started
        record = _record(stack, source_name, params, px, thresholds, nuclei, linked, timings)
        record["input"]["source_shape"] = source_shape
        record["command"] = None if command is None else [str(a) for a in command]
        record["cluster"] = _cluster_settings(client)
        if split is not None:
            record["stitching"] = stitched.record(_stitch.halo_px(px, params.preset))
            _stitch.warn_unproven(stitched, _stitch.halo_px(px, params.preset))
        record["blocks"] = {"total": scratch.blocks_total, "reused": scratch.blocks_reused}
        _throughput(record, scratch.blocks_total, scratch.blocks_reused, timings["total"])
        (work / "run.json").write_text(json.dumps(record, indent=2, default=_json_default))
        if not remote:  # on object stores run.json, written last, marks completion
            _resume.finalise(scratch, out, overwrite)
    return Result(
        nuclei=nuclei, detections=linked, thresholds=thresholds, output=out, record=record
    )


def select_t(stack: xr.DataArray, t: slice | int) -> xr.DataArray:
    """Keep the time points ``t`` (a slice or one index) of a ``(t, z, y, x)`` stack."""
    if "t" not in stack.dims:
        raise InputError("The stack has no time axis; drop the time selection (--t).")
    n_t = stack.sizes["t"]
    index = slice(t, t + 1) if isinstance(t, int) else t
    kept = range(n_t)[index]
    if len(kept) == 0:
        raise InputError(
            f"The time selection {index.start}:{index.stop} keeps no time point; the stack "
            f"has time points 0 to {n_t - 1}."
        )
    return stack.isel(t=index)


def _threshold_pass(
    stack: xr.DataArray, source: str, params: Params, client: Any, progress: Any
) -> np.ndarray:
    """Compute the thresholds and, for float data, count NaN/inf voxels in the same pass."""
    threshold = global_threshold(stack, params=params).data
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

    Each block gets only the lookup table for its own planes, sized by its own
    largest label: the tables add up to O(detections), not O(planes x labels).
    """
    edges = [np.cumsum((0,) + c) for c in planes.chunks[:2]]
    t = linked["t"].to_numpy(np.int64)
    z = linked["z"].to_numpy(np.int64)
    bt = np.searchsorted(edges[0], t, side="right") - 1
    bz = np.searchsorted(edges[1], z, side="right") - 1
    rows = pd.DataFrame({"bt": bt, "bz": bz}).groupby(["bt", "bz"]).indices
    label = linked["label"].to_numpy(np.int64)
    nucleus = linked["nucleus"].to_numpy(np.uint32)
    luts = np.empty(planes.numblocks, object)
    for i, j in np.ndindex(*planes.numblocks[:2]):
        r = rows.get((i, j), np.empty(0, np.int64))
        lut = np.zeros(
            (planes.chunks[0][i], planes.chunks[1][j], int(label[r].max(initial=0)) + 1),
            np.uint32,
        )
        lut[t[r] - edges[0][i], z[r] - edges[1][j], label[r]] = nucleus[r]
        for k, m in np.ndindex(*planes.numblocks[2:]):
            luts[i, j, k, m] = lut
    return _stitch.apply_luts(planes, _stitch.luts_array(luts, planes.numblocks), np.uint32)


# --------------------------------------------------------------------------- helpers


def _compute(collection: Any, client: Any, progress: Any, label: str) -> Any:
    """Compute one pass, on the client when there is one, with optional progress."""
    items = collection if isinstance(collection, tuple) else (collection,)
    if progress and not callable(progress):
        print(f"{label} pass:", file=sys.stdout, flush=True)
    if client is not None:
        # Unoptimised: array-graph fusion would rename the segment tasks that the
        # delayed measure tasks share, and every plane would be segmented twice.
        futures = client.compute(list(items), optimize_graph=False)
        if progress:
            show = progress if callable(progress) else _distributed_progress
            show(futures)
        return tuple(client.gather(futures))
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return dask.compute(*items, optimize_graph=False)
    return dask.compute(*items, optimize_graph=False)


def _distributed_progress(futures: Any) -> None:
    from distributed import progress

    progress(futures, notebook=False)
    print(file=sys.stdout, flush=True)


def check_output(
    out: Path | str | _objstore.Remote, source: str, overwrite: bool, *, resume: bool = False
) -> None:
    """Refuse an output that is the input, inside it, contains it, or may not be replaced.

    An existing output is replaced only with ``overwrite`` and only when it is
    an earlier bigseg output holding nothing else; an empty directory is
    accepted as it is; missing parents are created when the run starts.
    Also refuses to start over the partial results of an interrupted run
    unless ``resume``.
    """
    if isinstance(out, _objstore.Remote) or _objstore.is_url(out):
        _objstore.check_output(_objstore.location(out), overwrite)  # type: ignore[arg-type]
        return
    out = Path(out)
    src = Path(source).resolve() if os.path.exists(source) else None
    target = out.resolve()
    if src is None and glob.has_magic(source):  # a pattern: OUT must not be or hold its files
        files = (Path(f).resolve() for f in glob.glob(source))
        src = next((f for f in files if target == f or target in f.parents), None)
    if src is not None and (target == src or src in target.parents):
        raise InputError(
            f"Output {str(out)!r} is the input or inside it; choose an output outside {source!r}."
        )
    if src is not None and target in src.parents:
        raise InputError(
            f"Output {str(out)!r} contains the input {source!r}; replacing it would delete the "
            "input. Choose another output directory."
        )
    _outputs.check_replaceable(out, overwrite)
    parent = _existing_ancestor(target.parent)
    if not parent.is_dir():
        raise InputError(
            f"Cannot create output {str(out)!r}: {str(parent)!r} is a file, not a directory."
        )
    if not os.access(parent, os.W_OK):
        raise InputError(f"Cannot write to {str(parent)!r}; choose a writable output location.")
    _resume.check_partial(out, resume)


def _existing_ancestor(path: Path) -> Path:
    """Return the nearest of ``path`` and its parents that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


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
    t_selected = [int(v) for v in stack["t"].values] if "t" in stack.dims else None
    return {
        "input": {
            "source": _absolute(source),
            "source_as_given": source,
            "channel": stack.attrs.get("channel"),
            "format": stack.attrs.get("format"),
            "dims": list(stack.dims),
            "shape": list(stack.shape),
            "dtype": str(stack.dtype),
            "chunks": [list(c) for c in stack.data.chunks],
            "t_selected": t_selected,
            "t_selection": None if t_selected is None else _as_range(t_selected),
            "scale_um": stack.attrs.get("scale"),
            "scale_source": stack.attrs.get("scale_source", "array"),
            "translation_um": stack.attrs.get("translation"),
            # a folder or glob pattern of files: how many there were, and the axis they made
            **{k: stack.attrs[k] for k in ("files", "files_axis") if k in stack.attrs},
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


#: ``float_format`` of ``nuclei.csv``: 7 significant digits, the precision of float32
#: intensities, and 1 nm for positions up to 10 mm; the Parquet tables keep full float64.
CSV_FLOAT_FORMAT = "%.7g"

#: Columns stored as int64 (plane ``label`` keeps its own integer dtype).
_INTEGER_COLUMNS = ("t", "z_first", "z_last", "nucleus", "track_id", "n_planes")


def _integer_columns(table: pd.DataFrame, t_values: np.ndarray) -> pd.DataFrame:
    """Store ``t`` as the original time index and the index/id columns as int64."""
    table = table.copy()
    for name in _INTEGER_COLUMNS:
        if name not in table:
            continue
        values = table[name].to_numpy()
        if name == "t":
            values = t_values[values.astype(np.int64)]
        table[name] = values.astype(np.int64)
    return table


def _absolute(source: str) -> str:
    """Return the input as an absolute path (URLs and in-memory arrays as they are)."""
    if _objstore.is_url(source) or source.startswith("<"):
        return source
    return os.path.abspath(source)


def _as_range(values: list[int]) -> dict:
    """``{start, stop, step}`` of evenly spaced time indices (a slice of the input)."""
    step = values[1] - values[0] if len(values) > 1 else 1
    return {"start": values[0], "stop": values[-1] + step, "step": step}


def _cluster_settings(client: Any) -> dict:
    """Scheduler address, workers, threads and memory limits of ``client``."""
    if client is None:
        return {"scheduler": str(dask.config.get("scheduler", None) or "dask default")}
    try:
        info = client.scheduler_info()
    except Exception:  # noqa: BLE001 - a record must not fail a finished run
        return {"scheduler": str(getattr(client, "scheduler", None))}
    workers = list(info.get("workers", {}).values())
    return {
        "scheduler": info.get("address"),
        "workers": len(workers),
        "threads": sum(int(w.get("nthreads", 0)) for w in workers),
        "memory_limit_bytes": sorted({int(w.get("memory_limit") or 0) for w in workers}),
    }


def _throughput(record: dict, total: int, reused: int, seconds: float) -> None:
    """Throughput of the voxels computed in this run (a resumed run reuses some blocks)."""
    voxels = int(np.prod(record["input"]["shape"]))
    computed = voxels if total == 0 else round(voxels * (total - reused) / total)
    record["voxels"] = {"total": voxels, "computed": computed, "reused": voxels - computed}
    record["throughput_mvoxel_per_s"] = round(computed / seconds / 1e6, 4)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
