"""Planes split into y/x blocks: stitched slab by slab, on the workers.

A run whose planes are split into y/x work blocks stores every block's labels and its
stitching record (``blocks/T_Z_Y_X.side.npz``,
:func:`bigseg.pipeline.scratch.stitched_blocks`).  Labels continue across y/x faces only
(every method splits plane by plane), so each *slab* of blocks, one t-chunk by one
z-chunk with all its y/x blocks, is stitched by a task of its own
(:func:`bigseg.chunked.stitch.stitch_grid`), which writes into ``slabs/``:

- ``T_Z.detections.parquet``: the slab's detections, measured exactly from the blocks'
  partial sums;
- ``T_Z.nodes.parquet``: the plane-wide label (``region``) of every block-local label;
- ``T_Z.json``: the slab's stitching counts, written last: its completion marker (a
  resumed run stitches only the slabs without one).

The detections of a t-chunk are its slabs' (:func:`detections_of_slabs`, one partition
per t-chunk, read on the workers), and the relabel pass maps each block's local labels
through its slab's nodes and its partition's nucleus ids on the worker
(:func:`slab_rows`).  The client keeps the sum of the slabs' counts.
"""

from __future__ import annotations

import dataclasses
import glob
import itertools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

from ..chunked.stitch import StitchCounts, stitch_grid
from ..tables import detections_from_sums, empty_detections
from .layout import LINKED, SLABS
from .partitions import _write, part_name
from .scratch import BATCH_BLOCKS, read_side, side_path

__all__ = ["detections_of_slabs", "slab_reader", "slab_rows", "stitch_slabs"]

_DETECTIONS = ".detections.parquet"
_NODES = ".nodes.parquet"
_COUNTS = ".json"


def _slab_file(slabs: str | Path, t: int, z: int, suffix: str) -> str:
    return os.path.join(os.fspath(slabs), f"{int(t)}_{int(z)}{suffix}")


