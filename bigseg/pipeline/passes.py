"""The passes of a run: threshold, segment + measure, link, relabel, write the tables.

Each pass takes the stack and what earlier passes produced; the three that
read the data (threshold, segment + measure, relabel) are one dask computation
each, run through ``sink`` (:func:`bigseg.pipeline.sink.compute` bound to the
run's client and progress display).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from ..chunked import stitch as _stitch
from ..chunked.relabel import relabel_planes, relabel_stitched
from ..cluster import link, nuclei_table
from ..io import open_stack, regular_chunks, write_labels
from ..measure import measure_delayed
from ..params import Params
from ..segment import global_threshold, segment, stitched_blocks
from ..stack import as_4d, scale_of, translation_of
from ..tables import detections_from_sums, empty_detections
from . import safety
from . import scratch as _scratch

#: ``sink(items, label)``: compute one pass (a delayed object or a tuple of them).
Sink = Callable[[Any, str], Any]


def threshold_pass(stack: xr.DataArray, source: str, params: Params, sink: Sink) -> np.ndarray:
    """Compute the thresholds and, for float data, count NaN/inf voxels in the same pass."""
    threshold = global_threshold(stack, params=params).data
    bad = safety.nonfinite_count(stack)
    try:
        values = sink((threshold,) if bad is None else (threshold, bad), "threshold")
    except Exception:
        if bad is not None:  # NaN/inf make the threshold fail: say so, in one sentence
            safety.check_finite(sink(bad, "finite")[0], source, stack.dtype)
        raise
    if bad is not None:
        safety.check_finite(values[1], source, stack.dtype)
    return np.atleast_1d(values[0]).astype(np.float64)


def segment_pass(
    stack: xr.DataArray,
    split: Any,
    thresholds: np.ndarray,
    px: Any,
    params: Params,
    scratch: Any,
    remote: bool,
    sink: Sink,
) -> tuple[pd.DataFrame, Any]:
    """Segment and measure every block; plane labels stream to the scratch ``planes.zarr``.

    Returns the detections table and, for planes split into y/x chunks, the
    stitching of their blocks (None otherwise).
    """
    planes_path = scratch.path / _scratch.PLANES
    if split is not None:  # planes split into y/x chunks: halo, stitch, exact sums
        return stitched_pass(stack, split, thresholds, px, planes_path, sink, params)
    plane_labels = as_4d(segment(stack, params=params, threshold=thresholds, stitch=False))
    plane_labels = plane_labels.copy(data=regular_chunks(plane_labels.data))
    tables = measure_delayed(plane_labels, stack)
    if remote:  # no completion markers on object stores: one pass
        store = write_labels(plane_labels, planes_path, compute=False, overwrite=True)
        _, *tables = sink((store, *tables), "segment")
    else:  # one completion marker per block, so that resume=True can skip it
        tables = _scratch.segment_blocks(
            plane_labels, tables, scratch, lambda items: sink(items, "segment")
        )
    return pd.concat([empty_detections(), *tables], ignore_index=True), None


def link_pass(
    detections: pd.DataFrame, stack: xr.DataArray, params: Params
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Link the detections across z into nuclei; return the linked detections and nuclei."""
    sc = scale_of(stack)
    planar = stack.sizes["z"] == 1  # 2D: no result may depend on the z size
    linked = link(detections, params=params, scale=sc, planar=planar)
    nuclei = nuclei_table(linked, scale=sc, planar=planar)
    return linked, nuclei


def relabel_pass(
    stack: xr.DataArray,
    linked: pd.DataFrame,
    nuclei: pd.DataFrame,
    split: Any,
    stitched: Any,
    work: Any,
    source: str,
    sink: Sink,
) -> None:
    """Map the scratch plane labels to nucleus ids and write ``labels.zarr``."""
    planes = as_4d(open_stack(work / _scratch.PLANES, scale=scale_of(stack))).data
    if split is not None:
        labels = relabel_stitched(planes.rechunk(split.chunks), linked, stitched)
    else:
        labels = relabel(planes, linked)
    if "t" not in stack.dims:
        labels = labels[0]
    labels_da = xr.DataArray(labels, dims=stack.dims, attrs=dict(stack.attrs))
    sink(
        write_labels(
            labels_da,
            work / "labels.zarr",
            source=source,
            nuclei=nuclei,
            compute=False,
            overwrite=True,  # the scratch directory is bigseg's: an interrupted run's is replaced
        ),
        "labels",
    )


def relabel(planes: Any, linked: pd.DataFrame) -> Any:
    """Map plane-local labels of a ``(t, z, y, x)`` array to nucleus ids (lazy)."""
    t, z, label = (linked[c].to_numpy(np.int64) for c in ("t", "z", "label"))
    return relabel_planes(planes, t, z, label, linked["nucleus"].to_numpy(np.uint32), np.uint32)


def stitched_pass(
    stack: Any,
    data: da.Array,
    thresholds: np.ndarray,
    px: Any,
    planes_path: Any,
    sink: Sink,
    params: Params,
) -> tuple[pd.DataFrame, _stitch.Stitched]:
    """Segment + measure pass for split planes.

    Block-local labels stream to ``planes_path``; only the per-block sums and
    the per-face pair tables come back, and are stitched in memory.
    """
    thr = da.from_array(np.asarray(thresholds, np.float64), chunks=-1)
    blocks = stitched_blocks(data, thr, params, px, scale_of(stack))
    raw = xr.DataArray(
        _stitch.core_labels(blocks, data.chunks), dims=("t", "z", "y", "x"), attrs=dict(stack.attrs)
    )
    store = write_labels(raw, planes_path, compute=False, overwrite=True)
    side = _stitch.side_tables(blocks)
    _, side, *pairs = sink((store, _stitch.summaries(side), *_stitch.face_pairs(side)), "segment")
    stitched = _stitch.stitch(side, pairs)
    detections = detections_from_sums(
        stitched.sums, scale=scale_of(stack), translation=translation_of(stack)
    )
    return detections, stitched


#: ``float_format`` of ``nuclei.csv``: 7 significant digits, the precision of float32
#: intensities, and 1 nm for positions up to 10 mm; the Parquet tables keep full float64.
CSV_FLOAT_FORMAT = "%.7g"

#: Columns stored as int64 (plane ``label`` keeps its own integer dtype).
_INTEGER_COLUMNS = ("t", "z_first", "z_last", "nucleus", "track_id", "n_planes")


def write_tables(
    stack: xr.DataArray, linked: pd.DataFrame, nuclei: pd.DataFrame, work: Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write ``nuclei.parquet``, ``nuclei.csv`` and ``detections.parquet``; return the tables.

    Tables keep the original time indices (when ``t`` selects a range), as integers.
    """
    t_values = as_4d(stack)["t"].to_numpy().astype(np.int64)
    linked, nuclei = (_integer_columns(table, t_values) for table in (linked, nuclei))
    nuclei.to_parquet(work / "nuclei.parquet", index=False)
    nuclei.to_csv(work / "nuclei.csv", index=False, float_format=CSV_FLOAT_FORMAT)
    linked.to_parquet(work / "detections.parquet", index=False)
    return linked, nuclei


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
