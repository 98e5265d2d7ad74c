"""Track a finished output again, with other parameters, without segmenting it again.

``retrack(OUT)`` copies ``OUT/nuclei.parquet`` into a hidden scratch directory beside
the output (``.OUT.track-partial``), tracks the copy there on the workers
(:mod:`bigseg.pipeline.tracking`), writes the new ``tracks.parquet`` (and
``nuclei.csv`` when the output has one; ``track_labels.zarr`` when it has one or when
asked, :mod:`bigseg.pipeline.track_labels`) and an updated ``run.json`` beside it, and
only then moves each table into place, one rename each, ``run.json`` last: a table is
never half-written, and an interrupted re-tracking leaves the earlier tables.  Only tables
that bigseg wrote are replaced, and only in an output whose ``run.json`` bigseg wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._errors import InputError
from ..io import objstore
from ..track import TrackParams
from .export import run_times
from .outputs import foreign_entries, is_run_record, local_entries
from .partitions import CSV_FLOAT_FORMAT, _part_files, read_parts
from .runner import tracking_record
from .sink import Sink
from .track_labels import TRACK_LABELS, write_track_labels
from .tracking import track_parts

__all__ = ["retrack"]

#: The tables (and the labels by track id) re-tracking replaces.
REPLACED = ("nuclei.parquet", "tracks.parquet", "nuclei.csv", TRACK_LABELS)


def scratch_of(out: Path) -> Path:
    """Return the scratch directory of re-tracking ``out``: ``.OUT.track-partial`` beside it."""
    return out.parent / f".{out.name}.track-partial"


def retrack(
    output: str | os.PathLike,
    *,
    params: TrackParams | None = None,
    frame_interval: float | None = None,
    client: Any = None,
    progress: bool = False,
    command: Sequence[str] | None = None,
    track_labels: bool | None = None,
) -> dict:
    """Track the nuclei of a finished output again (in place, table by table).

    Parameters
    ----------
    output : path-like
        A local output of :func:`bigseg.run` with more than one time point.
    params : TrackParams, optional
        Tracking parameters (defaults when omitted).
    frame_interval : float, optional
        Seconds between time points; by default the one ``run.json`` recorded.
    client : distributed.Client, optional
        Compute on this client.
    progress : bool
        Show progress bars.
    command : sequence of str, optional
        The command line, recorded in ``run.json``.
    track_labels : bool, optional
        Write ``track_labels.zarr`` (the labels by the new track ids).  By default
        (None) when the output has one: its ids would be stale otherwise; False
        removes it.

    Returns
    -------
    dict
        ``run.json``'s new ``tracking`` entry.
    """
    started = time.perf_counter()
    params = params or TrackParams()
    if objstore.is_url(os.fspath(output)):
        raise InputError(
            f"bigseg track works on local outputs; {os.fspath(output)!r} is a URL: copy it "
            "to a local folder first."
        )
    out = Path(output)
    record_path = out / "run.json"
    text = record_path.read_text(errors="replace") if record_path.is_file() else None
    if text is None or not is_run_record(text):
        raise InputError(
            f"{str(out)!r} is not a bigseg output (no run.json written by bigseg); choose one."
        )
    record = json.loads(text)
    times = run_times(record)
    if len(times) < 2:
        raise InputError(f"{str(out)!r} has {len(times)} time point; tracking needs at least two.")
    ours = [(rel, d) for rel, d in local_entries(out) if rel.split("/")[0] in REPLACED]
    foreign = foreign_entries(ours)
    if foreign:
        raise InputError(
            f"{str(out)!r} holds {', '.join(map(repr, foreign[:3]))}, which bigseg did not "
            "write; it was left untouched. Move those away first."
        )
    files = _part_files(out / "nuclei.parquet")
    part_times, per = _part_times(record, times, len(files), out)
    if frame_interval is None:
        earlier = record.get("tracking") or {}
        frame_interval = earlier.get("frame_interval_s") or record["input"].get("frame_interval_s")
        source = earlier.get("frame_interval_source") or record["input"].get(
            "frame_interval_source"
        )
    else:
        if not frame_interval > 0:
            raise InputError(
                f"frame_interval={frame_interval} must be a positive number of seconds."
            )
        source = "option"
    work = scratch_of(out)
    if work.exists():
        _remove_scratch(work)
    work.mkdir()
    try:
        shutil.copytree(out / "nuclei.parquet", work / "nuclei.parquet")
        counts = track_parts(
            work / "nuclei.parquet",
            work / "tracks.parquet",
            work,
            part_times,
            Sink(client, progress),
            params=params,
            frame_interval_s=frame_interval,
            per=per,
        )
        if track_labels is None:
            track_labels = (out / TRACK_LABELS).exists()
        if track_labels:
            write_track_labels(
                out / "labels.zarr",
                work / "nuclei.parquet",
                part_times,
                work / TRACK_LABELS,
                Sink(client, progress),
                per=per,
            )
        if (out / "nuclei.csv").exists():
            nuclei = read_parts(work / "nuclei.parquet")
            nuclei.to_csv(work / "nuclei.csv", index=False, float_format=CSV_FLOAT_FORMAT)
        entry = tracking_record(
            params, counts, (frame_interval, source if frame_interval else None)
        )
        entry["track_labels"] = bool(track_labels)
        entry["retracked"] = {
            "command": None if command is None else [str(a) for a in command],
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(time.perf_counter() - started, 4),
        }
        record["tracking"] = entry
        (work / "run.json").write_text(json.dumps(record, indent=2))
        old = work / "old"
        old.mkdir()
        for name in REPLACED:
            stale = name == TRACK_LABELS and not track_labels  # ids of the earlier tracks
            if not (work / name).exists() and not stale:
                continue
            if (out / name).exists():
                (out / name).rename(old / name)
            if not stale:
                (work / name).rename(out / name)
        os.replace(work / "run.json", out / "run.json")
    finally:
        _remove_scratch(work)
    return entry


def _part_times(
    record: dict, times: list[int], n_parts: int, out: Path
) -> tuple[list[list[int]], int]:
    """Return the time points of each t-chunk of a run, and its nuclei part files per t-chunk.

    ``nuclei.parquet`` has one part file per t-chunk, or one per z-chunk of each when the
    run partitioned its detections by z-chunk (``work_blocks.parts_per_t``).
    """
    blocks = record.get("work_blocks") or {}
    chunks = blocks.get("chunks") or record["input"].get("chunks")
    per = int(blocks.get("parts_per_t", 1))
    dims = record["input"]["dims"]
    sizes = [int(c) for c in chunks[0]] if chunks and "t" in dims else [len(times)]
    if sum(sizes) != len(times) or len(sizes) * per != n_parts:
        raise InputError(
            f"The nuclei table of {str(out)!r} has {n_parts} parts for {len(times)} time points "
            f"in chunks of {sizes}; it was not written by this version of bigseg: segment again."
        )
    edges = [0]
    for s in sizes:
        edges.append(edges[-1] + s)
    return [times[a:b] for a, b in zip(edges[:-1], edges[1:])], per


#: What a re-tracking's scratch directory may hold (all of it bigseg's).
_SCRATCH = {*REPLACED, "run.json", "tracking", "old"}


def _remove_scratch(work: Path) -> None:
    """Delete a re-tracking's scratch directory when it holds only what bigseg puts there."""
    names = set(os.listdir(work))
    if not names <= _SCRATCH:
        raise InputError(
            f"{str(work)!r} holds {sorted(names - _SCRATCH)[:3]}, which bigseg did not write; "
            "it was left untouched. Move it away, then track again."
        )
    shutil.rmtree(work)
