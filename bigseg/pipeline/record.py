"""``run.json``: what a run read, with which parameters, and what it found, how fast."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import dask
import numpy as np
import xarray as xr

from ..chunked.stitch import warn_unproven
from ..io import objstore
from ..params import Params
from ..segment import halo_px
from ..stack import as_4d


def run_record(
    stack: xr.DataArray,
    source: str,
    params: Params,
    px: Any,
    thresholds: np.ndarray,
    n_nuclei: int,
    n_detections: int,
    timings: dict,
) -> dict:
    """Return the record of one run (``run.json``), less what only the runner knows."""
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
            "nuclei": int(n_nuclei),
            "detections": int(n_detections),
            "time_points": int(as_4d(stack).sizes["t"]),
        },
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "throughput_mvoxel_per_s": round(voxels / timings["total"] / 1e6, 4),
        "versions": {**versions, "python": platform.python_version()},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _absolute(source: str) -> str:
    """Return the input as an absolute path (URLs and in-memory arrays as they are)."""
    if objstore.is_url(source) or source.startswith("<"):
        return source
    return os.path.abspath(source)


def _as_range(values: list[int]) -> dict:
    """``{start, stop, step}`` of evenly spaced time indices (a slice of the input)."""
    step = values[1] - values[0] if len(values) > 1 else 1
    return {"start": values[0], "stop": values[-1] + step, "step": step}


def cluster_settings(client: Any) -> dict:
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


def throughput(record: dict, total: int, reused: int, seconds: float) -> None:
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


def stitching_record(stitched: Any, px: Any, params: Params) -> dict:
    """Return ``run.json``'s ``stitching`` entry (planes split in y/x); warn if unproven."""
    record = stitched.record(halo_px(px, params.preset))
    warn_unproven(stitched, halo_px(px, params.preset))
    return record


def write_record(record: dict, path: Path | Any) -> None:
    """Write ``run.json`` (last: on object stores it marks the output complete)."""
    path.write_text(json.dumps(record, indent=2, default=_json_default))
