"""Tracks across time on the workers, one partition of time at a time.

The nuclei table is a partitioned dataset, one part file per t-chunk of the stack
(:mod:`bigseg.pipeline.partitions`).  Tracking runs three passes over it, each one
task per part, in batches of parts (each batch's graph built when it is submitted, one
row of counts per batch coming back), and the client holds only counts (and the run's
list of time points):

1. **frame links** (parallel): each part's pairs of consecutive time points
   (:func:`bigseg.track.frame_links`; the last pair reads the first time point of the
   next part), stored in ``tracking/frame/``;
2. **gaps and divisions** (parallel): the links into each part's time points
   (:func:`bigseg.track.links_into`: gaps, divisions, daughters found a time point
   late; reads the three time points before the part and the one after it), stored
   in ``tracking/links/``; each part counts the tracks that start in it,
   so that track ids are numbered by the part they start in (offsets from the counts);
3. **ids** (one short task per part, in order): each task takes the tracks still open
   at the end of the previous part (at most the nuclei of two time points: a gap
   spans one missing time point) from the task before it -- never through the
   client -- gives its nuclei ``track_id`` and ``parent_track_id``
   (:func:`bigseg.track.track_ids`, a union-find over the continuing links), writes
   its part of the tracked nuclei table and the rows of the tracks that can no
   longer continue (``tracks.parquet``, one part per part).  A batch of this chain
   hands its open tracks to the next through the scratch directory
   (``tracking/open/``), and starts once the batch before has finished.

Memory per task is bounded by the nuclei of a few time points, and the total is
linear in the number of time points.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from typing import Any

import dask
import numpy as np
import pandas as pd
from dask.delayed import Delayed

from ..io import objstore
from ..track import (
    TRACK_COLUMNS,
    TrackParams,
    empty_links,
    finish_tracks,
    frame_links,
    links_into,
    track_ids,
)
from . import scratch as _scratch
from .layout import TRACKING
from .partitions import INTEGER_COLUMNS, _join, _makedirs, _write, part_name

__all__ = ["TRACKING", "TRACK_ID_COLUMNS", "track_parts"]


#: Columns tracking adds to the nuclei table.
TRACK_ID_COLUMNS = ("track_id", "parent_track_id")

_OPEN = {
    "track_id": "int64",
    "parent_track_id": "int64",
    "t_first": "int64",
    "t_last": "int64",
    "p_last": "int64",
    "length": "int64",
    "path_um": "float64",
    "nucleus": "int64",
    "z_um": "float64",
    "y_um": "float64",
    "x_um": "float64",
}
_POS = ["z_um", "y_um", "x_um"]


def _read_nuclei(
    nuclei_dir: str,
    i: int,
    times: Sequence[int] | None = None,
    per: int = 1,
    *,
    origin: bool = False,
) -> pd.DataFrame:
    """Nuclei of part ``i`` (of ``times`` only, when given), without earlier track columns.

    Part ``i`` is the nuclei table's part files ``i * per`` to ``(i + 1) * per - 1``
    (``per`` files per t-chunk when detections are partitioned by z-chunk); with
    ``origin``, column ``_file`` says which each row came from.
    """
    filters = None if times is None else [("t", "in", [int(v) for v in times])]
    tables = [
        pd.read_parquet(_join(nuclei_dir, part_name(k)), filters=filters)
        for k in range(int(i) * per, (int(i) + 1) * per)
    ]
    if origin:
        tables = [
            table.assign(_file=k)
            for k, table in zip(range(int(i) * per, (int(i) + 1) * per), tables)
        ]
    table = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    table = table.drop(columns=[c for c in TRACK_ID_COLUMNS if c in table])
    return table.sort_values(["t", "nucleus"], kind="stable").reset_index(drop=True)


def _read_links(folder: str, i: int) -> pd.DataFrame:
    path = _join(folder, part_name(i))
    return pd.read_parquet(path) if _exists(path) else empty_links()


def _exists(path: str) -> bool:
    if "://" in path:
        import fsspec

        fs, key = fsspec.core.url_to_fs(path)
        return bool(fs.exists(key))
    return os.path.exists(path)


def _frame_part(
    work: str,
    nuclei_dir: str,
    i: int,
    part_times: list[int],
    next_part: int | None,
    next_time: int | None,
    params: TrackParams,
    per: int = 1,
) -> pd.DataFrame:
    """Frame links from each time point of part ``i`` to the next time point."""
    nuclei = _read_nuclei(nuclei_dir, i, per=per)
    frames = dict(_by_time(nuclei, part_times))
    if next_part is not None and next_time is not None:
        frames[next_time] = _read_nuclei(nuclei_dir, next_part, [next_time], per)
    sequence = [*part_times, *([] if next_time is None else [next_time])]
    out = [empty_links()]
    for a, b in zip(sequence[:-1], sequence[1:]):
        out.append(frame_links(frames[a], frames[b], params=params))
    links = pd.concat(out, ignore_index=True)
    _write(links, _join(_join(work, "frame"), part_name(i)))
    return pd.DataFrame({"links": [len(links)]}, dtype="int64")


def _by_time(nuclei: pd.DataFrame, times: Sequence[int]) -> list[tuple[int, pd.DataFrame]]:
    t = nuclei["t"].to_numpy().astype(np.int64)
    return [(int(v), nuclei[t == v].reset_index(drop=True)) for v in times]


def _links_part(
    work: str,
    nuclei_dir: str,
    i: int,
    part_times: list[int],
    earlier: list[tuple[int, int]],
    later: tuple[int, int] | None,
    params: TrackParams,
    per: int = 1,
) -> pd.DataFrame:
    """Links into the time points of part ``i``: frame links, gaps, divisions.

    ``earlier`` names the (part, time) of the (at most three) time points before the
    part, ``later`` the one after it (None at the end of the run):
    :func:`bigseg.track.links_into` reads from ``s - 3`` to ``s + 1``.
    """
    nuclei = _read_nuclei(nuclei_dir, i, per=per)
    frames = dict(_by_time(nuclei, part_times))
    frame_sets = [_read_links(_join(work, "frame"), i)]
    for part in sorted({p for p, _ in earlier}):
        t_of = [t for p, t in earlier if p == part]
        frames.update(_by_time(_read_nuclei(nuclei_dir, part, t_of, per), t_of))
        frame_sets.append(_read_links(_join(work, "frame"), part))
    if later is not None:
        frames[later[1]] = _read_nuclei(nuclei_dir, later[0], [later[1]], per)
    frame = pd.concat(frame_sets, ignore_index=True)
    by_source_t = dict(iter(frame.groupby("t_source", sort=False)))
    sequence = [t for _, t in earlier] + list(part_times) + ([] if later is None else [later[1]])
    empty_nuclei = nuclei.iloc[:0]

    def nuclei_at(k: int) -> pd.DataFrame:
        return frames[sequence[k]] if 0 <= k < len(sequence) else empty_nuclei

    def links_from(k: int) -> pd.DataFrame:
        if not 0 <= k < len(sequence) - 1:
            return empty_links()
        return by_source_t.get(sequence[k], empty_links())

    out = [empty_links()]
    for k in range(len(earlier), len(earlier) + len(part_times)):
        if k == 0:
            continue
        out.append(
            links_into(
                [nuclei_at(k + d) for d in (-3, -2, -1, 0, 1)],
                [links_from(k + d) for d in (-3, -2, -1, 0)],
                params=params,
            )
        )
    links = pd.concat(out, ignore_index=True)
    _write(links, _join(_join(work, "links"), part_name(i)))
    cont = links[links["continues"].to_numpy(bool)]
    starts = int((~nuclei["nucleus"].isin(cont["target"])).sum())
    kinds = links["kind"].to_numpy()
    return pd.DataFrame(
        {
            "starts": [starts],
            "links": [len(links)],
            "gaps": [int((kinds == "gap").sum())],
            "divisions": [int((kinds == "division").sum())],
        },
        dtype="int64",
    )


def _ids_part(
    carry: pd.DataFrame | None,
    work: str,
    nuclei_dir: str,
    tracks_dir: str,
    i: int,
    first_id: int,
    part_times: list[int],
    first_position: int,
    last: bool,
    frame_interval_s: float | None,
    per: int = 1,
) -> pd.DataFrame:
    """Track ids of part ``i``; writes its tracked nuclei and its finished tracks.

    ``carry`` holds the tracks still open after the previous part (one row per track:
    its last nucleus and running sums); the tracks open after this part are returned.
    """
    if carry is None:
        carry = pd.DataFrame({c: pd.Series(dtype=d) for c, d in _OPEN.items()})
    nuclei = _read_nuclei(nuclei_dir, i, per=per, origin=True)
    links = _read_links(_join(work, "links"), i)
    known = carry[["nucleus", "track_id", "parent_track_id"]]
    track, parent = track_ids(
        nuclei["nucleus"].to_numpy(np.int64), links, known=known, first_id=first_id
    )
    nuclei["track_id"] = track
    nuclei["parent_track_id"] = parent
    # Steps along each track: from the source of a continuing link into each nucleus.
    cont = links[links["continues"].to_numpy(bool)]
    where = pd.concat(
        [carry[["nucleus", *_POS]], nuclei[["nucleus", *_POS]]], ignore_index=True
    ).set_index("nucleus")
    source = pd.Series(cont["source"].to_numpy(), index=cont["target"].to_numpy())
    src = source.reindex(nuclei["nucleus"].to_numpy()).to_numpy()
    has = ~pd.isna(src)
    step = np.zeros(len(nuclei))
    if has.any():
        a = where.loc[src[has].astype(np.int64), _POS].to_numpy(float)
        step[has] = np.linalg.norm(nuclei.loc[has, _POS].to_numpy(float) - a, axis=1)
    t = nuclei["t"].to_numpy().astype(np.int64)
    index = np.searchsorted(np.asarray(part_times, np.int64), t)
    here = pd.DataFrame(
        {
            "track_id": track,
            "parent_track_id": parent,
            "t": t,
            "p": first_position + index.astype(np.int64),
            "step": step,
            "nucleus": nuclei["nucleus"].to_numpy(np.int64),
            **{c: nuclei[c].to_numpy(float) for c in _POS},
        }
    )
    g = here.groupby("track_id", sort=True)
    tail = here.loc[g["t"].idxmax()].set_index("track_id")
    part = pd.DataFrame(
        {
            "parent_track_id": g["parent_track_id"].first(),
            "t_first": g["t"].min(),
            "t_last": g["t"].max(),
            "p_last": tail["p"],
            "length": g.size(),
            "path_um": g["step"].sum(),
            "nucleus": tail["nucleus"],
            **{c: tail[c] for c in _POS},
        }
    )
    old = carry.set_index("track_id")
    both = part.index.intersection(old.index)
    part.loc[both, "t_first"] = old.loc[both, "t_first"]
    part.loc[both, "length"] += old.loc[both, "length"]
    part.loc[both, "path_um"] += old.loc[both, "path_um"]
    merged = pd.concat([old.drop(index=both), part]).reset_index().astype(_OPEN)
    end = first_position + len(part_times) - 1  # position of the part's last time point
    done = np.ones(len(merged), bool) if last else merged["p_last"].to_numpy() < end - 1
    finished = finish_tracks(merged[done].sort_values("track_id"), frame_interval_s)
    # In place: the earlier passes are done with this part, and a repeated attempt
    # drops the track columns it reads.
    files = nuclei.pop("_file").to_numpy()
    for k in range(i * per, (i + 1) * per):
        _write(
            _integers(nuclei[files == k].reset_index(drop=True)), _join(nuclei_dir, part_name(k))
        )
    _write(finished, _join(tracks_dir, part_name(i)))
    return merged[~done].reset_index(drop=True)


def _integers(table: pd.DataFrame) -> pd.DataFrame:
    for name in INTEGER_COLUMNS:
        if name in table:
            table[name] = table[name].to_numpy().astype(np.int64)
    return table


def _concat(*tables: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(tables, ignore_index=True)


def _store_open(carry: pd.DataFrame, folder: str, i: int, store: bool) -> pd.DataFrame:
    """Store the tracks open after part ``i`` for the next batch (when ``store``); count them."""
    if store:
        _write(carry, _join(folder, part_name(i)))
    return pd.DataFrame({"open": [len(carry)]}, dtype="int64")


def _read_open(folder: str, i: int) -> pd.DataFrame:
    """Read the tracks open after part ``i`` (:func:`_store_open`)."""
    return pd.read_parquet(_join(folder, part_name(i))).astype(_OPEN)


def track_parts(
    nuclei_dir: Any,
    tracks_dir: Any,
    work: Any,
    part_times: Sequence[Sequence[int]],
    sink: Any,
    *,
    params: TrackParams | None = None,
    frame_interval_s: float | None = None,
    batch_parts: int | None = None,
    per: int = 1,
) -> dict:
    """Track a partitioned nuclei table in place and write the tracks table.

    Parameters
    ----------
    nuclei_dir : path
        The nuclei dataset (one part file per t-chunk, or ``per`` of them), in a scratch
        directory of bigseg's: its parts gain ``track_id`` and ``parent_track_id``.
    tracks_dir : path
        Where ``tracks.parquet`` is written (replaced if it exists).
    work : path
        A scratch directory of bigseg's (``tracking/`` is made in it).
    part_times : sequence of sequences of int
        The time points of each part, in order (every time point of the run, also
        those without nuclei).
    sink : bigseg.pipeline.sink.Sink
        Where the passes compute.
    params : TrackParams, optional
        Tracking parameters.
    frame_interval_s : float, optional
        Seconds between time points (speeds in µm/min).
    batch_parts : int, optional
        Parts per batch (default ``sink.batch_blocks(scratch.BATCH_BLOCKS)``, as the link and
        tables passes): each pass runs in batches of parts, each graph built when it is
        submitted.
    per : int
        Part files of the nuclei dataset per part of ``part_times`` (the z-chunks of a
        run whose detections are partitioned by z-chunk,
        :mod:`bigseg.pipeline.zparts`).

    Returns
    -------
    dict
        Counts: ``tracks``, ``links``, ``gaps``, ``divisions``.
    """
    params = params or TrackParams()
    nuclei_dir = os.fspath(nuclei_dir)
    base = _join(os.fspath(work), TRACKING)
    tracks_dir = os.fspath(tracks_dir)
    open_dir = _join(base, "open")
    for folder in (_join(base, "frame"), _join(base, "links"), open_dir, tracks_dir):
        if _exists(folder):  # from an interrupted attempt
            objstore.rmtree(objstore.location(folder))
        _makedirs(folder)
    parts = [[int(v) for v in p] for p in part_times]
    n = len(parts)
    step = max(1, int(batch_parts or sink.batch_blocks(_scratch.BATCH_BLOCKS)))
    ranges = [(a, min(a + step, n)) for a in range(0, n, step)]
    # Which part each time point is in, and its position in the run.
    flat = [(i, t) for i, p in enumerate(parts) for t in p]
    positions = {t: k for k, (_, t) in enumerate(flat)}
    frame = dask.delayed(_frame_part, pure=False)
    linker = dask.delayed(_links_part, pure=False)
    gather = dask.delayed(_concat, pure=False)

    def frame_batch(a: int, b: int) -> tuple:
        jobs = []
        for i in range(a, b):
            p = parts[i]
            k = positions[p[-1]] + 1 if p else None
            nxt = flat[k] if k is not None and k < len(flat) else (None, None)
            jobs.append(frame(base, nuclei_dir, i, p, nxt[0], nxt[1], params, per))
        return (gather(*jobs),)  # one small result per batch

    def links_batch(a: int, b: int) -> tuple:
        jobs = []
        for i in range(a, b):
            p = parts[i]
            k = positions[p[0]] if p else 0
            earlier = [flat[j] for j in range(max(0, k - 3), k)]
            e = positions[p[-1]] + 1 if p else k
            later = flat[e] if p and e < len(flat) else None
            jobs.append(linker(base, nuclei_dir, i, p, earlier, later, params, per))
        return (gather(*jobs),)

    # Batches of parts, each graph built when it is submitted: the client holds one row
    # of counts per part, not a graph, a future or a DataFrame per part.
    for _ in sink.batches((frame_batch(a, b) for a, b in ranges), "frame links"):
        pass
    totals = np.zeros(4, np.int64)  # tracks (starts), links, gaps, divisions
    starts = np.zeros(n, np.int64)
    for (a, _), (found,) in zip(
        ranges, sink.batches((links_batch(a, b) for a, b in ranges), "gaps and divisions")
    ):
        values = found[["starts", "links", "gaps", "divisions"]].to_numpy(np.int64)
        starts[a : a + len(values)] = values[:, 0]
        totals += values.sum(axis=0)
    first_ids = 1 + np.cumsum(starts) - starts

    # The ids pass is a chain, each task taking the open tracks of the one before; each
    # batch of it is one plain graph (a chain of delayed calls would merge its graphs
    # once per link).  Between batches the open tracks go through the scratch directory
    # (``tracking/open/``), not as a future: a chain of futures keeps every task of the
    # chain in the scheduler's and the worker's state until its last result is released
    # (~8 KiB per task, linear in the number of time points), so each batch is computed
    # once the one before has finished, and then forgotten.
    def ids_batch(a: int, b: int) -> tuple:
        name = f"bigseg-track-ids-{uuid.uuid4().hex}"
        graph: dict = {}
        previous: Any = None if a == 0 else (_read_open, open_dir, a - 1)
        for i in range(a, b):
            p = parts[i]
            first = positions[p[0]] if p else 0
            graph[(name, i)] = (
                _ids_part, previous, base, nuclei_dir, tracks_dir, i, int(first_ids[i]),
                p, first, i == n - 1, frame_interval_s, per,
            )  # fmt: skip
            previous = (name, i)
        graph[(name, "open")] = (_store_open, previous, open_dir, b - 1, b < n)
        return (Delayed((name, "open"), graph),)

    for _ in sink.batches((ids_batch(a, b) for a, b in ranges), "track ids", in_flight=1):
        pass
    return {
        "tracks": int(totals[0]),
        "links": int(totals[1]),
        "gaps": int(totals[2]),
        "divisions": int(totals[3]),
    }


def read_tracks(path: Any) -> pd.DataFrame:
    """Read ``tracks.parquet`` into pandas (an empty table when it has no rows)."""
    from .partitions import read_parts

    table = read_parts(path)
    if len(table.columns) == 0:
        return pd.DataFrame({c: pd.Series(dtype=d) for c, d in TRACK_COLUMNS.items()})
    return table
