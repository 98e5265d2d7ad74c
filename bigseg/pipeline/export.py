"""Export a finished, tracked output in the Cell Tracking Challenge's format.

``export_ctc(OUT, DIR)`` writes ``DIR/res_track.txt`` and one mask per time point,
``DIR/mask000.tif`` ..., the nuclei of ``labels.zarr`` labelled by CTC track
(:func:`bigseg.track.ctc_tracks`: a track with a closed gap becomes one CTC track
per unbroken piece).  Each mask is written by its own task from its time point of
``labels.zarr`` and a lookup table of that time point's nuclei; the lineage is built
from the ``t``, ``nucleus`` and track columns of the nuclei table (four integers per
nucleus on the client).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd

from .._errors import InputError
from ..io.ctc import ctc_dtype, frame_name, write_lineage, write_mask
from ..track import ctc_tracks
from .partitions import _part_files

__all__ = ["export_ctc", "run_times"]


def run_times(record: dict) -> list[int]:
    """Return the time points of a run, as its tables number them."""
    selected = record["input"].get("t_selected")
    if selected:
        return [int(v) for v in selected]
    return list(range(int(record["counts"]["time_points"])))


def export_ctc(
    output: str | os.PathLike, directory: str | os.PathLike, *, client: Any = None
) -> Path:
    """Write a tracked output in the Cell Tracking Challenge's format.

    Parameters
    ----------
    output : path-like
        A finished output of :func:`bigseg.run` with tracks (``track_id`` in
        ``nuclei.parquet``), local.
    directory : path-like
        The folder to write: it must not exist yet, or be empty.
    client : distributed.Client, optional
        Compute the masks on this client.

    Returns
    -------
    Path
        ``directory``.
    """
    out, target = Path(output), Path(directory)
    record_path = out / "run.json"
    if not record_path.is_file():
        raise InputError(f"{str(out)!r} is not a bigseg output (no run.json); choose one.")
    record = json.loads(record_path.read_text())
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(
            f"{str(target)!r} exists and is not an empty folder; choose a new folder for the "
            "CTC export."
        )
    files = _part_files(out / "nuclei.parquet")
    columns = ["t", "nucleus", "track_id", "parent_track_id"]
    try:
        parts = [pd.read_parquet(f, columns=columns) for f in files]
    except (KeyError, ValueError) as exc:
        raise InputError(
            f"{str(out)!r} has no tracks (no track_id in nuclei.parquet); track it first: "
            f"bigseg track {out}."
        ) from exc
    if not parts:
        raise InputError(f"{str(out)!r} has no nuclei.parquet to export; choose a finished output.")
    nuclei = pd.concat(parts, ignore_index=True)
    times = run_times(record)
    labels, rows = ctc_tracks(nuclei, np.asarray(times))
    dtype = ctc_dtype(int(rows["L"].max()) if len(rows) else 0)
    target.mkdir(parents=True, exist_ok=True)
    t = nuclei["t"].to_numpy(np.int64)
    ids = nuclei["nucleus"].to_numpy(np.int64)
    by_t = pd.Series(np.arange(len(t))).groupby(t).indices
    planes = os.fspath(out / "labels.zarr" / "0")
    write = dask.delayed(_write_frame, pure=False)
    tasks = []
    for k, tv in enumerate(times):
        rows_t = by_t.get(tv, np.empty(0, np.int64))
        tasks.append(
            write(
                planes, k, "t" in record["input"]["dims"], ids[rows_t], labels[rows_t],
                os.fspath(target / frame_name("mask", k, len(times))), dtype,
            )
        )  # fmt: skip
    if client is not None:
        client.gather(client.compute(tasks))
    else:
        dask.compute(*tasks)
    write_lineage(rows, target / "res_track.txt")
    return target


def _write_frame(
    planes: str,
    index: int,
    has_t: bool,
    ids: np.ndarray,
    labels: np.ndarray,
    path: str,
    dtype: np.dtype,
) -> None:
    import zarr

    array = zarr.open_array(planes, mode="r")
    volume = np.asarray(array[index] if has_t else array[...])
    lut_ids = np.concatenate([[0], ids]).astype(np.int64)
    lut_labels = np.concatenate([[0], labels]).astype(np.int64)
    order = np.argsort(lut_ids)
    lut_ids, lut_labels = lut_ids[order], lut_labels[order]
    flat = volume.ravel().astype(np.int64)
    at = np.clip(np.searchsorted(lut_ids, flat), 0, lut_ids.size - 1)
    mapped = np.where(lut_ids[at] == flat, lut_labels[at], 0)
    write_mask(mapped.reshape(volume.shape), path, dtype)