def stitch_slabs(
    numblocks: Sequence[int],
    scratch: Any,
    sink: Any,
    *,
    scale: Sequence[float],
    translation: Sequence[float],
) -> StitchCounts:
    """Stitch every slab of a run's blocks of split planes on the workers; sum their counts.

    ``numblocks`` is the block grid ``(t, z, y, x)``; the blocks' records are in
    ``scratch``'s ``blocks/``.  Slabs go in batches of about
    :data:`bigseg.pipeline.scratch.BATCH_BLOCKS` blocks; a slab already stitched (by an
    interrupted run) is read back, not stitched again.
    """
    n_t, n_z, n_y, n_x = (int(n) for n in numblocks)
    slabs = scratch.path / SLABS
    slabs.mkdir(exist_ok=True)
    total = StitchCounts()
    done = np.zeros((n_t, n_z), bool)
    for t, z in np.ndindex(n_t, n_z):
        marker = _slab_file(slabs, t, z, _COUNTS)
        if os.path.exists(marker):
            done[t, z] = True
            total += _read_counts(marker)
    per_batch = max(1, sink.batch_blocks(BATCH_BLOCKS) // (n_y * n_x))
    task = dask.delayed(
        partial(
            _stitch_slab,
            os.fspath(scratch.path),
            shape=(n_y, n_x),
            scale=tuple(float(s) for s in scale),
            translation=tuple(float(s) for s in translation),
        ),
        pure=False,
    )

    def batches() -> Iterator[tuple]:
        todo = (tz for tz in np.ndindex(n_t, n_z) if not done[tz])
        while batch := tuple(task(t, z) for t, z in itertools.islice(todo, per_batch)):
            yield batch

    for counts in sink.batches(batches(), "stitch"):
        for row in counts:
            total += StitchCounts(**row)
    return total


def _stitch_slab(
    work: str,
    t: int,
    z: int,
    *,
    shape: tuple[int, int],
    scale: tuple,
    translation: tuple,
) -> dict:
    """Stitch slab ``(t, z)``: write its detections and label nodes, then its counts."""
    scratch = Path(work)
    records = np.empty((1, 1, *shape), object)
    for y, x in np.ndindex(*shape):
        records[0, 0, y, x] = read_side(side_path(scratch, (t, z, y, x)))
    stitched = stitch_grid(records)
    detections = detections_from_sums(stitched.sums, scale=scale, translation=translation)
    slabs = scratch / SLABS
    _write(detections, _slab_file(slabs, t, z, _DETECTIONS))
    _write(stitched.nodes, _slab_file(slabs, t, z, _NODES))
    counts = dataclasses.asdict(stitched.counts())
    marker = _slab_file(slabs, t, z, _COUNTS)
    tmp = f"{marker}.tmp-{os.getpid()}"
    Path(tmp).write_text(json.dumps(counts))
    os.replace(tmp, marker)
    return counts


def _read_counts(path: str) -> StitchCounts:
    return StitchCounts(**json.loads(Path(path).read_text()))


def detections_of_slabs(scratch_path: Any, first: int, end: int) -> dd.DataFrame:
    """Read the detections of t-chunks ``first`` to ``end`` from their slabs, a partition each.

    Rows in ``t, z, label`` order, as a run on whole planes gives them.
    """
    return dd.from_map(
        partial(_read_slabs, os.fspath(scratch_path / SLABS)),
        range(int(first), int(end)),
        meta=empty_detections(),
        enforce_metadata=False,
    )


def slab_reader(scratch_path: Any) -> Callable[[int, int], pd.DataFrame]:
    """``read(i, z)``: the detections of slab ``(i, z)`` (t-chunk ``i``, z-chunk ``z``)."""
    return partial(_read_slabs, os.fspath(scratch_path / SLABS))


def _read_slabs(slabs: str, i: int, z: int | None = None) -> pd.DataFrame:
    pattern = f"{int(i)}_*{_DETECTIONS}" if z is None else f"{int(i)}_{int(z)}{_DETECTIONS}"
    paths = glob.glob(os.path.join(slabs, pattern))
    paths.sort(key=lambda p: int(os.path.basename(p)[: -len(_DETECTIONS)].split("_")[1]))
    frame = pd.concat([empty_detections(), *map(pd.read_parquet, paths)], ignore_index=True)
    return frame.sort_values(["t", "z", "label"], kind="stable", ignore_index=True)


def slab_rows(
    work: str,
    numblocks: tuple[int, ...],
    location: tuple[int, ...],
    linked_rows: Callable[[tuple[int, ...]], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """``t, z, label, value`` of the block at ``location``: its local labels' nucleus ids.

    The ids are those of its t-chunk's linked partition (partition-local), or, with
    ``linked_rows`` (``t, z, label, value`` of the plane labels of a block's slab), those
    it gives; labels that no nucleus kept are left out (they map to 0).
    """
    t_chunk, z_chunk = (int(v) for v in location[:2])
    flat = int(np.ravel_multi_index(tuple(int(v) for v in location), numblocks))
    nodes = pd.read_parquet(
        _slab_file(os.path.join(work, SLABS), t_chunk, z_chunk, _NODES),
        filters=[("block", "==", flat)],
    )
    if linked_rows is not None:
        key = linked_rows(tuple(int(v) for v in location)).rename(columns={"label": "region"})
    else:
        linked = pd.read_parquet(
            os.path.join(work, LINKED, part_name(t_chunk)), columns=["t", "z", "label", "nucleus"]
        )
        key = pd.DataFrame(
            {
                "t": linked["t"].to_numpy(np.int64),
                "z": linked["z"].to_numpy(np.int64),
                "region": linked["label"].to_numpy(np.int64),
                "value": linked["nucleus"].to_numpy(np.int64),
            }
        )
    rows = (
        nodes[["t", "z", "label", "region"]]
        .astype(np.int64)
        .merge(key, on=["t", "z", "region"], how="inner")
    )
    return rows[["t", "z", "label", "value"]]
